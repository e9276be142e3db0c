/*
 * vsockt: the guest side of the virtio-vsock tests and benchmark (test/integration/linux,
 * bench/vsock.ts). AF_VSOCK stream sockets, one thread per connection.
 *
 *   vsockt listen PORT [-n CONNS] MODE [ARGS]     accept CONNS connections (default 1), each
 *                                                 served by MODE in its own thread, then exit
 *   vsockt connect CID PORT [-c CONNS] MODE [ARGS] open CONNS connections (default 1) at once
 *   vsockt cycle CID PORT ROUNDS                  connect, send 16 bytes, shut down, read to
 *                                                 EOF and close, ROUNDS times one after another
 *   vsockt accept-cycle PORT ROUNDS               accept, read to EOF, close, ROUNDS times
 *
 * MODE is one of
 *   echo                        copy what arrives back until EOF, then shut down writing
 *   send BYTES SEED             write BYTES of the stream SEED, shut down writing, drain to EOF
 *   recv BYTES SEED             read to EOF; the data must be BYTES of the stream SEED
 *   duplex BYTES SEEDOUT SEEDIN write BYTES of stream SEEDOUT while reading and checking
 *                               BYTES of stream SEEDIN, at once
 *   hold                        read and discard nothing: keep the connection open, unread,
 *                               until the peer closes it (a reader that stopped)
 * With CONNS > 1, connection i uses seed SEED + i.
 *
 * The stream SEED is the little-endian 32-bit words of xorshift32 started at SEED | 1, the same
 * generator the host side uses (test/helpers/vsock-stream.ts), so each side checks every byte.
 * Each connection prints one line when it ends:
 *   VSOCKT-RESULT conn=I mode=M sent=N received=N ok=1|0 ms=T [error=...]
 * and the program prints `VSOCKT-DONE ok=1|0` last, exiting 0 only when every connection was ok.
 * The cycle modes print one `VSOCKT-CYCLES rounds=N failed=F ms=T` line instead.
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
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

enum mode { ECHO, SEND, RECV, DUPLEX, HOLD };

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

/* Sends and/or receives on c->fd until done, with poll so both directions move at once. */
static void pump(struct conn *c, int sending, int checking) {
  static __thread uint8_t out[CHUNK], in[CHUNK];
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
      for (size_t i = 0; i < out_len; i++) out[i] = stream_next(&tx);
      out_off = 0;
    }
    struct pollfd p = {.fd = c->fd, .events = (short)((read_done ? 0 : POLLIN) | (write_done ? 0 : POLLOUT))};
    if (poll(&p, 1, 60000) <= 0) return fail(c, "poll (60 s without progress)");
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

static void *serve(void *arg) {
  struct conn *c = arg;
  double t0 = now_ms();
  switch (c->mode) {
    case ECHO: echo(c); break;
    case SEND: pump(c, 1, 0); break;
    case RECV: pump(c, 0, 1); break;
    case DUPLEX: pump(c, 1, 1); break;
    case HOLD: hold(c); break;
  }
  c->ms = now_ms() - t0;
  close(c->fd);
  static const char *names[] = {"echo", "send", "recv", "duplex", "hold"};
  printf("VSOCKT-RESULT conn=%d mode=%s sent=%llu received=%llu ok=%d ms=%.1f%s%s\n", c->index, names[c->mode], (unsigned long long)c->sent,
         (unsigned long long)c->received, c->ok, c->ms, c->ok ? "" : " error=", c->ok ? "" : c->error);
  fflush(stdout);
  return NULL;
}

static void usage(void) {
  fprintf(stderr, "usage: vsockt listen PORT [-n CONNS] MODE [ARGS] | vsockt connect CID PORT [-c CONNS] MODE [ARGS] | vsockt cycle CID PORT ROUNDS | vsockt accept-cycle PORT ROUNDS\n");
  exit(2);
}

static unsigned long number(const char *s) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 0);
  if (errno || *end || end == s) usage();
  return v;
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
  if (argc < 3) usage();
  int listening = strcmp(argv[1], "listen") == 0;
  if (!listening && strcmp(argv[1], "connect") != 0) usage();
  int a = 2;
  unsigned cid = listening ? VMADDR_CID_ANY : (unsigned)number(argv[a++]);
  if (a >= argc) usage();
  unsigned port = (unsigned)number(argv[a++]);
  int conns = 1;
  if (a + 1 < argc && (strcmp(argv[a], "-n") == 0 || strcmp(argv[a], "-c") == 0)) {
    conns = (int)number(argv[a + 1]);
    a += 2;
  }
  if (a >= argc || conns < 1 || conns > 1024) usage();
  struct conn proto = {.ok = 1};
  const char *m = argv[a++];
  if (strcmp(m, "echo") == 0) proto.mode = ECHO;
  else if (strcmp(m, "hold") == 0) proto.mode = HOLD;
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
  struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
  if (listening) {
    lfd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, conns) != 0) {
      printf("VSOCKT-ERROR listen on port %u: %s\n", port, strerror(errno));
      return 1;
    }
    printf("VSOCKT-LISTENING port=%u\n", port);
  }
  for (int i = 0; i < conns; i++) {
    struct conn *c = &all[i];
    *c = proto;
    c->index = i;
    c->seed_out += (uint32_t)i;
    c->seed_in += (uint32_t)i;
    c->fd = listening ? accept(lfd, NULL, NULL) : socket(AF_VSOCK, SOCK_STREAM, 0);
    if (c->fd >= 0 && !listening && connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
      printf("VSOCKT-ERROR connect %d to %u:%u: %s\n", i, cid, port, strerror(errno));
      close(c->fd);
      c->fd = -1;
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
  printf("VSOCKT-DONE ok=%d\n", ok);
  return ok ? 0 : 1;
}
