/*
 * blkbench: block-device throughput and IOPS inside a guest, for bench/blk.ts.
 *
 *   blkbench [-w WARMUP] DEVICE SECONDS TEST[:QD] [TEST[:QD]]...
 *
 * TEST is seqread or seqwrite (1 MiB requests, consecutive offsets wrapping round the device)
 * or randread or randwrite (4 KiB requests at uniformly random 4 KiB-aligned offsets); QD is
 * the queue depth, default 1. Each test runs for SECONDS, and prints one line:
 *
 *   BLKBENCH-RESULT test=randread bs=4096 qd=1 ops=N bytes=N seconds=S iops=X mibps=Y requests=R interrupts=I
 *
 * after one `BLKBENCH-DEVICE path=/dev/vda bytes=N irq=virtio0` line, and `blkbench: done` after
 * the last. With -w, each test first runs untimed for WARMUP seconds and prints
 *
 *   BLKBENCH-WARM test=randread bs=4096 qd=1 ops=N bytes=N seconds=S iops=X mibps=Y requests=R interrupts=I
 *
 * before its timed run: a VMM whose device code is compiled while it runs (tsvmm's JavaScript)
 * reaches its steady state there, and the warm-up line keeps the cold figure. A warm-up of a
 * write test ends with fdatasync() like the timed run.
 *
 * requests and interrupts are what the guest kernel counted for the device during the test:
 * completed requests from /sys/block/<dev>/stat (reads, writes, discards and flushes, after
 * the block layer split or merged them, so one per virtio request) and the device's interrupts
 * from /proc/interrupts (the line whose name is that of the virtio device under
 * /sys/block/<dev>/device). They are the same for any VMM, so interrupts per request compare
 * VMMs from inside the guest; both are -1 for a regular file. The device is opened with O_DIRECT, so every request
 * reaches the virtio-blk device (no guest page cache); a regular file also works (sized by fstat). The guest kernel has neither Linux AIO nor
 * io_uring, so a queue depth of N is N threads, each with one synchronous pread/pwrite in flight.
 * A write test ends with fdatasync() inside the timed interval: a FLUSH makes the device's
 * written data durable, which is part of what writing costs (virtio-blk with VIRTIO_BLK_F_FLUSH
 * is a write-back cache). Any failed or short system call ends the program with status 1 and a
 * message naming it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEQ_BS (1u << 20)
#define RAND_BS 4096u
#define ALIGN 4096u
#define MAX_QD 64

struct test {
	const char *name;
	int write;
	int sequential;
	unsigned qd;
};

struct shared {
	int fd;
	uint64_t dev_size;
	uint64_t bs;
	const struct test *t;
	struct timespec deadline;
	/* Next block of a sequential test, shared by its threads (atomic). */
	uint64_t next_block;
};

struct worker {
	pthread_t tid;
	struct shared *sh;
	uint64_t seed;
	uint64_t ops;
	void *buf;
};

static void die(const char *what)
{
	fprintf(stderr, "blkbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void die_msg(const char *msg)
{
	fprintf(stderr, "blkbench: %s\n", msg);
	exit(1);
}

static struct timespec now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime(CLOCK_MONOTONIC)");
	return ts;
}

static int before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static double seconds_between(struct timespec a, struct timespec b)
{
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

/* xorshift64*: a fast per-thread generator; quality is ample for picking offsets. */
static uint64_t next_random(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* The kernel's counters for one block device (see the header comment). */
struct counters {
	char stat_path[256];
	char irq_name[256];
};

static long long read_requests(const struct counters *c)
{
	if (c->stat_path[0] == '\0')
		return -1;
	FILE *f = fopen(c->stat_path, "r");
	if (!f)
		die(c->stat_path);
	unsigned long long v[17];
	int n = 0;
	while (n < 17 && fscanf(f, "%llu", &v[n]) == 1)
		n++;
	if (fclose(f) != 0)
		die("fclose");
	/* Fields (Documentation/block/stat.rst): 0 read I/Os, 4 write I/Os, 11 discard I/Os (since
	 * 4.18), 15 flush I/Os (since 5.5). */
	if (n < 11)
		die_msg("/sys/block/<dev>/stat has fewer than 11 fields");
	return (long long)(v[0] + v[4] + (n > 11 ? v[11] : 0) + (n > 15 ? v[15] : 0));
}

static long long read_interrupts(const struct counters *c)
{
	if (c->irq_name[0] == '\0')
		return -1;
	FILE *f = fopen("/proc/interrupts", "r");
	if (!f)
		die("/proc/interrupts");
	char line[1024];
	long long total = -1;
	while (fgets(line, sizeof line, f)) {
		/* "  5:   123   456   IO-APIC   5-edge   virtio0": the counts (one per CPU) follow
		 * the colon; the device's name is the last word. */
		char *colon = strchr(line, ':');
		size_t len = strlen(line);
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == ' '))
			line[--len] = '\0';
		char *last = strrchr(line, ' ');
		if (!colon || !last || strcmp(last + 1, c->irq_name) != 0)
			continue;
		long long sum = 0;
		char *p = colon + 1, *end;
		for (;;) {
			unsigned long long v = strtoull(p, &end, 10);
			if (end == p)
				break;
			sum += (long long)v;
			p = end;
		}
		total = sum;
		break;
	}
	if (ferror(f))
		die("reading /proc/interrupts");
	if (fclose(f) != 0)
		die("fclose");
	if (total < 0) {
		fprintf(stderr, "blkbench: no line for %s in /proc/interrupts\n", c->irq_name);
		exit(1);
	}
	return total;
}

/* Finds the counters of block device `path` (/dev/vda -> /sys/block/vda/stat, virtioN). */
static void find_counters(const char *path, struct counters *c)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	char link[256], target[256];
	if (strlen(base) > 200)
		die_msg("device name too long");
	snprintf(c->stat_path, sizeof c->stat_path, "/sys/block/%s/stat", base);
	snprintf(link, sizeof link, "/sys/block/%s/device", base);
	ssize_t n = readlink(link, target, sizeof target - 1);
	if (n < 0)
		die(link);
	target[n] = '\0';
	const char *name = strrchr(target, '/');
	/* Both are at most 255 bytes plus the NUL: the copy always fits. */
	memcpy(c->irq_name, name ? name + 1 : target, strlen(name ? name + 1 : target) + 1);
}

static void *run_worker(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	uint64_t blocks = sh->dev_size / sh->bs;
	char msg[160];

	/* Check the clock every request: a request here costs tens of microseconds at least, a
	 * vDSO clock_gettime tens of nanoseconds. */
	while (before(now(), sh->deadline)) {
		uint64_t block = sh->t->sequential ? __atomic_fetch_add(&sh->next_block, 1, __ATOMIC_RELAXED) % blocks
						   : next_random(&w->seed) % blocks;
		off_t off = (off_t)(block * sh->bs);
		ssize_t n = sh->t->write ? pwrite(sh->fd, w->buf, sh->bs, off) : pread(sh->fd, w->buf, sh->bs, off);
		if (n < 0) {
			snprintf(msg, sizeof msg, "%s of %llu bytes at %lld", sh->t->write ? "pwrite" : "pread",
				 (unsigned long long)sh->bs, (long long)off);
			die(msg);
		}
		if ((uint64_t)n != sh->bs) {
			snprintf(msg, sizeof msg, "short %s: %zd of %llu bytes at %lld", sh->t->write ? "pwrite" : "pread", n,
				 (unsigned long long)sh->bs, (long long)off);
			die_msg(msg);
		}
		w->ops++;
	}
	return NULL;
}

static void parse_test(const char *arg, struct test *t)
{
	char name[32];
	const char *colon = strchr(arg, ':');
	size_t len = colon ? (size_t)(colon - arg) : strlen(arg);
	if (len >= sizeof name)
		len = sizeof name - 1;
	memcpy(name, arg, len);
	name[len] = '\0';
	t->qd = 1;
	if (colon) {
		char *end;
		errno = 0;
		unsigned long qd = strtoul(colon + 1, &end, 10);
		if (errno != 0 || *end != '\0' || qd < 1 || qd > MAX_QD) {
			fprintf(stderr, "blkbench: queue depth in '%s' must be 1 to %d\n", arg, MAX_QD);
			exit(2);
		}
		t->qd = (unsigned)qd;
	}
	if (strcmp(name, "seqread") == 0) {
		t->name = "seqread", t->write = 0, t->sequential = 1;
	} else if (strcmp(name, "seqwrite") == 0) {
		t->name = "seqwrite", t->write = 1, t->sequential = 1;
	} else if (strcmp(name, "randread") == 0) {
		t->name = "randread", t->write = 0, t->sequential = 0;
	} else if (strcmp(name, "randwrite") == 0) {
		t->name = "randwrite", t->write = 1, t->sequential = 0;
	} else {
		fprintf(stderr, "blkbench: unknown test '%s' (seqread, seqwrite, randread, randwrite)\n", name);
		exit(2);
	}
}

static void run_test(int fd, uint64_t dev_size, const struct counters *c, const struct test *t, double secs, const char *label)
{
	struct shared sh = { .fd = fd, .dev_size = dev_size, .bs = t->sequential ? SEQ_BS : RAND_BS, .t = t };
	struct worker w[MAX_QD];
	int err;

	if (dev_size < sh.bs)
		die_msg("the device is smaller than one request");
	memset(w, 0, sizeof w);
	for (unsigned i = 0; i < t->qd; i++) {
		w[i].sh = &sh;
		w[i].seed = 0x9E3779B97F4A7C15ULL * (i + 1);
		err = posix_memalign(&w[i].buf, ALIGN, sh.bs);
		if (err != 0) {
			errno = err;
			die("posix_memalign");
		}
		/* Non-zero, varied data: nothing on the way may treat the writes as zeroes. */
		for (uint64_t j = 0; j < sh.bs; j++)
			((unsigned char *)w[i].buf)[j] = (unsigned char)(j * 131 + i * 7 + 1);
	}

	long long req0 = read_requests(c), irq0 = read_interrupts(c);
	struct timespec t0 = now();
	sh.deadline = t0;
	sh.deadline.tv_sec += (time_t)secs;
	sh.deadline.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
	if (sh.deadline.tv_nsec >= 1000000000L) {
		sh.deadline.tv_sec++;
		sh.deadline.tv_nsec -= 1000000000L;
	}
	if (t->qd == 1) {
		run_worker(&w[0]);
	} else {
		for (unsigned i = 0; i < t->qd; i++) {
			err = pthread_create(&w[i].tid, NULL, run_worker, &w[i]);
			if (err != 0) {
				errno = err;
				die("pthread_create");
			}
		}
		for (unsigned i = 0; i < t->qd; i++) {
			err = pthread_join(w[i].tid, NULL);
			if (err != 0) {
				errno = err;
				die("pthread_join");
			}
		}
	}
	if (t->write && fdatasync(fd) != 0)
		die("fdatasync");
	double elapsed = seconds_between(t0, now());
	long long req1 = read_requests(c), irq1 = read_interrupts(c);

	uint64_t ops = 0;
	for (unsigned i = 0; i < t->qd; i++) {
		ops += w[i].ops;
		free(w[i].buf);
	}
	double bytes = (double)ops * (double)sh.bs;
	printf("BLKBENCH-%s test=%s bs=%llu qd=%u ops=%llu bytes=%.0f seconds=%.6f iops=%.1f mibps=%.3f requests=%lld interrupts=%lld\n", label, t->name,
	       (unsigned long long)sh.bs, t->qd, (unsigned long long)ops, bytes, elapsed, (double)ops / elapsed,
	       bytes / elapsed / (1024.0 * 1024.0), req0 < 0 ? -1 : req1 - req0, irq0 < 0 ? -1 : irq1 - irq0);
	if (fflush(stdout) != 0)
		die("fflush(stdout)");
}

/* Parses a number of seconds in (0, 3600], or exits with status 2 naming `what`. */
static double parse_seconds(const char *what, const char *arg)
{
	char *end;
	errno = 0;
	double secs = strtod(arg, &end);
	if (errno != 0 || *end != '\0' || !(secs > 0 && secs <= 3600)) {
		fprintf(stderr, "blkbench: %s '%s' must be a number in (0, 3600]\n", what, arg);
		exit(2);
	}
	return secs;
}

int main(int argc, char **argv)
{
	double warmup = 0;
	if (argc > 2 && strcmp(argv[1], "-w") == 0) {
		warmup = parse_seconds("WARMUP", argv[2]);
		argc -= 2;
		argv += 2;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: blkbench [-w WARMUP] DEVICE SECONDS TEST[:QD]...\n"
				"  TEST: seqread seqwrite (1 MiB requests) randread randwrite (4 KiB); QD 1-%d\n",
			MAX_QD);
		return 2;
	}
	double secs = parse_seconds("SECONDS", argv[2]);
	struct test tests[32];
	int ntests = argc - 3;
	if (ntests > 32)
		die_msg("at most 32 tests");
	for (int i = 0; i < ntests; i++)
		parse_test(argv[3 + i], &tests[i]);

	int fd = open(argv[1], O_RDWR | O_DIRECT);
	if (fd < 0)
		die(argv[1]);
	/* A regular file is accepted too, so that the program can be tried on the host. */
	struct stat st;
	if (fstat(fd, &st) != 0)
		die("fstat");
	uint64_t dev_size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &dev_size) != 0)
		die("ioctl(BLKGETSIZE64)");
	struct counters c = { "", "" };
	if (S_ISBLK(st.st_mode))
		find_counters(argv[1], &c);
	printf("BLKBENCH-DEVICE path=%s bytes=%llu irq=%s\n", argv[1], (unsigned long long)dev_size,
	       c.irq_name[0] ? c.irq_name : "-");
	for (int i = 0; i < ntests; i++) {
		if (warmup > 0)
			run_test(fd, dev_size, &c, &tests[i], warmup, "WARM");
		run_test(fd, dev_size, &c, &tests[i], secs, "RESULT");
	}
	if (close(fd) != 0)
		die("close");
	printf("blkbench: done\n");
	return 0;
}
