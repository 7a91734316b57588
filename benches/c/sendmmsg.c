/*
 * sendmmsg: the minimal NetFlow v5 sender for benches/compare.sh, the
 * reference for loadgen's maximum send rate.
 *
 * Pre-builds a pool of valid v5 datagrams (-r records each, default 30)
 * holding -f distinct flows (one record per flow per pass), split evenly over
 * -e exporters (one UDP socket each, bound to 127.0.1.(i+1)), and sends them
 * with sendmmsg in batches of -b, round robin over exporters, cycling through
 * each exporter's part of the pool. Before a batch leaves, each header gets
 * the exporter's flow_sequence and the current unix_secs/unix_nsecs (a few
 * stores; nothing else is built per datagram). Unpaced by default (-p 0);
 * -p PPS paces batches against CLOCK_MONOTONIC. Stops after -c datagrams or
 * -d seconds, whichever comes first (at least one of them is required; -d
 * alone is capped at 600 s). Prints one JSON object on stdout.
 *
 *   sendmmsg -t 127.0.0.1:PORT [-e 4] [-f 100000] [-r 30] [-b 32]
 *            [-p PPS] [-d SECONDS] [-c COUNT]
 *
 * Loopback only: the target must be in 127.0.0.0/8.
 * Build: gcc -O2 -Wall -o sendmmsg sendmmsg.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXBATCH 1024
#define MAXEXP 64

static inline void put16(unsigned char *p, uint32_t v) { p[0] = v >> 8; p[1] = v; }
static inline void put32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const char *target = NULL;
    long exporters = 4, flows = 100000, rpd = 30, batch = 32, opt;
    double pps = 0, dur = 0;
    long long count = 0;
    while ((opt = getopt(argc, argv, "t:e:f:r:b:p:d:c:")) != -1) {
        switch (opt) {
        case 't': target = optarg; break;
        case 'e': exporters = atol(optarg); break;
        case 'f': flows = atol(optarg); break;
        case 'r': rpd = atol(optarg); break;
        case 'b': batch = atol(optarg); break;
        case 'p': pps = atof(optarg); break;
        case 'd': dur = atof(optarg); break;
        case 'c': count = atoll(optarg); break;
        default:
            fprintf(stderr, "usage: sendmmsg -t IP:PORT [-e EXPORTERS] [-f FLOWS] [-r RECORDS] "
                            "[-b BATCH] [-p PPS] [-d SECONDS] [-c COUNT]\n");
            return 2;
        }
    }
    if (!target || rpd < 1 || rpd > 30 || batch < 1 || batch > MAXBATCH || exporters < 1 ||
        exporters > MAXEXP || flows < 1 || (count <= 0 && dur <= 0)) {
        fprintf(stderr, "sendmmsg: need -t, 1<=-r<=30, 1<=-b<=%d, 1<=-e<=%d, -f>=1, and -c or -d\n",
                MAXBATCH, MAXEXP);
        return 2;
    }
    if (dur <= 0 || dur > 600) dur = 600;
    char host[64];
    const char *colon = strrchr(target, ':');
    if (!colon || colon - target >= (long)sizeof host) { fprintf(stderr, "sendmmsg: -t IP:PORT\n"); return 2; }
    memcpy(host, target, colon - target);
    host[colon - target] = 0;
    struct sockaddr_in dst = {0};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(atoi(colon + 1));
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 || (ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "sendmmsg: target must be an IPv4 loopback address\n");
        return 2;
    }

    /* The pool: ceil(flows / rpd) datagrams, at least one per exporter. */
    long pool = (flows + rpd - 1) / rpd;
    if (pool < exporters) pool = exporters;
    size_t dlen = 24 + 48 * rpd;
    unsigned char *buf = calloc(pool, dlen);
    if (!buf) { perror("calloc"); return 1; }
    const uint32_t uptime = 3600000; /* router up one hour; records end just before export */
    for (long d = 0; d < pool; d++) {
        unsigned char *p = buf + d * dlen;
        put16(p, 5);
        put16(p + 2, rpd);
        put32(p + 4, uptime);
        for (long i = 0; i < rpd; i++) {
            unsigned char *r = p + 24 + 48 * i;
            uint32_t k = (uint32_t)((d * rpd + i) % flows);
            put32(r + 0, 0x0a000000u | (k & 0xffffff));            /* src 10/8 */
            put32(r + 4, 0xc0a80000u | ((k >> 24) << 8) | (k % 251)); /* dst 192.168/16 */
            put16(r + 12, 1);                                       /* input */
            put16(r + 14, 2);                                       /* output */
            put32(r + 16, 1 + k % 7);                               /* dPkts */
            put32(r + 20, 100 * (1 + k % 7));                       /* dOctets */
            put32(r + 24, uptime - 2000);                           /* First */
            put32(r + 28, uptime - 1000);                           /* Last */
            put16(r + 32, 1024 + k % 60000);                        /* srcport */
            put16(r + 34, 443);                                     /* dstport */
            r[37] = 0x18;                                           /* tcp_flags PSH|ACK */
            r[38] = 6;                                              /* TCP */
            r[44] = 24;
            r[45] = 24;
        }
    }

    int fds[MAXEXP];
    long lo[MAXEXP], hi[MAXEXP], cur[MAXEXP];
    uint32_t seq[MAXEXP];
    for (long e = 0; e < exporters; e++) {
        fds[e] = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in src = {0};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000100u + 1 + e); /* 127.0.1.(e+1) */
        if (fds[e] < 0 || bind(fds[e], (struct sockaddr *)&src, sizeof src) < 0 ||
            connect(fds[e], (struct sockaddr *)&dst, sizeof dst) < 0) {
            perror("socket/bind/connect");
            return 1;
        }
        int sb = 4 << 20;
        setsockopt(fds[e], SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
        lo[e] = pool * e / exporters;
        hi[e] = pool * (e + 1) / exporters;
        cur[e] = lo[e];
        seq[e] = 0;
    }

    static struct iovec iov[MAXBATCH];
    static struct mmsghdr msgs[MAXBATCH];
    for (long i = 0; i < batch; i++) {
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        iov[i].iov_len = dlen;
    }
    long long sent = 0, errors = 0, calls = 0;
    unsigned long long packets = 0;
    /* dPkts summed per pool datagram, to report the packets sent */
    unsigned long long *dpk = calloc(pool, sizeof *dpk);
    if (!dpk) { perror("calloc"); return 1; }
    for (long d = 0; d < pool; d++)
        for (long i = 0; i < rpd; i++) {
            const unsigned char *r = buf + d * dlen + 24 + 48 * i;
            dpk[d] += ((uint32_t)r[16] << 24) | ((uint32_t)r[17] << 16) | ((uint32_t)r[18] << 8) | r[19];
        }
    static long first[MAXBATCH];
    double t0 = now_s(), tend = t0 + dur, t = t0;
    long e = 0;
    while ((count <= 0 || sent < count) && t < tend) {
        long n = batch;
        if (count > 0 && count - sent < n) n = count - sent;
        if (pps > 0) {
            double due = t0 + sent / pps;
            for (;;) {
                t = now_s();
                double w = due - t;
                if (w <= 0) break;
                if (w > 300e-6) {
                    struct timespec ts = {0, (long)((w - 200e-6) * 1e9)};
                    nanosleep(&ts, NULL);
                }
            }
        }
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        for (long i = 0; i < n; i++) {
            unsigned char *p = buf + cur[e] * dlen;
            put32(p + 8, rt.tv_sec);
            put32(p + 12, rt.tv_nsec);
            put32(p + 16, seq[e]);
            seq[e] += rpd;
            iov[i].iov_base = p;
            first[i] = cur[e];
            if (++cur[e] == hi[e]) cur[e] = lo[e];
        }
        long done = 0;
        while (done < n) {
            int r = sendmmsg(fds[e], msgs + done, n - done, 0);
            calls++;
            if (r < 0) {
                if (errno == EINTR) continue;
                errors++;
                if (errors > 1000) { perror("sendmmsg"); goto out; }
                /* ECONNREFUSED (nothing listening yet) or ENOBUFS: skip these */
                seq[e] -= rpd * (n - done);
                break;
            }
            for (int i = 0; i < r; i++) packets += dpk[first[done + i]];
            done += r;
        }
        sent += done;
        if (++e == exporters) e = 0;
        t = now_s();
    }
out:;
    double el = now_s() - t0;
    printf("{\"sent\":%lld,\"records\":%lld,\"packets\":%llu,\"seconds\":%.6f,\"pps\":%.1f,\"rps\":%.1f,"
           "\"errors\":%lld,\"calls\":%lld,\"flows\":%ld,\"exporters\":%ld,\"pool\":%ld}\n",
           sent, sent * rpd, packets, el, sent / el, sent * rpd / el, errors, calls, flows, exporters, pool);
    return 0;
}
