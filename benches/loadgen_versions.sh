#!/usr/bin/env bash
# benches/loadgen_versions.sh: loadgen's own send rate by export format,
# side by side in one run (BENCHMARKS.md, "loadgen --pps 2M"). Not part of
# .ci/run. Each configuration sends `--pps 2M --duration 2s --exporters 4
# --threads 1` to a UDP socket on 127.0.0.1 that nobody reads (4 MiB
# buffer: the kernel queues what fits and drops the rest), once from a pool
# (`--pool 3334`) and once from the live model, for v5, v9 and IPFIX with
# IPv4 only and with 30% IPv6 sessions; RUNS (2) rounds, interleaved.
# Prints datagrams/s, records per datagram (each version's default) and
# records/s. Uses $CARGO_TARGET_DIR (or target)/release/loadgen and python3
# for the sink.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LG=${CARGO_TARGET_DIR:-$ROOT/target}/release/loadgen
PORT=${PORT:-39555}
RUNS=${RUNS:-2}
[ -x "$LG" ] || { echo "build first: cargo build --release -p loadgen" >&2; exit 1; }
python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(('127.0.0.1', $PORT))
time.sleep(3600)" &
SINK=$!
trap 'kill "$SINK" 2>/dev/null' EXIT
sleep 0.5
for run in $(seq "$RUNS"); do
    for mode in "--pool 3334" ""; do
        for v in "--version 5" "--version 9" "--version 10" "--version 9 --ipv6 0.3" "--version 10 --ipv6 0.3"; do
            # shellcheck disable=SC2086 # word splitting of the flag lists is meant
            out=$("$LG" --target "127.0.0.1:$PORT" $mode --pps 2M --duration 2s --exporters 4 --threads 1 $v 2>&1)
            dg=$(echo "$out" | grep -o 'achieved [0-9]*' | head -1 | cut -d' ' -f2)
            rpd=$(echo "$out" | grep -o '[0-9]* records/datagram' | head -1 | cut -d' ' -f1)
            echo "run $run  ${mode:-model}  $v  datagrams/s ${dg:-?}  records/datagram ${rpd:-?}  records/s $(( ${dg:-0} * ${rpd:-0} ))"
        done
    done
done
