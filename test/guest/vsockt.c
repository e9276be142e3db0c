/*
 * vsockt: both ends of the virtio-vsock tests and benchmark (test/integration/linux,
 * bench/vsock.ts): inside the guest over AF_VSOCK, on the host over Firecracker's hybrid Unix
 * socket (docs/vsock.md: `CONNECT <port>\n`, answered `OK <host port>\n`), over AF_VSOCK to a
 * vhost-vsock guest, or over a plain Unix socket (the benchmark's floor). One thread per
 * connection.
 *
 *   vsockt listen PORT [-n CONNS] [-q] MODE [ARGS] accept CONNS connections (default 1), each
 *                                                 served by MODE in its own thread, then exit
 *   vsockt listen unix:PATH [-n CONNS] MODE [ARGS] the same on a Unix socket at PATH
 *   vsockt connect CID PORT [-c CONNS] MODE [ARGS] open CONNS connections (default 1) at once
 *   vsockt connect hybrid:UDS PORT [-c CONNS] MODE [ARGS]  through the VMM's Unix socket UDS
 *   vsockt connect unix:PATH 0 [-c CONNS] MODE [ARGS]      to a plain Unix socket
 *   vsockt cycle CID PORT ROUNDS                  connect, send 16 bytes, shut down, read to
 *                                                 EOF and close, ROUNDS times one after another
 *   vsockt accept-cycle PORT ROUNDS               accept, read to EOF, close, ROUNDS times
 *   vsockt latency TARGET PORT ROUNDS             connect (TARGET: a CID, hybrid:UDS or
 *                                                 unix:PATH), time to the first byte the peer
 *                                                 sends, close; ROUNDS times one after another
 *
 * MODE is one of
 *   echo                        copy what arrives back until EOF, then shut down writing
 *   send BYTES SEED             write BYTES of the stream SEED, shut down writing, drain to EOF
 *   recv BYTES SEED             read to EOF; the data must be BYTES of the stream SEED
 *   duplex BYTES SEEDOUT SEEDIN write BYTES of stream SEEDOUT while reading and checking
 *                               BYTES of stream SEEDIN, at once
 *   hold                        read and discard nothing: keep the connection open, unread,
 *                               until the peer closes it (a reader that stopped)
 *   source BYTES                write BYTES of one fixed 64 KiB buffer, shut down writing,
 *                               drain to EOF (no stream generated: for throughput)
 *   sink                        read to EOF, counting, checking nothing
 * With CONNS > 1, connection i uses seed SEED + i. `-q` after CONNS (or in its place) prints no
 * line for a connection that ended ok: a serial console is slow, and the benchmark's latency
 * test must not time the console.
 *
 * The stream SEED is the little-endian 32-bit words of xorshift32 started at SEED | 1, the same
 * generator the host side uses (test/helpers/vsock-stream.ts), so each side checks every byte.
 * Each connection prints one line when it ends:
 *   VSOCKT-RESULT conn=I mode=M sent=N received=N ok=1|0 ms=T [error=...]
 * and the program prints `VSOCKT-DONE ok=1|0` last, exiting 0 only when every connection was ok.
 * The cycle modes print one `VSOCKT-CYCLES rounds=N failed=F ms=T` line instead, latency one
 * `VSOCKT-LATENCY rounds=N failed=F p50=US p90=US p99=US max=US connected-p50=US` line
 * (microseconds; connected: until connect() returned, and for hybrid:, the OK line came).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

enum mode { ECHO, SEND, RECV, DUPLEX, HOLD, SOURCE, SINK };

struct conn {
  int index;
  int fd;
  enum mode mode;
  uint64_t bytes;
  uint32_t seed_out, seed_in;
  uint64_t sent, received;
  int ok;
  char error[160];
  double ms;
};

/* A position in a stream: the generator state and the bytes of the current word not yet used. */
struct stream {
  uint32_t state;
  uint32_t word;
  int left;
};

static void stream_init(struct stream *s, uint32_t seed) {
  s->state = seed | 1;
  s->left = 0;
}

static uint8_t stream_next(struct stream *s) {
  if (s->left == 0) {
    uint32_t x = s->state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->state = x;
    s->word = x;
    s->left = 4;
  }
  uint8_t b = (uint8_t)(s->word & 0xff);
  s->word >>= 8;
  s->left--;
  return b;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void fail(struct conn *c, const char *what) {
  if (c->ok) snprintf(c->error, sizeof c->error, "%s: %s", what, errno ? strerror(errno) : "protocol");
  c->ok = 0;
}

#define CHUNK 65536
/* A connection that moves nothing either way for this long has failed. Under load in the
 * emulated test bed, dozens of busy connections share one CPU: minutes, not seconds. */
#define STALL_LIMIT_MS 300000

/* Sends and/or receives on c->fd until done, with poll so both directions move at once. */
static void pump(struct conn *c, int sending, int checking, int generating) {
  static __thread uint8_t out[CHUNK], in[CHUNK];
  if (!generating) memset(out, 0x5a, sizeof out);
  struct stream tx, rx;
  stream_init(&tx, c->seed_out);
  stream_init(&rx, c->seed_in);
  size_t out_len = 0, out_off = 0;
  int write_done = !sending, read_done = 0;
  while (!read_done || !write_done) {
    if (!write_done && out_off == out_len) {
      uint64_t remaining = c->bytes - c->sent;
      if (remaining == 0) {
        if (shutdown(c->fd, SHUT_WR) != 0) return fail(c, "shutdown");
        write_done = 1;
        continue;
      }
      out_len = remaining < CHUNK ? (size_t)remaining : CHUNK;
      if (generating)
        for (size_t i = 0; i < out_len; i++) out[i] = stream_next(&tx);
      out_off = 0;
    }
    struct pollfd p = {.fd = c->fd, .events = (short)((read_done ? 0 : POLLIN) | (write_done ? 0 : POLLOUT))};
    if (poll(&p, 1, STALL_LIMIT_MS) <= 0) return fail(c, "poll (300 s without progress)");
    if (!write_done && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = send(c->fd, out + out_off, out_len - out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN) return fail(c, "send");
      if (n > 0) {
        out_off += (size_t)n;
        c->sent += (uint64_t)n;
      }
    }
    if (!read_done && (p.revents & (POLLIN | POLLERR | POLLHUP))) {
      ssize_t n = recv(c->fd, in, sizeof in, MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN) return fail(c, "recv");
      if (n == 0) read_done = 1;
      for (ssize_t i = 0; i < n; i++) {
        if (checking && stream_next(&rx) != in[i]) {
          errno = 0;
          snprintf(c->error, sizeof c->error, "byte %llu differs from the stream", (unsigned long long)(c->received + (uint64_t)i));
          c->ok = 0;
          return;
        }
      }
      if (n > 0) c->received += (uint64_t)n;
    }
  }
  if (checking && c->received != c->bytes) {
    errno = 0;
    snprintf(c->error, sizeof c->error, "EOF after %llu of %llu bytes", (unsigned long long)c->received, (unsigned long long)c->bytes);
    c->ok = 0;
  }
}

static void echo(struct conn *c) {
  static __thread uint8_t buf[CHUNK];
  for (;;) {
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0) return fail(c, "recv");
    if (n == 0) break;
    c->received += (uint64_t)n;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = send(c->fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
      if (w < 0) return fail(c, "send");
      off += w;
      c->sent += (uint64_t)w;
    }
  }
  if (shutdown(c->fd, SHUT_WR) != 0) fail(c, "shutdown");
}

static void hold(struct conn *c) {
  struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
}

static int quiet;

static void *serve(void *arg) {
  struct conn *c = arg;
  double t0 = now_ms();
  switch (c->mode) {
    case ECHO: echo(c); break;
    case SEND: pump(c, 1, 0, 1); break;
    case RECV: pump(c, 0, 1, 1); break;
    case DUPLEX: pump(c, 1, 1, 1); break;
    case HOLD: hold(c); break;
    case SOURCE: pump(c, 1, 0, 0); break;
    case SINK: pump(c, 0, 0, 0); break;
  }
  c->ms = now_ms() - t0;
  close(c->fd);
  static const char *names[] = {"echo", "send", "recv", "duplex", "hold", "source", "sink"};
  if (quiet && c->ok) return NULL;
  printf("VSOCKT-RESULT conn=%d mode=%s sent=%llu received=%llu ok=%d ms=%.1f%s%s\n", c->index, names[c->mode], (unsigned long long)c->sent,
         (unsigned long long)c->received, c->ok, c->ms, c->ok ? "" : " error=", c->ok ? "" : c->error);
  fflush(stdout);
  return NULL;
}

static void usage(void) {
  fprintf(stderr,
          "usage: vsockt listen PORT|unix:PATH [-n CONNS] [-q] MODE [ARGS] | vsockt connect CID|hybrid:UDS|unix:PATH PORT [-c CONNS] [-q] MODE [ARGS] |"
          " vsockt cycle CID PORT ROUNDS | vsockt accept-cycle PORT ROUNDS | vsockt latency CID|hybrid:UDS|unix:PATH PORT ROUNDS\n");
  exit(2);
}

static unsigned long number(const char *s) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 0);
  if (errno || *end || end == s) usage();
  return v;
}

/* Where a connection goes or a listener listens: AF_VSOCK, the VMM's hybrid socket, or Unix. */
struct target {
  enum { VSOCK, HYBRID, UNIX } kind;
  unsigned cid;
  struct sockaddr_un un;
};

static struct target parse_target(const char *s) {
  struct target t = {.kind = VSOCK, .cid = VMADDR_CID_ANY, .un = {.sun_family = AF_UNIX}};
  const char *path = NULL;
  if (strncmp(s, "hybrid:", 7) == 0) t.kind = HYBRID, path = s + 7;
  else if (strncmp(s, "unix:", 5) == 0) t.kind = UNIX, path = s + 5;
  else t.cid = (unsigned)number(s);
  if (path && (strlen(path) == 0 || strlen(path) >= sizeof t.un.sun_path)) usage();
  if (path) strcpy(t.un.sun_path, path);
  return t;
}

/* Reads the VMM's answer to CONNECT, one byte at a time up to the newline (docs/vsock.md). */
static int hybrid_handshake(int fd, unsigned port) {
  char line[64];
  int n = snprintf(line, sizeof line, "CONNECT %u\n", port);
  if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) return -1;
  size_t len = 0;
  while (len + 1 < sizeof line) {
    ssize_t r = recv(fd, line + len, 1, 0);
    if (r <= 0) {
      if (r == 0) errno = ECONNREFUSED;
      return -1;
    }
    if (line[len++] == '\n') break;
  }
  line[len] = 0;
  if (strncmp(line, "OK ", 3) != 0) {
    errno = ECONNREFUSED;
    return -1;
  }
  return 0;
}

/*
 * Linux gives up on an AF_VSOCK connect the peer has not answered in 2 s (its default
 * SO_VM_SOCKETS_CONNECT_TIMEOUT). Where one emulated CPU runs the guest, the VMM and dozens of
 * busy connections, an answer can take longer: the tests allow 30 s.
 */
#define CONNECT_TIMEOUT_S 30

/* A connected stream socket to `port` at t, or -1 with errno set. */
static int open_connection(const struct target *t, unsigned port) {
  int fd = socket(t->kind == VSOCK ? AF_VSOCK : AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval limit = {.tv_sec = CONNECT_TIMEOUT_S};
  if (t->kind == VSOCK && setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &limit, sizeof limit) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  struct sockaddr_vm vm = {.svm_family = AF_VSOCK, .svm_cid = t->cid, .svm_port = port};
  int rc = t->kind == VSOCK ? connect(fd, (struct sockaddr *)&vm, sizeof vm) : connect(fd, (const struct sockaddr *)&t->un, sizeof t->un);
  if (rc == 0 && t->kind == HYBRID) rc = hybrid_handshake(fd, port);
  if (rc != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* A listening socket on `port` (AF_VSOCK, any CID) or at the Unix path of t; prints where. */
static int open_listener(const struct target *t, unsigned port, int backlog) {
  int fd = socket(t->kind == VSOCK ? AF_VSOCK : AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_vm vm = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  if (t->kind != VSOCK) unlink(t->un.sun_path);
  if (fd < 0 || (t->kind == VSOCK ? bind(fd, (struct sockaddr *)&vm, sizeof vm) : bind(fd, (const struct sockaddr *)&t->un, sizeof t->un)) != 0 ||
      listen(fd, backlog) != 0) {
    if (t->kind == VSOCK) printf("VSOCKT-ERROR listen on port %u: %s\n", port, strerror(errno));
    else printf("VSOCKT-ERROR listen at %s: %s\n", t->un.sun_path, strerror(errno));
    return -1;
  }
  if (t->kind == VSOCK) printf("VSOCKT-LISTENING port=%u\n", port);
  else printf("VSOCKT-LISTENING path=%s\n", t->un.sun_path);
  return fd;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Connect, wait for the peer's first byte, close: ROUNDS times; prints the percentiles. */
static int latency(const struct target *t, unsigned port, unsigned long rounds) {
  if (rounds == 0 || rounds > 1000000) usage();
  double *us = calloc(rounds, sizeof *us), *connected = calloc(rounds, sizeof *connected);
  if (!us || !connected) return 1;
  unsigned long failed = 0, done = 0;
  for (unsigned long i = 0; i < rounds; i++) {
    double t0 = now_ms();
    int fd = open_connection(t, port);
    double t1 = now_ms();
    char b;
    if (fd < 0 || recv(fd, &b, 1, 0) != 1) {
      if (++failed <= 3) printf("VSOCKT-ERROR round %lu: %s\n", i, fd < 0 ? strerror(errno) : "no first byte");
    } else {
      connected[done] = (t1 - t0) * 1000;
      us[done++] = (now_ms() - t0) * 1000;
    }
    if (fd >= 0) close(fd);
  }
  qsort(us, done, sizeof *us, compare_doubles);
  qsort(connected, done, sizeof *connected, compare_doubles);
#define PCT(a, p) (done ? a[(size_t)((double)(done - 1) * (p))] : 0)
  printf("VSOCKT-LATENCY rounds=%lu failed=%lu p50=%.0f p90=%.0f p99=%.0f max=%.0f connected-p50=%.0f\n", rounds, failed, PCT(us, 0.5), PCT(us, 0.9), PCT(us, 0.99), PCT(us, 1.0),
         PCT(connected, 0.5));
#undef PCT
  free(us);
  free(connected);
  return failed == 0 ? 0 : 1;
}

/* Connect/close or accept/close ROUNDS times, one connection at a time (leak and churn tests). */
static int cycles(int accepting, unsigned cid, unsigned port, unsigned long rounds) {
  double t0 = now_ms();
  unsigned long failed = 0;
  char buf[256];
  int lfd = -1;
  struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = accepting ? VMADDR_CID_ANY : cid, .svm_port = port};
  if (accepting) {
    lfd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 16) != 0) {
      printf("VSOCKT-ERROR listen on port %u: %s\n", port, strerror(errno));
      return 1;
    }
    printf("VSOCKT-LISTENING port=%u\n", port);
  }
  for (unsigned long i = 0; i < rounds; i++) {
    int fd = accepting ? accept(lfd, NULL, NULL) : socket(AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0 || (!accepting && connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) ||
        (!accepting && (send(fd, "0123456789abcdef", 16, MSG_NOSIGNAL) != 16 || shutdown(fd, SHUT_WR) != 0))) {
      failed++;
      if (failed <= 3) printf("VSOCKT-ERROR round %lu: %s\n", i, strerror(errno));
    } else {
      ssize_t n;
      while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
      }
      if (n < 0) failed++;
    }
    if (fd >= 0) close(fd);
  }
  if (lfd >= 0) close(lfd);
  printf("VSOCKT-CYCLES rounds=%lu failed=%lu ms=%.0f\n", rounds, failed, now_ms() - t0);
  return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 5 && strcmp(argv[1], "cycle") == 0) return cycles(0, (unsigned)number(argv[2]), (unsigned)number(argv[3]), number(argv[4]));
  if (argc == 4 && strcmp(argv[1], "accept-cycle") == 0) return cycles(1, 0, (unsigned)number(argv[2]), number(argv[3]));
  if (argc == 5 && strcmp(argv[1], "latency") == 0) {
    struct target t = parse_target(argv[2]);
    return latency(&t, (unsigned)number(argv[3]), number(argv[4]));
  }
  if (argc < 3) usage();
  int listening = strcmp(argv[1], "listen") == 0;
  if (!listening && strcmp(argv[1], "connect") != 0) usage();
  int a = 2;
  struct target target = parse_target(listening && strncmp(argv[a], "unix:", 5) != 0 ? "0" : argv[a]);
  if (listening && target.kind == HYBRID) usage();
  unsigned port = 0;
  if (listening && target.kind == UNIX) a++;
  else {
    if (!listening) a++;
    if (a >= argc) usage();
    port = (unsigned)number(argv[a++]);
  }
  int conns = 1;
  if (a + 1 < argc && (strcmp(argv[a], "-n") == 0 || strcmp(argv[a], "-c") == 0)) {
    conns = (int)number(argv[a + 1]);
    a += 2;
  }
  if (a < argc && strcmp(argv[a], "-q") == 0) {
    quiet = 1;
    a++;
  }
  if (a >= argc || conns < 1 || conns > 1024) usage();
  struct conn proto = {.ok = 1};
  const char *m = argv[a++];
  if (strcmp(m, "echo") == 0) proto.mode = ECHO;
  else if (strcmp(m, "hold") == 0) proto.mode = HOLD;
  else if (strcmp(m, "sink") == 0) proto.mode = SINK;
  else if (strcmp(m, "source") == 0) {
    if (a + 1 != argc) usage();
    proto.mode = SOURCE;
    proto.bytes = number(argv[a]);
  }
  else if (strcmp(m, "send") == 0 || strcmp(m, "recv") == 0) {
    if (a + 2 != argc) usage();
    proto.mode = m[0] == 's' ? SEND : RECV;
    proto.bytes = number(argv[a]);
    proto.seed_out = proto.seed_in = (uint32_t)number(argv[a + 1]);
  } else if (strcmp(m, "duplex") == 0) {
    if (a + 3 != argc) usage();
    proto.mode = DUPLEX;
    proto.bytes = number(argv[a]);
    proto.seed_out = (uint32_t)number(argv[a + 1]);
    proto.seed_in = (uint32_t)number(argv[a + 2]);
  } else usage();

  struct conn *all = calloc((size_t)conns, sizeof *all);
  pthread_t *threads = calloc((size_t)conns, sizeof *threads);
  if (!all || !threads) return 1;
  int lfd = -1;
  if (listening && (lfd = open_listener(&target, port, conns)) < 0) return 1;
  for (int i = 0; i < conns; i++) {
    struct conn *c = &all[i];
    *c = proto;
    c->index = i;
    c->seed_out += (uint32_t)i;
    c->seed_in += (uint32_t)i;
    c->fd = listening ? accept(lfd, NULL, NULL) : open_connection(&target, port);
    if (c->fd < 0 && !listening) {
      if (target.kind == VSOCK) printf("VSOCKT-ERROR connect %d to %u:%u: %s\n", i, target.cid, port, strerror(errno));
      else printf("VSOCKT-ERROR connect %d to %s port %u: %s\n", i, target.un.sun_path, port, strerror(errno));
    }
    if (c->fd < 0) {
      c->ok = 0;
      continue;
    }
    if (pthread_create(&threads[i], NULL, serve, c) != 0) {
      c->ok = 0;
      close(c->fd);
      c->fd = -1;
    }
  }
  int ok = 1;
  for (int i = 0; i < conns; i++) {
    if (all[i].fd >= 0) pthread_join(threads[i], NULL);
    ok &= all[i].ok;
  }
  if (lfd >= 0) close(lfd);
  if (listening && target.kind == UNIX) unlink(target.un.sun_path);
  printf("VSOCKT-DONE ok=%d\n", ok);
  return ok ? 0 : 1;
}
