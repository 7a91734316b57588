#!/usr/bin/env bash
# benches/scaling.sh: nfstitch records/s with 1..WMAX workers (default: every
# core), loadgen unpaced on loopback, printed as a markdown table with
# records/s per worker and the scaling efficiency. Works unchanged on larger
# machines; benches/compare.sh calls it. Never part of .ci/run.
#
#   sudo benches/scaling.sh                      # workers 1..nproc
#   WMAX=8 RUNS=3 PROBE_S=5 benches/scaling.sh
#
# Core split for W workers on an N-core machine: the workers (the whole
# nfstitch process) on the last W cores, loadgen on the first N-W cores with
# one sending thread per core (at most MAX_THREADS), so that the sender has
# enough threads. When W = N there is no core left: one loadgen thread shares
# core 0 with worker 0, and the row says so. Every figure is the median of
# RUNS runs of PROBE_S seconds with [min-max]. A row with no loss is limited
# by the sender, not by nfstitch: its records/s is a lower bound.
#
# Knobs: WMAX RUNS PROBE_S MAX_THREADS FLOWS RPD RCVBUF IDLE BUILD RESULTS BASE_PORT

set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
N=$(getconf _NPROCESSORS_ONLN) # not nproc: a caller pinned to one core must not shrink the sweep
WMAX=${WMAX:-$N}
RUNS=${RUNS:-3}
PROBE_S=${PROBE_S:-5}
MAX_THREADS=${MAX_THREADS:-16}
FLOWS=${FLOWS:-100000}
RPD=${RPD:-30}
RCVBUF=${RCVBUF:-67108864}
IDLE=${IDLE:-1s}
BUILD=${BUILD:-1}
BASE_PORT=${BASE_PORT:-39700}
RES=${RESULTS:-$ROOT/target/bench-results/scaling-$(date -u +%Y%m%dT%H%M%SZ)}
NFSTITCH=$ROOT/target/release/nfstitch
LOADGEN=$ROOT/target/release/loadgen
mkdir -p "$RES" || exit 1
log() { printf '[%s] scaling: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ "$BUILD" = 1 ]; then
    cargo build --release -p nfstitch -p loadgen >"$RES/build.log" 2>&1 || { log "cargo build failed"; exit 1; }
fi
gcc -O2 -Wall -o "$RES/udpq" "$ROOT/benches/c/udpq.c" || exit 1
if [ "$(id -u)" = 0 ] && [ "$(cat /proc/sys/net/core/rmem_max)" -lt "$RCVBUF" ]; then
    log "note: net.core.rmem_max is below RCVBUF=$RCVBUF: the receive buffer is capped (compare.sh raises it for its run)"
fi

# Only the processes started here are signalled (PID + start time checked).
PID=""
PID_START=""
starttime() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }
ours() { [ -n "$PID" ] && [ "$(starttime "$PID")" = "$PID_START" ]; }
stop_rx() {
    ours && kill -TERM "$PID" 2>/dev/null
    for _ in $(seq 600); do ours || break; sleep 0.1; done
    ours && kill -KILL "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    PID=""
}
trap 'stop_rx' EXIT
trap 'exit 130' INT TERM

list() { # list FIRST LAST -> "a,b,..."
    seq -s, "$1" "$2"
}

printf '| workers | worker cpus | loadgen threads (cpus) | sent datagrams/s | accepted records/s | records/s per worker | efficiency | loss | note |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
base=""
port=$BASE_PORT
for w in $(seq 1 "$WMAX"); do
    [ "$w" -le "$N" ] || break
    free=$((N - w))
    note=""
    if [ "$free" -ge 1 ]; then
        t=$((free < MAX_THREADS ? free : MAX_THREADS))
        scpus=$(list 0 $((t - 1)))
        wcpus=$(list $((N - w)) $((N - 1)))
    else
        t=1
        scpus=0
        wcpus=$(list 0 $((N - 1)))
        note="sender shares core 0 with a worker"
    fi
    exporters=$((4 * t > 4 * w ? 4 * t : 4 * w))
    [ "$exporters" -gt 254 ] && exporters=254
    rows=""
    for run in $(seq "$RUNS"); do
        port=$((port + 1))
        d=$RES/w$w-run$run
        mkdir -p "$d"
        taskset -c "$wcpus" "$NFSTITCH" collect --listen "127.0.0.1:$port" --workers "$w" --cpus "$wcpus" \
            --rcvbuf "$RCVBUF" --idle "$IDLE" --linger "$IDLE" --stats-json "$d/stats.json" -o /dev/null -q \
            --stats-interval 0 >"$d/stdout" 2>"$d/stderr" &
        PID=$!
        PID_START=$(starttime "$PID")
        for _ in $(seq 100); do grep -q "listening on" "$d/stderr" 2>/dev/null && break; sleep 0.1; done
        timeout $((PROBE_S + 120)) taskset -c "$scpus" "$LOADGEN" --target "127.0.0.1:$port" --pps 0 \
            --duration "${PROBE_S}s" --threads "$t" --cpus "$scpus" --exporters "$exporters" --flows "$FLOWS" \
            --records-per-datagram "$RPD" --truth "$d/truth.json" >"$d/lg.out" 2>"$d/lg.err"
        "$RES/udpq" -e -T 30 "$port" >/dev/null
        stop_rx
        rows+=$(python3 - "$d" <<'EOF'
import json, re, sys
d = sys.argv[1]
s = json.load(open(d + "/stats.json"))
t = json.load(open(d + "/truth.json"))
m = re.search(r"in ([\d.]+) s", open(d + "/lg.out").read())
el = float(m.group(1))
print(t["datagrams"] / el, s["records"] / el, (t["records"] - s["records"]) / t["records"])
EOF
)$'\n'
        log "workers $w run $run: $(tail -1 <<<"${rows%$'\n'}")"
    done
    line=$(python3 - "$w" "$base" <<EOF
import statistics, sys
w = int(sys.argv[1]); base = float(sys.argv[2]) if sys.argv[2] else None
rows = [list(map(float, l.split())) for l in """$rows""".strip().splitlines()]
def k(x): return f"{x/1e6:.2f}M" if x >= 1e6 else f"{x/1e3:.1f}k"
def mm(v): return k(statistics.median(v)) + (f" [{k(min(v))}-{k(max(v))}]" if len(v) > 1 else "")
sent = [r[0] for r in rows]; acc = [r[1] for r in rows]; loss = [r[2] for r in rows]
per = [a / w for a in acc]
m = statistics.median(per)
eff = "1.00" if base is None else f"{m / base:.2f}"
lossy = max(loss) >= 0.001
print(f"{m}|{mm(sent)}|{mm(acc)}|{mm(per)}|{eff}|{100*statistics.median(loss):.3f}% [{100*min(loss):.3f}-{100*max(loss):.3f}%]|{'' if lossy else 'no loss: sender-bound, a lower bound'}")
EOF
)
    IFS='|' read -r perw sent acc per eff loss sb <<<"$line"
    [ -z "$base" ] && base=$perw
    note=$(printf '%s' "$note${note:+${sb:+; }}$sb")
    printf '| %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s |\n' "$w" "$wcpus" "$t" "$scpus" "$sent" "$acc" "$per" "$eff" "$loss" "$note"
done
printf '\n%s cores; efficiency = (records/s per worker) / (records/s of 1 worker); loadgen --exporters 4 per thread or worker, --flows %s, %s records per datagram, nfstitch --idle/--linger %s.\n' "$N" "$FLOWS" "$RPD" "$IDLE"
