/*
 * nullsink: the "physical limit" receiver for benches/compare.sh.
 *
 * Binds one UDP socket (SO_RCVBUF as asked, capped by net.core.rmem_max),
 * receives with recvmmsg in batches of 64, and walks every NetFlow v5
 * datagram the way a strict collector must at least do: version, count,
 * exact length, then every record (sums dPkts). Nothing is stored or written.
 * On SIGTERM/SIGINT it reads what is already queued (MSG_DONTWAIT, like
 * nfstitch), then prints its counters as one JSON object (stdout, or -o FILE).
 *
 * With -m it also asks the kernel, per datagram, for what nfstitch asks for:
 * the source address (msg_name), the receive timestamp (SO_TIMESTAMPNS) and
 * the socket's drop counter (SO_RXQ_OVFL), and reads them. That is the cost
 * of receiving the way the collector must, with still nothing done with the
 * records: the floor under nfstitch's drain and CPU figures.
 *
 *   nullsink -p PORT [-a 127.0.0.1] [-b RCVBUF_BYTES] [-o FILE] [-m]
 *
 * Build: gcc -O2 -Wall -o nullsink nullsink.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define BUFSZ 2048

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static uint64_t datagrams, records, packets, bad;
/* -m: what the control messages and source addresses carried (kept so the
 * compiler cannot drop their reading). */
static uint64_t ts_sum, kernel_drops, src_sum;

static inline uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void walk(const unsigned char *p, unsigned len) {
    if (len < 24 || p[0] != 0 || p[1] != 5) { bad++; return; }
    unsigned count = ((unsigned)p[2] << 8) | p[3];
    if (count < 1 || count > 30 || len != 24 + 48 * count) { bad++; return; }
    uint64_t pk = 0;
    const unsigned char *r = p + 24;
    for (unsigned i = 0; i < count; i++, r += 48) pk += be32(r + 16);
    datagrams++;
    records += count;
    packets += pk;
}

int main(int argc, char **argv) {
    const char *addr = "127.0.0.1", *out = NULL;
    int port = 0, opt, meta = 0;
    long rcvbuf = 0;
    while ((opt = getopt(argc, argv, "p:a:b:o:m")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'a': addr = optarg; break;
        case 'b': rcvbuf = atol(optarg); break;
        case 'o': out = optarg; break;
        case 'm': meta = 1; break;
        default:
            fprintf(stderr, "usage: nullsink -p PORT [-a ADDR] [-b RCVBUF] [-o FILE] [-m]\n");
            return 2;
        }
    }
    if (port <= 0 || port > 65535) { fprintf(stderr, "nullsink: -p PORT required\n"); return 2; }

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    if (rcvbuf > 0) {
        int v = rcvbuf > 0x7fffffff / 2 ? 0x7fffffff / 2 : (int)rcvbuf;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0) perror("SO_RCVBUF");
    }
    int got = 0;
    socklen_t gl = sizeof got;
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) { fprintf(stderr, "nullsink: bad -a\n"); return 2; }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); return 1; }
    if (meta) {
        int one = 1;
        /* -m measures nothing useful without them: fail rather than carry on */
        if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) { perror("SO_TIMESTAMPNS"); return 1; }
        if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) < 0) { perror("SO_RXQ_OVFL"); return 1; }
    }

    struct sigaction act = {0};
    act.sa_handler = on_signal; /* no SA_RESTART: recvmmsg returns EINTR */
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    fprintf(stderr, "nullsink: listening on %s:%d rcvbuf %d\n", addr, port, got);

    static unsigned char bufs[BATCH][BUFSZ];
    static struct sockaddr_storage names[BATCH];
    static union { struct cmsghdr align; unsigned char b[128]; } ctrl[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = BUFSZ;
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t calls = 0;
    for (;;) {
        int flags = stop ? MSG_DONTWAIT : MSG_WAITFORONE;
        if (meta) /* the kernel shrinks these to what it wrote: reset per call */
            for (int i = 0; i < BATCH; i++) {
                msgs[i].msg_hdr.msg_name = &names[i];
                msgs[i].msg_hdr.msg_namelen = sizeof names[i];
                msgs[i].msg_hdr.msg_control = ctrl[i].b;
                msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i].b;
            }
        int n = recvmmsg(fd, msgs, BATCH, flags, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break; /* drained after stop */
            perror("recvmmsg");
            break;
        }
        calls++;
        for (int i = 0; i < n; i++) {
            if (meta) {
                struct msghdr *h = &msgs[i].msg_hdr;
                if (names[i].ss_family == AF_INET)
                    src_sum += ((struct sockaddr_in *)&names[i])->sin_addr.s_addr;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
                    if (c->cmsg_level != SOL_SOCKET) continue;
                    if (c->cmsg_type == SCM_TIMESTAMPNS && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                        struct timespec t;
                        memcpy(&t, CMSG_DATA(c), sizeof t);
                        ts_sum += (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
                    } else if (c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
                        uint32_t d;
                        memcpy(&d, CMSG_DATA(c), sizeof d);
                        kernel_drops = d;
                    }
                }
            }
            walk(bufs[i], msgs[i].msg_len);
        }
    }
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) { perror(out); f = stdout; }
    fprintf(f,
            "{\"datagrams\":%llu,\"records\":%llu,\"packets\":%llu,\"rejected\":%llu,"
            "\"recvmmsg_calls\":%llu,\"rcvbuf\":%d,\"meta\":%d,\"kernel_drops\":%llu,"
            "\"ts_sum\":%llu,\"src_sum\":%llu}\n",
            (unsigned long long)datagrams, (unsigned long long)records,
            (unsigned long long)packets, (unsigned long long)bad,
            (unsigned long long)calls, got, meta, (unsigned long long)kernel_drops,
            (unsigned long long)ts_sum, (unsigned long long)src_sum);
    if (f != stdout) fclose(f);
    return 0;
}
