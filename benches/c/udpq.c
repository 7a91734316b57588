/*
 * udpq: receive-queue probe for benches/compare.sh, the same for every
 * receiver (nfstitch, nfcapd, nfacctd, the null sink), read from
 * /proc/net/udp and /proc/net/udp6 and summed over the sockets bound to PORT.
 *
 *   udpq PORT                 print "RX_QUEUE_BYTES DROPS SOCKETS"
 *   udpq -e PORT [-T SEC]     wait until the receive queue is empty; print
 *                             {"empty":true|false,"seconds":S,...}
 *   udpq -k PID[,PID...] PORT [-T SEC]
 *                             SIGCONT the PIDs, then time how long until the
 *                             queue is empty (the drain time); poll every 50 us.
 *
 * DROPS is the kernel's per-socket drop counter (receive buffer full).
 * Build: gcc -O2 -Wall -o udpq udpq.c
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Sum rx_queue and drops over the sockets whose local port is `port`. */
static int probe(unsigned port, unsigned long long *rxq, unsigned long long *drops) {
    static const char *files[] = {"/proc/net/udp", "/proc/net/udp6"};
    static char line[1024];
    int n = 0;
    *rxq = 0;
    *drops = 0;
    for (int f = 0; f < 2; f++) {
        FILE *fp = fopen(files[f], "r");
        if (!fp) continue;
        if (!fgets(line, sizeof line, fp)) { fclose(fp); continue; }
        while (fgets(line, sizeof line, fp)) {
            char local[64];
            unsigned long txq, rq;
            if (sscanf(line, " %*d: %63s %*s %*x %lx:%lx", local, &txq, &rq) != 3) continue;
            char *c = strrchr(local, ':');
            if (!c || strtoul(c + 1, NULL, 16) != port) continue;
            /* drops is the last field */
            char *end = line + strlen(line);
            while (end > line && (end[-1] == '\n' || end[-1] == ' ')) *--end = 0;
            char *last = strrchr(line, ' ');
            *rxq += rq;
            *drops += last ? strtoull(last + 1, NULL, 10) : 0;
            n++;
        }
        fclose(fp);
    }
    return n;
}

int main(int argc, char **argv) {
    int opt, wait_empty = 0;
    pid_t pids[16];
    int npids = 0;
    double timeout = 30;
    while ((opt = getopt(argc, argv, "ek:T:")) != -1) {
        switch (opt) {
        case 'e': wait_empty = 1; break;
        case 'k':
            for (char *t = strtok(optarg, ","); t && npids < 16; t = strtok(NULL, ","))
                pids[npids++] = atoi(t);
            break;
        case 'T': timeout = atof(optarg); break;
        default: fprintf(stderr, "usage: udpq [-e | -k PID[,PID...]] [-T SEC] PORT\n"); return 2;
        }
    }
    if (optind >= argc) { fprintf(stderr, "udpq: PORT required\n"); return 2; }
    unsigned port = atoi(argv[optind]);
    unsigned long long rxq, drops;
    if (!wait_empty && !npids) {
        int n = probe(port, &rxq, &drops);
        printf("%llu %llu %d\n", rxq, drops, n);
        return n ? 0 : 1;
    }
    int n = probe(port, &rxq, &drops);
    unsigned long long rxq0 = rxq, drops0 = drops;
    double t0 = now_s(), t = t0;
    for (int i = 0; i < npids; i++)
        if (kill(pids[i], SIGCONT) < 0) { perror("kill SIGCONT"); return 1; }
    int empty = 0;
    long polls = 0;
    while (n > 0 && t - t0 < timeout) {
        n = probe(port, &rxq, &drops);
        polls++;
        t = now_s();
        if (rxq == 0) { empty = 1; break; }
        struct timespec ts = {0, npids ? 50000 : 5000000};
        nanosleep(&ts, NULL);
    }
    printf("{\"empty\":%s,\"seconds\":%.6f,\"rx_queue_bytes_before\":%llu,\"drops_before\":%llu,"
           "\"drops_after\":%llu,\"polls\":%ld,\"sockets\":%d}\n",
           empty ? "true" : "false", t - t0, rxq0, drops0, drops, polls, n);
    return empty ? 0 : 1;
}
