#!/usr/bin/env bash
# benches/probe.sh: the ad-hoc measurements of BENCHMARKS.md that
# compare.sh does not make. Never part of .ci/run. As root (raises
# net.core.rmem_max for the run and restores it).
#
#   sudo benches/probe.sh lossfree RATE...   # nfstitch (1 worker, core 1) fed by
#       loadgen --pool 3334 (UDP GSO, core 0) at each RATE (datagrams/s) for
#       5 s; prints sent, accepted, loss and kernel drops per probe
#   sudo benches/probe.sh sendmax THREADS... # loadgen --pool 3334 --pps 2M
#       into the C null sink (core 1) with THREADS sender threads (cores 0..);
#       prints loadgen's achieved rate and what the sink received
#   sudo benches/probe.sh sendcap THREADS... # the same into a socket nobody
#       reads (the null sink stopped, 4 MiB buffer): the sender's own ceiling
#       with no receiver competing for the cores; the kernel drops what does
#       not fit and counts it (Udp InDatagrams + RcvbufErrors, printed)
#   sudo benches/probe.sh drain RUNS         # the drain of compare.sh (200k
#       datagrams of FLOWS recurring flows queued while the receiver is
#       stopped, 512 MiB buffer), RUNS times for each of: the null sink,
#       the null sink -m (also reading source address, timestamp and drop
#       counter, as nfstitch does), nfstitch, nfstitch --reserve-flows 0 and, with NFSTITCH_ALT=BINARY,
#       that build too (e.g. an older commit's; all interleaved); prints the
#       time to empty the queue and the receiver's user and system CPU ticks
#       (1/100 s) spent on it
#   sudo benches/probe.sh coalesce WAIT...   # nfstitch (1 worker, core 1,
#       default timeouts) at 50k datagrams/s from the C sender (core 0,
#       100k recurring flows) with --rx-coalesce WAIT; prints its CPU-s per
#       million records over PROBE_S s after 2 s of warm-up
#
# Knobs: PROBE_S (5) RCVBUF (67108864) BUILD (1) NFSTITCH_ALT and FLOWS
# (100000; drain only: FLOWS=1000 keeps nfstitch's flow table in cache). Uses target/release
# binaries and builds benches/c/{nullsink,udpq,sendmmsg}.c into target/bench-probe/.

set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
PROBE_S=${PROBE_S:-5}
RCVBUF=${RCVBUF:-67108864}
BIN=$ROOT/target/bench-probe
NFSTITCH=$ROOT/target/release/nfstitch
LOADGEN=$ROOT/target/release/loadgen
mkdir -p "$BIN" || exit 1
mode=${1:-}
shift || true
case $mode in lossfree | sendmax | sendcap | drain | coalesce) ;; *)
    echo "usage: $0 lossfree RATE... | sendmax THREADS... | sendcap THREADS... | drain RUNS | coalesce WAIT..." >&2
    exit 2
    ;;
esac
[ $# -gt 0 ] || { echo "$0 $mode: give at least one value" >&2; exit 2; }

if [ "${BUILD:-1}" = 1 ]; then
    cargo build --release -p nfstitch -p loadgen >/dev/null 2>&1 || { echo "cargo build failed" >&2; exit 1; }
fi
for c in nullsink udpq sendmmsg; do
    gcc -O2 -Wall -o "$BIN/$c" "benches/c/$c.c" || exit 1
done

OLD_RMEM=$(cat /proc/sys/net/core/rmem_max)
sysctl -qw net.core.rmem_max=1073741824 || { echo "needs root (net.core.rmem_max)" >&2; exit 1; }
RX=
cleanup() {
    # CONT first: sendcap's sink may be stopped.
    [ -n "$RX" ] && kill -CONT "$RX" 2>/dev/null && kill -TERM "$RX" 2>/dev/null && wait "$RX" 2>/dev/null
    sysctl -qw net.core.rmem_max="$OLD_RMEM"
}
trap cleanup EXIT

port() { echo $((46100 + RANDOM % 800)); }

# utime and stime ticks of process $1
ticks() { awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat"; }

# nf_start BINARY PORT RCVBUF FLAG...: one nfstitch worker on core 1, output
# to /dev/null, in the background (its pid in $!).
nf_start() {
    local bin=$1 p=$2 buf=$3
    shift 3
    taskset -c 1 "$bin" collect --listen "127.0.0.1:$p" --workers 1 --cpus 1 --rcvbuf "$buf" \
        --stats-interval 0 -o /dev/null -q "$@" 2>/dev/null &
}

if [ "$mode" = drain ]; then
    for run in $(seq "$1"); do
        for rx in nullsink nullsink-meta nfstitch nfstitch-noreserve ${NFSTITCH_ALT:+nfstitch-alt}; do
            p=$(port)
            case $rx in
            nullsink) taskset -c 1 "$BIN/nullsink" -p "$p" -a 127.0.0.1 -b 536870912 -o "$BIN/sink.json" 2>/dev/null & ;;
            nullsink-meta) taskset -c 1 "$BIN/nullsink" -m -p "$p" -a 127.0.0.1 -b 536870912 -o "$BIN/sink.json" 2>/dev/null & ;;
            nfstitch) nf_start "$NFSTITCH" "$p" 536870912 ;;
            nfstitch-noreserve) nf_start "$NFSTITCH" "$p" 536870912 --reserve-flows 0 ;;
            nfstitch-alt) nf_start "$NFSTITCH_ALT" "$p" 536870912 ;;
            esac
            RX=$!
            sleep 0.5
            kill -STOP "$RX"
            taskset -c 0 "$BIN/sendmmsg" -t "127.0.0.1:$p" -e 4 -f "${FLOWS:-100000}" -c 200000 >/dev/null
            read -r u0 s0 < <(ticks "$RX")
            secs=$("$BIN/udpq" -k "$RX" -T 60 "$p" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
            read -r u1 s1 < <(ticks "$RX")
            kill -TERM "$RX"
            wait "$RX"
            RX=
            echo "drain run $run $rx (${FLOWS:-100000} flows): ${secs} s, user $((u1 - u0)) sys $((s1 - s0)) ticks"
        done
    done
elif [ "$mode" = lossfree ]; then
    for rate in "$@"; do
        p=$(port)
        nf_start "$NFSTITCH" "$p" "$RCVBUF" --idle 1s --linger 1s --stats-json "$BIN/stats.json"
        RX=$!
        sleep 0.5
        timeout $((PROBE_S + 60)) taskset -c 0 "$LOADGEN" --target "127.0.0.1:$p" --pps "$rate" \
            --duration "${PROBE_S}s" --exporters 4 --pool 3334 --threads 1 --cpus 0 \
            --truth "$BIN/truth.json" >/dev/null 2>&1
        "$BIN/udpq" -e -T 30 "$p" >/dev/null
        kill -TERM "$RX"
        wait "$RX"
        RX=
        python3 - "$rate" "$BIN/truth.json" "$BIN/stats.json" "$PROBE_S" <<'EOF'
import json, sys
rate, t, s, secs = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), float(sys.argv[4])
sent, acc = t["datagrams"], s["datagrams"]
print(f"lossfree rate {rate}: sent {sent} ({sent / secs:.0f}/s) accepted {acc} "
      f"loss {100 * (sent - acc) / sent:.3f}% kernel_drops {s['kernel_drops']}")
EOF
    done
elif [ "$mode" = coalesce ]; then
    for wait in "$@"; do
        p=$(port)
        nf_start "$NFSTITCH" "$p" "$RCVBUF" --rx-coalesce "$wait" --stats-json "$BIN/stats.json"
        RX=$!
        sleep 0.5
        taskset -c 0 "$BIN/sendmmsg" -t "127.0.0.1:$p" -e 4 -f 100000 -p 50000 -d $((PROBE_S + 2)) >/dev/null &
        S=$!
        sleep 2
        read -r u0 s0 < <(ticks "$RX")
        sleep "$PROBE_S"
        read -r u1 s1 < <(ticks "$RX")
        wait "$S"
        "$BIN/udpq" -e -T 30 "$p" >/dev/null
        kill -TERM "$RX"
        wait "$RX"
        RX=
        python3 - "$wait" "$BIN/stats.json" $((u1 - u0)) $((s1 - s0)) "$PROBE_S" <<'EOF'
import json, sys
wait, s, u, k, secs = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
m = 50000 * 30 * secs / 1e6
print(f"coalesce {wait}: user {u} sys {k} ticks, {(u + k) / 100 / m:.3f} CPU-s per M records, "
      f"kernel_drops {s['kernel_drops']}")
EOF
    done
elif [ "$mode" = sendcap ]; then
    # InDatagrams (counted as the sink reads them: it reads what is queued
    # when it stops) + RcvbufErrors (dropped: buffer full).
    udp() { awk '/^Udp: [0-9]/ { print $2 + $6 }' /proc/net/snmp; }
    for threads in "$@"; do
        p=$(port)
        taskset -c 1 "$BIN/nullsink" -p "$p" -a 127.0.0.1 -b 4194304 -o "$BIN/sink.json" 2>/dev/null &
        RX=$!
        sleep 0.3
        kill -STOP "$RX"
        u0=$(udp)
        cpus=$(seq -s, 0 $((threads - 1)))
        timeout $((PROBE_S + 60)) "$LOADGEN" --target "127.0.0.1:$p" --pps 2M --duration "${PROBE_S}s" \
            --exporters 4 --pool 3334 --threads "$threads" --cpus "$cpus" 2>&1 | grep -E '^send: (target|[0-9])'
        kill -CONT "$RX"
        kill -TERM "$RX"
        wait "$RX"
        RX=
        echo "sendcap threads $threads: the kernel took $(($(udp) - u0)) datagrams (read by the sink at the end, or dropped: buffer full)"
    done
else
    for threads in "$@"; do
        p=$(port)
        taskset -c 1 "$BIN/nullsink" -p "$p" -a 127.0.0.1 -b 134217728 -o "$BIN/sink.json" 2>/dev/null &
        RX=$!
        sleep 0.3
        cpus=$(seq -s, 0 $((threads - 1)))
        timeout $((PROBE_S + 60)) "$LOADGEN" --target "127.0.0.1:$p" --pps 2M --duration "${PROBE_S}s" \
            --exporters 4 --pool 3334 --threads "$threads" --cpus "$cpus" 2>&1 | grep -E '^send: (target|[0-9])'
        "$BIN/udpq" -e -T 30 "$p" >/dev/null
        kill -TERM "$RX"
        wait "$RX"
        RX=
        python3 -c "import json; print('sendmax threads $threads: the sink received', json.load(open('$BIN/sink.json'))['datagrams'])"
    done
fi
