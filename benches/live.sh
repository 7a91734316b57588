#!/usr/bin/env bash
# benches/live.sh: what a new user sees (issue 16, "Live"): `nfstitch collect
# --workers 2` with DEFAULT flags, fed by the plain C sender
# (benches/c/sendmmsg.c: 30-record datagrams, 4 exporters, FLOWS distinct
# flows) at RATE datagrams/s for DURATION seconds, the sender sharing the two cores;
# then nfcapd with its defaults on the same traffic. RUNS runs each, in turn.
# Never part of .ci/run.
#
#   benches/live.sh                       # 3 runs, 50k datagrams/s, 2 s, 400k flows
#   RUNS=5 RATE=80000 DURATION=4 FLOWS=400000 benches/live.sh
#   NFSTITCH_ARGS="--reserve-flows 600000" benches/live.sh   # the fully reserved figure
#
# Prints, per run: nfstitch's kernel drops and receive_to_applied p99 /
# p99.9 / max (from --stats-json), and nfcapd's loss (records it counted
# against records sent). Results go to target/bench-results/live-<UTC>/.
# Needs gcc and nfcapd (Debian: nfdump); run as root or with a
# net.core.rmem_max of at least 32 MiB for nfstitch's default buffer (the
# collector warns with the sysctl line otherwise, and that is then what a new
# user would see too).

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-3}
RATE=${RATE:-50000}
DURATION=${DURATION:-2}
FLOWS=${FLOWS:-400000}
EXPORTERS=${EXPORTERS:-4}
PORT=${PORT:-29955}
# Extra flags for nfstitch (none: the defaults, the point of this script).
read -r -a EXTRA <<<"${NFSTITCH_ARGS:-}"
OUT=target/bench-results/live-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
command -v nfcapd >/dev/null || { echo "$0: needs nfcapd (apt-get install nfdump)" >&2; exit 1; }
cargo build --release -q --bin nfstitch
gcc -O2 -Wall -o "$OUT/sendmmsg" benches/c/sendmmsg.c
COUNT=$((RATE * DURATION))

# wait_line FILE TEXT: until FILE has a line with TEXT (at most 20 s).
wait_line() {
    for _ in $(seq 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$0: timed out waiting for '$2' in $1" >&2
    return 1
}

send() {
    "$OUT/sendmmsg" -t "127.0.0.1:$PORT" -e "$EXPORTERS" -f "$FLOWS" -p "$RATE" -c "$COUNT" >"$1"
}

pid=
# Only the receiver this script started, whatever ends the script.
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait' EXIT

for run in $(seq "$RUNS"); do
    d=$OUT/nfstitch-$run
    mkdir -p "$d"
    target/release/nfstitch collect --workers 2 --listen "127.0.0.1:$PORT" -o /dev/null \
        --stats-json "$d/stats.json" "${EXTRA[@]}" 2>"$d/stderr" &
    pid=$!
    wait_line "$d/stderr" "receive buffer"
    send "$d/sender.json"
    sleep 1
    kill -TERM "$pid"
    wait "$pid" || true
    pid=

    d=$OUT/nfcapd-$run
    mkdir -p "$d/flows"
    nfcapd -w "$d/flows" -p "$PORT" -b 127.0.0.1 >"$d/stdout" 2>"$d/stderr" &
    pid=$!
    sleep 1
    send "$d/sender.json"
    sleep 1
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
done

python3 - "$OUT" "$RUNS" <<'PY'
import json, os, re, sys
out, runs = sys.argv[1], int(sys.argv[2])
def j(p):
    with open(p) as f:
        return json.load(f)
print(f"| run | nfstitch kernel drops | of datagrams | receive_to_applied p99 | p99.9 | max | nfcapd loss |")
print("|---|---|---|---|---|---|---|")
for r in range(1, runs + 1):
    s = j(f"{out}/nfstitch-{r}/stats.json")
    sent = j(f"{out}/nfstitch-{r}/sender.json")
    lat = s["latency"]["receive_to_applied"]
    n = j(f"{out}/nfcapd-{r}/sender.json")
    txt = open(f"{out}/nfcapd-{r}/stderr").read() + open(f"{out}/nfcapd-{r}/stdout").read()
    got = sum(int(x) for x in re.findall(r"Ident: '[^']*' Flows: (\d+),", txt))
    if not got:
        sys.exit(f"nfcapd run {r}: no 'Ident: ... Flows:' line in its output ({out}/nfcapd-{r})")
    loss = (n["records"] - got) / n["records"]
    print(f"| {r} | {s.get('kernel_drops')} | {sent['sent']} | {lat['p99_us'] / 1000:.1f} ms | "
          f"{lat['p99_9_us'] / 1000:.1f} ms | {lat['max_us'] / 1000:.1f} ms | {100 * loss:.2f} % |")
PY
echo "raw results: $OUT"
