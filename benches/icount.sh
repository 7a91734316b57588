#!/usr/bin/env bash
# benches/icount.sh: instructions per record of the worker's path without
# syscalls (benches/icount.rs: Ingest::wire, then Shard::apply_segments over
# the records read in place), counted by valgrind's cachegrind. Unlike a
# time, the count does not move with this machine's neighbours, so two
# builds can be compared to the instruction. Never part of .ci/run.
#
#   benches/icount.sh [FLOWS...]          # default: 3000 100000
#   ICOUNT_VERSION=9 benches/icount.sh    # the same records as v9 (10: IPFIX)
#   ICOUNT_ALT=BINARY benches/icount.sh   # also count another build of
#       benches/icount.rs (e.g. an older commit's target/release/deps/icount-*)
#
# For each FLOWS and binary it prints instructions per record for the whole
# path ("path") and for checking, counting and noting alone ("ingest"):
# (instructions with BATCHES batches - instructions with none) / records.
# Knobs: BATCHES (500). Needs valgrind (Debian: apt-get install valgrind).

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
command -v valgrind >/dev/null || { echo "$0: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
BATCHES=${BATCHES:-500}
VERSION=${ICOUNT_VERSION:-5}
[ $# -gt 0 ] || set -- 3000 100000
BIN=$(cargo bench --bench icount --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1) || true
[ -n "$BIN" ] && [ -x "$BIN" ] || { echo "$0: could not build benches/icount.rs (cargo bench --bench icount --no-run)" >&2; exit 1; }

# ir BINARY ARGS...: instructions the whole run executed
ir() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
        awk '/I *refs:/ { gsub(",", "", $NF); print $NF }'
}

for flows in "$@"; do
    for bin in "$BIN" ${ICOUNT_ALT:+"$ICOUNT_ALT"}; do
        base=$(ir "$bin" "$flows" 0 1 $VERSION)
        path=$(ir "$bin" "$flows" "$BATCHES" 1 $VERSION)
        ingest=$(ir "$bin" "$flows" "$BATCHES" 0 $VERSION)
        records=$("$bin" "$flows" 1 0 $VERSION | sed 's/.*"records":\([0-9]*\).*/\1/')
        for v in "$base" "$path" "$ingest" "$records"; do
            [[ $v =~ ^[0-9]+$ ]] || { echo "$0: $bin $flows: no count from valgrind or the binary" >&2; exit 1; }
        done
        python3 - "$flows" "$bin" "$base" "$path" "$ingest" "$records" "$BATCHES" <<'PY'
import sys
flows, name, base, path, ingest, per_batch, batches = sys.argv[1:]
n = int(per_batch) * int(batches)
p = (int(path) - int(base)) / n
i = (int(ingest) - int(base)) / n
print(f"{flows} flows, {name}: path {p:.1f} instructions per record "
      f"(ingest {i:.1f}, merge {p - i:.1f})")
PY
    done
done
