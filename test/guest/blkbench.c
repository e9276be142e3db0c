/*
 * blkbench: block-device throughput and IOPS inside a guest, for bench/blk.ts.
 *
 *   blkbench [-w WARMUP] [-l LAYOUT] DEVICE SECONDS TEST[:QD] [TEST[:QD]]...
 *
 * TEST is seqread or seqwrite (1 MiB requests, consecutive offsets wrapping round the device)
 * or randread or randwrite (4 KiB requests at uniformly random 4 KiB-aligned offsets); QD is
 * the queue depth, default 1. Each test runs for SECONDS, and prints one line:
 *
 *   BLKBENCH-RESULT test=randread bs=4096 qd=1 ops=N bytes=N seconds=S iops=X mibps=Y requests=R interrupts=I segments=G
 *
 * after one `BLKBENCH-DEVICE path=/dev/vda bytes=N irq=virtio0` line, and `blkbench: done` after
 * the last. With -w, each test first runs untimed for WARMUP seconds and prints
 *
 *   BLKBENCH-WARM test=randread bs=4096 qd=1 ops=N bytes=N seconds=S iops=X mibps=Y requests=R interrupts=I segments=G
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
 *
 * The I/O buffers' physical layout (-l, default contiguous). An O_DIRECT request carries the
 * guest-physical pages of the user buffer: physically adjacent pages become one segment, one
 * virtio descriptor; a 1 MiB buffer of 256 scattered pages is 256 descriptors and, over the
 * driver's seg_max (254 for QEMU and tsvmm alike), two requests. A plain posix_memalign buffer
 * lands wherever the guest's page allocator puts it, which differs from boot to boot (3 to 130
 * descriptors per request were seen), so the 1 MiB figures of two VMMs would compare different
 * work. The layout is therefore built, the same in every boot:
 *   contiguous  a window of physically consecutive pages (found through /proc/self/pagemap in a
 *               larger populated mapping): one segment per buffer, one request per 1 MiB;
 *   scattered   every page of the buffer moved (mremap) from a pool in descending physical
 *               order, so no two are adjacent: one segment per page, as many as possible.
 * segments= on each line is the largest count of physically contiguous runs in one worker's
 * buffer (1 and 256 for a 1 MiB buffer, 1 for 4 KiB either way). Reading physical frame numbers
 * from pagemap needs CAP_SYS_ADMIN (the guest's shell is root); without it, blkbench exits.
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEQ_BS (1u << 20)
#define RAND_BS 4096u
#define MAX_QD 64
#define PAGE 4096u
/* A /proc/self/pagemap entry: bit 63 present, bits 0-54 the physical frame number. */
#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_PFN ((1ULL << 55) - 1)
/* The contiguous layout looks for its window in a pool of 4x the buffer, then 16x, 64x. */
#define POOL_TRIES 3

enum layout { LAYOUT_CONTIGUOUS, LAYOUT_SCATTERED };

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
	/* The mapping(s) to unmap when the test ends (buf lies inside map). */
	void *map;
	size_t map_len;
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

/* Physical frame numbers of `pages` pages from `addr` (/proc/self/pagemap: 8 bytes per page,
 * bit 63 present, bits 0-54 the PFN). Exits where a page is not present or the PFN reads as 0
 * (the kernel hides PFNs from a process without CAP_SYS_ADMIN). */
static void frames(const void *addr, size_t pages, uint64_t *pfn)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		die("/proc/self/pagemap");
	off_t at = (off_t)((uintptr_t)addr / PAGE * sizeof(uint64_t));
	size_t want = pages * sizeof(uint64_t), got = 0;
	while (got < want) {
		ssize_t n = pread(fd, (char *)pfn + got, want - got, at + (off_t)got);
		if (n < 0)
			die("pread /proc/self/pagemap");
		if (n == 0)
			die_msg("/proc/self/pagemap ended early");
		got += (size_t)n;
	}
	close(fd);
	for (size_t i = 0; i < pages; i++) {
		if (!(pfn[i] & PAGEMAP_PRESENT) || (pfn[i] & PAGEMAP_PFN) == 0)
			die_msg("a buffer page has no physical frame number in /proc/self/pagemap (not present, or no CAP_SYS_ADMIN)");
		pfn[i] &= PAGEMAP_PFN;
	}
}

/* Physically contiguous runs in `pages` pages at `addr`: the segments a request from it has. */
static unsigned segments_of(const void *addr, size_t pages, uint64_t *scratch)
{
	frames(addr, pages, scratch);
	unsigned runs = 1;
	for (size_t i = 1; i < pages; i++)
		if (scratch[i] != scratch[i - 1] + 1)
			runs++;
	return runs;
}

/* Anonymous memory, every page written (so that each has its frame now). Huge pages where the
 * kernel has them (a 2 MiB page is 512 contiguous frames); the guest's kernel has none, and there
 * the pages come from its free lists, fresh blocks of which are handed out in ascending order. */
static void *populated(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	(void)madvise(p, len, MADV_HUGEPAGE); /* EINVAL without THP: a hint only */
	for (size_t i = 0; i < len; i += PAGE)
		((volatile unsigned char *)p)[i] = 1;
	return p;
}

static int pfn_desc(const void *a, const void *b)
{
	uint64_t x = ((const uint64_t *)a)[0], y = ((const uint64_t *)b)[0];
	return x < y ? 1 : x > y ? -1 : 0;
}

/* A buffer of `len` bytes (a multiple of PAGE) in the given physical layout (header comment). */
static void alloc_buffer(struct worker *w, size_t len, enum layout layout)
{
	size_t pages = len / PAGE;
	if (layout == LAYOUT_CONTIGUOUS) {
		size_t pool = pages * 4;
		for (int t = 0; t < POOL_TRIES; t++, pool *= 4) {
			unsigned char *p = populated(pool * PAGE);
			uint64_t *pfn = malloc(pool * sizeof *pfn);
			if (!pfn)
				die("malloc");
			frames(p, pool, pfn);
			size_t run = 1, start = SIZE_MAX;
			for (size_t i = 1; i < pool && start == SIZE_MAX; i++) {
				run = pfn[i] == pfn[i - 1] + 1 ? run + 1 : 1;
				if (run >= pages)
					start = i + 1 - pages;
			}
			if (pages == 1)
				start = 0;
			free(pfn);
			if (start != SIZE_MAX) {
				w->map = p, w->map_len = pool * PAGE, w->buf = p + start * PAGE;
				return;
			}
			if (munmap(p, pool * PAGE) != 0)
				die("munmap");
		}
		die_msg("no physically contiguous window for a buffer (guest memory too fragmented)");
	}
	/* Scattered: the pool's pages sorted by descending frame, moved in that order into a
	 * reserved range, so that each page's successor sits just below it, never just above. */
	unsigned char *p = populated(pages * PAGE);
	uint64_t(*pairs)[2] = malloc(pages * sizeof *pairs);
	uint64_t *pfn = malloc(pages * sizeof *pfn);
	if (!pairs || !pfn)
		die("malloc");
	frames(p, pages, pfn);
	for (size_t i = 0; i < pages; i++)
		pairs[i][0] = pfn[i], pairs[i][1] = i;
	qsort(pairs, pages, sizeof *pairs, pfn_desc);
	unsigned char *dst = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dst == MAP_FAILED)
		die("mmap");
	for (size_t k = 0; k < pages; k++)
		if (mremap(p + pairs[k][1] * PAGE, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst + k * PAGE) == MAP_FAILED)
			die("mremap");
	free(pairs);
	free(pfn);
	/* Every page of p moved out: its range is unmapped already. */
	w->map = dst, w->map_len = len, w->buf = dst;
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

static void run_test(int fd, uint64_t dev_size, const struct counters *c, const struct test *t, double secs, enum layout layout,
		     const char *label)
{
	struct shared sh = { .fd = fd, .dev_size = dev_size, .bs = t->sequential ? SEQ_BS : RAND_BS, .t = t };
	struct worker w[MAX_QD];
	uint64_t scratch[SEQ_BS / PAGE];
	unsigned segments = 0;
	int err;

	if (dev_size < sh.bs)
		die_msg("the device is smaller than one request");
	memset(w, 0, sizeof w);
	for (unsigned i = 0; i < t->qd; i++) {
		w[i].sh = &sh;
		w[i].seed = 0x9E3779B97F4A7C15ULL * (i + 1);
		alloc_buffer(&w[i], sh.bs, layout);
		unsigned segs = segments_of(w[i].buf, sh.bs / PAGE, scratch);
		if (segs > segments)
			segments = segs;
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
		if (munmap(w[i].map, w[i].map_len) != 0)
			die("munmap");
	}
	double bytes = (double)ops * (double)sh.bs;
	printf("BLKBENCH-%s test=%s bs=%llu qd=%u ops=%llu bytes=%.0f seconds=%.6f iops=%.1f mibps=%.3f requests=%lld interrupts=%lld segments=%u\n", label, t->name,
	       (unsigned long long)sh.bs, t->qd, (unsigned long long)ops, bytes, elapsed, (double)ops / elapsed,
	       bytes / elapsed / (1024.0 * 1024.0), req0 < 0 ? -1 : req1 - req0, irq0 < 0 ? -1 : irq1 - irq0, segments);
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
	enum layout layout = LAYOUT_CONTIGUOUS;
	while (argc > 2 && argv[1][0] == '-') {
		if (strcmp(argv[1], "-w") == 0) {
			warmup = parse_seconds("WARMUP", argv[2]);
		} else if (strcmp(argv[1], "-l") == 0 && strcmp(argv[2], "contiguous") == 0) {
			layout = LAYOUT_CONTIGUOUS;
		} else if (strcmp(argv[1], "-l") == 0 && strcmp(argv[2], "scattered") == 0) {
			layout = LAYOUT_SCATTERED;
		} else {
			fprintf(stderr, "blkbench: unknown option '%s %s' (-w SECONDS, -l contiguous|scattered)\n", argv[1], argv[2]);
			return 2;
		}
		argc -= 2;
		argv += 2;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: blkbench [-w WARMUP] [-l contiguous|scattered] DEVICE SECONDS TEST[:QD]...\n"
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
			run_test(fd, dev_size, &c, &tests[i], warmup, layout, "WARM");
		run_test(fd, dev_size, &c, &tests[i], secs, layout, "RESULT");
	}
	if (close(fd) != 0)
		die("close");
	printf("blkbench: done\n");
	return 0;
}
