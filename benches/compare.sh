#!/usr/bin/env bash
# benches/compare.sh: nfstitch side by side with nfcapd, nfacctd and a C
# recvmmsg null sink, on loopback, in one run (issue 6). Never part of .ci/run.
#
#   sudo benches/compare.sh              # the full run (~16 min on 2 cores, plus the build)
#   QUICK=1 sudo benches/compare.sh      # a smoke test of the harness (~3 min)
#
# What it does:
#   1. installs nfdump (nfcapd) and pmacct (nfacctd) from Debian when absent,
#      builds nfstitch and loadgen (release) and benches/c/*.c (gcc -O2);
#   2. raises net.core.rmem_max for the run (restored on exit, even on ^C);
#   3. pins the sender (and this script) to SENDER_CPU and every receiver
#      process and thread to RECV_CPU, all on 127.0.0.1;
#   4. measures, each figure RUNS times (median [min-max]):
#      - the senders' maximum rate: loadgen next to benches/c/sendmmsg.c,
#        both into the null sink;
#      - the maximum loss-free rate (< LOSS_MAX loss over PROBE_S seconds):
#        one unpaced probe, then a bisection between 0.5x and 1.05x what the
#        receiver accepted while overloaded, then RUNS confirmations;
#      - CPU-seconds per million records at fixed rates (RATES);
#      - the drain rate: receiver SIGSTOPped, DRAIN_COUNT datagrams queued in
#        a DRAIN_RCVBUF receive buffer, SIGCONT, time until the queue is empty;
#      - peak RSS (VmHWM) of every receiver, and nfstitch's memory per active
#        flow at MEM_FLOWS flows;
#      - nfstitch and nfcapd with the other workload (ALT=1): unpaced, and
#        CPU at the highest of RATES;
#   5. runs benches/scaling.sh and the criterion micro-benchmarks;
#   6. prints every table with the ratios, and writes everything to
#      target/bench-results/<UTC timestamp>/ (report.md, raw.jsonl, logs).
#
# Workloads (WORKLOAD): "recurring" (default; the issues' workload: the C
# sender cycling through FLOWS fixed flows from EXPORTERS exporters, so every
# record after the first pass updates an existing flow) or "model" (loadgen's
# traffic model: at these rates nearly every record is a new connection and,
# with IDLE=1s, an emitted flow). The loss-free, CPU and drain phases use
# WORKLOAD; the ALT phase runs the other one. nfstitch runs with --idle IDLE
# --linger IDLE on the model's traffic only; on the recurring flows it keeps
# its default timeouts (31 min idle, 310 s linger).
#
# Knobs (environment): WORKLOAD RUNS PROBE_S SEARCH_STEPS SENDER_CPU RECV_CPU EXPORTERS
# FLOWS RPD RCVBUF RATES DRAIN_COUNT DRAIN_RCVBUF RMEM_MAX_RUN MEM_FLOWS
# MEM_PPS RECEIVERS LOSS_MAX IDLE WARMUP_S INSTALL BUILD ALT SCALING CRITERION
# CRITERION_ARGS BASE_PORT RESULTS QUICK PHASES (which of senders lossfree cpu
# drain mem to run, all by default; e.g. PHASES=mem ALT=0 SCALING=0 CRITERION=0
# redoes the memory table alone).
# Receivers: nfstitch nfstitch-nostitch nfcapd nfacctd nullsink nullsink-meta
# (the null sink -m: it also reads each datagram's source address, receive
# timestamp and drop counter, as nfstitch must; the floor under nfstitch's
# CPU and drain figures; in the CPU and drain phases only).
# BENCHMARKS.md explains the method and what limits each number.

set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

PHASES=${PHASES:-senders lossfree cpu drain mem}
want() { [[ " $PHASES " == *" $1 "* ]]; }
for p in $PHASES; do
    case $p in
    senders | lossfree | cpu | drain | mem) ;;
    *)
        echo "benches/compare.sh: unknown phase '$p' in PHASES (senders lossfree cpu drain mem)" >&2
        exit 2
        ;;
    esac
done
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    : "${RUNS:=1}" "${PROBE_S:=2}" "${SEARCH_STEPS:=1}" "${DRAIN_COUNT:=50000}"
    : "${MEM_FLOWS:=100000 300000}" "${CRITERION:=0}"
fi
RUNS=${RUNS:-3}
PROBE_S=${PROBE_S:-5}
SEARCH_STEPS=${SEARCH_STEPS:-3}
SENDER_CPU=${SENDER_CPU:-0}
RECV_CPU=${RECV_CPU:-1}
EXPORTERS=${EXPORTERS:-4}
FLOWS=${FLOWS:-100000}
RPD=${RPD:-30}
RCVBUF=${RCVBUF:-67108864}
RATES=${RATES:-10000 50000}
DRAIN_COUNT=${DRAIN_COUNT:-200000}
DRAIN_RCVBUF=${DRAIN_RCVBUF:-536870912}
RMEM_MAX_RUN=${RMEM_MAX_RUN:-1073741824}
MEM_FLOWS=${MEM_FLOWS:-1000000 10000000}
MEM_PPS=${MEM_PPS:-25000}
RECEIVERS=${RECEIVERS:-nfstitch nfstitch-nostitch nfcapd nfacctd nullsink nullsink-meta}
LOSS_MAX=${LOSS_MAX:-0.001}
IDLE=${IDLE:-1s}
INSTALL=${INSTALL:-1}
BUILD=${BUILD:-1}
SCALING=${SCALING:-1}
CRITERION=${CRITERION:-1}
CRITERION_ARGS=${CRITERION_ARGS:---warm-up-time 1 --measurement-time 2}
ALT=${ALT:-1}
WORKLOAD=${WORKLOAD:-recurring}
case "$WORKLOAD" in
recurring) MAIN_SENDER=c ALT_SENDER=loadgen ;;
model) MAIN_SENDER=loadgen ALT_SENDER=c ;;
*) echo "WORKLOAD must be recurring or model, got $WORKLOAD" >&2; exit 2 ;;
esac
export WORKLOAD
BASE_PORT=${BASE_PORT:-39100}
WARMUP_S=${WARMUP_S:-2}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES=${RESULTS:-$ROOT/target/bench-results/$STAMP}
BIN=$RES/bin
NFSTITCH=$ROOT/target/release/nfstitch
LOADGEN=$ROOT/target/release/loadgen
T_START=$(date +%s)

mkdir -p "$RES/runs" "$BIN" || exit 1
: >"$RES/raw.jsonl"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$RES/log.txt" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes
# Only processes this script started are ever signalled: each is recorded with
# its start time (field 22 of /proc/PID/stat), checked again before a signal,
# so a recycled PID is never hit.
declare -A STARTED=()
starttime() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }
track() { STARTED[$1]=$(starttime "$1"); }
ours() { [ -n "${STARTED[$1]:-}" ] && [ "$(starttime "$1")" = "${STARTED[$1]}" ]; }
sig() { # sig SIGNAL PID...: signal our own processes only
    local s=$1 p
    shift
    for p in "$@"; do ours "$p" && kill "-$s" "$p" 2>/dev/null; done
    return 0
}
# Children of a tracked process (nfacctd's plugin) are tracked too.
track_tree() {
    local p c
    for p in "$@"; do
        for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do
            track "$c"
            track_tree "$c"
        done
    done
}
wait_gone() { # wait_gone TIMEOUT_S PID...; SIGKILL what is left
    local deadline=$(($(date +%s) + $1)) p alive
    shift
    while :; do
        alive=0
        for p in "$@"; do ours "$p" && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && alive=1; done
        [ $alive = 0 ] && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "warning: still running after the timeout, SIGKILL: $*"
            sig KILL "$@"
            sleep 0.5
            break
        fi
        sleep 0.1
    done
    for p in "$@"; do wait "$p" 2>/dev/null; unset "STARTED[$p]"; done
    return 0
}

RMEM_ORIG=$(cat /proc/sys/net/core/rmem_max)
cleanup() {
    local p
    for p in "${!STARTED[@]}"; do sig CONT "$p"; sig TERM "$p"; done
    sleep 0.5
    for p in "${!STARTED[@]}"; do sig KILL "$p"; done
    if [ "$(cat /proc/sys/net/core/rmem_max)" != "$RMEM_ORIG" ]; then
        sysctl -qw net.core.rmem_max="$RMEM_ORIG" && log "restored net.core.rmem_max=$RMEM_ORIG"
    fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- setup
[ "$(id -u)" = 0 ] || die "run as root: it installs packages and raises net.core.rmem_max for the run"
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || die "needs 2 cores (sender and receiver pinned apart); this machine has $NCPU"
command -v python3 >/dev/null || { [ "$INSTALL" = 1 ] && apt-get install -y python3 >/dev/null; }
command -v python3 >/dev/null || die "python3 is needed for the tables"

if [ "$INSTALL" = 1 ]; then
    need=()
    command -v nfcapd >/dev/null || need+=(nfdump)
    command -v nfacctd >/dev/null || need+=(pmacct)
    command -v gcc >/dev/null || need+=(gcc)
    command -v taskset >/dev/null || need+=(util-linux)
    if [ ${#need[@]} -gt 0 ]; then
        log "apt-get install ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq "${need[@]}" >"$RES/apt.log" 2>&1 ||
            die "apt-get install ${need[*]} failed (see $RES/apt.log)"
    fi
fi
for t in gcc taskset nfcapd nfdump nfacctd; do
    command -v "$t" >/dev/null || log "warning: $t not found; receivers that need it are skipped"
done

if [ "$BUILD" = 1 ]; then
    log "cargo build --release -p nfstitch -p loadgen"
    cargo build --release -p nfstitch -p loadgen >"$RES/build.log" 2>&1 || die "cargo build failed (see $RES/build.log)"
    if [ "$CRITERION" = 1 ]; then
        log "cargo bench --bench core --no-run"
        cargo bench --bench core --no-run >>"$RES/build.log" 2>&1 || die "cargo bench --no-run failed (see $RES/build.log)"
    fi
fi
[ -x "$NFSTITCH" ] && [ -x "$LOADGEN" ] || die "missing $NFSTITCH or $LOADGEN"
for c in nullsink sendmmsg udpq; do
    gcc -O2 -Wall -o "$BIN/$c" "$ROOT/benches/c/$c.c" 2>>"$RES/build.log" || die "gcc $c.c failed"
done
UDPQ=$BIN/udpq

log "rmem_max $RMEM_ORIG -> $RMEM_MAX_RUN for the run"
sysctl -qw net.core.rmem_max="$RMEM_MAX_RUN" || die "cannot set net.core.rmem_max"
# This script (and everything it starts without its own pinning) runs on the sender's core.
taskset -cp "$SENDER_CPU" $$ >/dev/null

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $NCPU cores ($(lscpu | sed -n 's/^Hypervisor vendor: *//p'))"
    echo "kernel: $(uname -r)"
    echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "rmem_max: $RMEM_ORIG (raised to $RMEM_MAX_RUN for the run)"
    echo "rustc: $(rustc --version 2>/dev/null)"
    echo "nfstitch: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "nfdump: $(nfcapd -V 2>&1 | head -1) ($(dpkg-query -W -f '${Version}' nfdump 2>/dev/null))"
    echo "pmacct: $(nfacctd -V 2>&1 | head -1) ($(dpkg-query -W -f '${Version}' pmacct 2>/dev/null))"
    echo "gcc: $(gcc --version | head -1)"
    echo "other load at start: $(cut -d' ' -f1-3 /proc/loadavg); fuzz processes: $(ps -eo comm,args | grep -c '[f]uzz')"
    echo "settings: RUNS=$RUNS PROBE_S=$PROBE_S SEARCH_STEPS=$SEARCH_STEPS SENDER_CPU=$SENDER_CPU RECV_CPU=$RECV_CPU EXPORTERS=$EXPORTERS FLOWS=$FLOWS RPD=$RPD RCVBUF=$RCVBUF RATES='$RATES' DRAIN_COUNT=$DRAIN_COUNT DRAIN_RCVBUF=$DRAIN_RCVBUF MEM_FLOWS='$MEM_FLOWS' MEM_PPS=$MEM_PPS IDLE=$IDLE LOSS_MAX=$LOSS_MAX WARMUP_S=$WARMUP_S CRITERION_ARGS='$CRITERION_ARGS'"
} >"$RES/env.txt"
cat "$RES/env.txt" >&2

# ---------------------------------------------------------------- python helper
PY=$RES/bench.py
cat >"$PY" <<'PYEOF'
import json, os, re, statistics, sys, glob

def rj(p):
    try:
        with open(p) as f:
            return json.load(f)
    except Exception:
        return None

def rt(p):
    try:
        with open(p, errors="replace") as f:
            return f.read()
    except Exception:
        return ""

def sender(d):
    t = rj(os.path.join(d, "truth.json"))
    if t is not None:
        out = rt(os.path.join(d, "lg.out"))
        m = re.search(r"send: (\d+) datagrams \((\d+) malformed\) to \S+ in ([\d.]+) s", out)
        el = float(m.group(3)) if m else None
        name = "loadgen-pool" if t.get("pool") else "loadgen"
        if os.path.exists(os.path.join(d, "nogso")):
            name += "-nogso"
        return dict(sender=name, sent_dg=t["datagrams"], sent_rec=t["records"],
                    sent_pk=t["packets"], elapsed=el)
    s = rj(os.path.join(d, "sender.json"))
    if s is not None:
        return dict(sender="sendmmsg", sent_dg=s["sent"], sent_rec=s["records"],
                    sent_pk=s["packets"], elapsed=s["seconds"])
    return dict(sender=None, sent_dg=None, sent_rec=None, sent_pk=None, elapsed=None)

def receiver(rx, d):
    r = dict(acc_dg=None, acc_rec=None, acc_pk=None, missing_data=None, rx_drops=None)
    if rx.startswith("nfstitch"):
        s = rj(os.path.join(d, "stats.json"))
        if s:
            r.update(acc_dg=s.get("datagrams"), acc_rec=s.get("records"), acc_pk=s.get("packets"),
                     rx_drops=s.get("kernel_drops"), flows_total=s.get("flows_total"),
                     evictions=s.get("evictions"), queue_stalls=s.get("queue_stalls"))
    elif rx.startswith("nullsink"):
        s = rj(os.path.join(d, "nullsink.json"))
        if s:
            r.update(acc_dg=s["datagrams"], acc_rec=s["records"], acc_pk=s["packets"])
    elif rx == "nfcapd":
        txt = rt(os.path.join(d, "stderr")) + rt(os.path.join(d, "stdout"))
        fl = [int(x) for x in re.findall(r"Ident: '[^']*' Flows: (\d+),", txt)]
        pk = [int(x) for x in re.findall(r"Ident: '[^']*' Flows: \d+, Packets: (\d+),", txt)]
        if fl:
            r.update(acc_rec=sum(fl), acc_pk=sum(pk))
    elif rx == "nfacctd":
        logtxt = rt(os.path.join(d, "nfacctd.log"))
        r["missing_data"] = len(re.findall(r"missing data", logtxt, re.I))
        sums = os.path.join(d, "csv_packets")
        if os.path.exists(sums):
            v = rt(sums).split()
            if v:
                r["acc_pk"] = int(float(v[0]))
                r["csv_rows"] = int(float(v[1])) if len(v) > 1 else None
    return r

def ingest(kv):
    d = kv["dir"]
    rec = dict(kv)
    rec.update(sender(d))
    rec.update(receiver(kv["rx"], d))
    for k in ("cpu0", "cpu1", "hwm_kb", "drops0", "drops1", "rss0_kb", "rss1_kb", "rate", "flows"):
        if k in rec and rec[k] not in ("", None):
            rec[k] = float(rec[k])
    if rec.get("drain") not in (None, ""):
        dj = rj(rec["drain"])
        rec["drain"] = dj
    hz = float(kv.get("hz", 100))
    if "cpu0" in rec and "cpu1" in rec:
        rec["cpu_s"] = (rec["cpu1"] - rec["cpu0"]) / hz
    drops = None
    if "drops0" in rec and "drops1" in rec:
        drops = rec["drops1"] - rec["drops0"]
    rec["kernel_drops_dg"] = drops
    sent_rec, sent_pk, sent_dg = rec["sent_rec"], rec["sent_pk"], rec["sent_dg"]
    loss = None
    if sent_rec:
        if rec["acc_rec"] is not None:
            loss, rec["loss_method"] = (sent_rec - rec["acc_rec"]) / sent_rec, "records"
        elif rec["acc_pk"] is not None and sent_pk:
            loss, rec["loss_method"] = (sent_pk - rec["acc_pk"]) / sent_pk, "packets"
        elif drops is not None and sent_dg:
            loss, rec["loss_method"] = drops / sent_dg, "kernel drops"
            if rec.get("missing_data"):
                rec["loss_method"] = "kernel drops (a lower bound: the plugin reported missing data)"
    rec["loss"] = loss
    lossmax = float(kv.get("lossmax", 0.001))
    rec["lossfree"] = loss is not None and loss < lossmax and not rec.get("missing_data")
    el = rec["elapsed"]
    rec["ach_pps"] = sent_dg / el if sent_dg and el else None
    rec["rec_per_dg"] = sent_rec / sent_dg if sent_dg else None
    acc_rec = rec["acc_rec"]
    if acc_rec is None and sent_rec is not None and loss is not None:
        acc_rec = sent_rec * (1 - min(loss, 1.0))
    rec["acc_rec_est"] = acc_rec
    rec["acc_pps"] = rec["ach_pps"] * (1 - min(loss, 1.0)) if rec["ach_pps"] and loss is not None else None
    if rec.get("cpu_s") is not None and acc_rec:
        frac = 1.0
        if float(kv.get("warm", 0) or 0) > 0 and el:
            # the CPU window began WARM s into the send: count its share of the records
            frac = min(1.0, float(kv["window_s"]) / el)
        rec["cpu_window_frac"] = frac
        rec["cpu_per_m"] = rec["cpu_s"] / (acc_rec * frac / 1e6)
    if isinstance(rec.get("drain"), dict) and sent_dg:
        dr = rec["drain"]
        queued = sent_dg - (drops or 0)
        rec["drain_dg"] = queued
        rec["drain_pps"] = queued / dr["seconds"] if dr.get("empty") and dr["seconds"] > 0 else None
    if rec.get("phase") == "mem":
        held = float(kv["flows"]) - (drops or 0) * float(kv.get("rpd", 30))
        rec["flows_held"] = held
        rec["bytes_per_flow"] = (rec["rss1_kb"] - rec["rss0_kb"]) * 1024 / held if held > 0 else None
    with open(kv["raw"], "a") as f:
        f.write(json.dumps(rec) + "\n")
    fmt = lambda x, p=0: "-" if x is None else f"{x:.{p}f}"
    print(f"{int(rec['lossfree'])} {fmt(rec['ach_pps'])} {fmt(rec['acc_pps'])} "
          f"{fmt(None if loss is None else 100 * loss, 4)} {fmt(rec.get('cpu_per_m'), 3)} "
          f"{fmt(rec.get('drain_pps'))} {fmt(rec.get('bytes_per_flow'))}")

# ------------------------------------------------------------------ report
def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None

def k(x):
    if x is None:
        return "-"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.2f}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"

def mmr(v, f=k):
    v = [x for x in v if x is not None]
    if not v:
        return "-"
    if len(v) == 1:
        return f(v[0])
    return f"{f(statistics.median(v))} [{f(min(v))}-{f(max(v))}]"

def pct(x):
    return "-" if x is None else "%.3f%%" % (100 * x)

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"

def report(raw, env_path):
    recs = [json.loads(l) for l in open(raw) if l.strip()]
    out = []
    p = out.append
    rxs = []
    for r in recs:
        if r.get("rx") and r["rx"] not in rxs and r.get("phase") in ("lossfree", "cpu", "drain"):
            rxs.append(r["rx"])
    label = {
        "nfstitch": "nfstitch (1 worker, stitching)",
        "nfstitch-nostitch": "nfstitch --no-stitch (1 worker)",
        "nfcapd": "nfcapd",
        "nfacctd": "nfacctd (print, 5-tuple)",
        "nullsink": "C recvmmsg null sink",
        "nullsink-meta": "C null sink -m (+ source address, timestamp, drop counter)",
    }
    L = lambda x: label.get(x, x)

    # senders
    snd = [r for r in recs if r.get("phase") == "sender"]
    lg = [r["ach_pps"] for r in snd if r["sender"] == "loadgen"]
    cs = [r["ach_pps"] for r in snd if r["sender"] == "sendmmsg"]
    MAIN = "sendmmsg" if os.environ.get("WORKLOAD", "recurring") == "recurring" else "loadgen"
    WDESC = ("recurring flows: the C sender cycling through %s flows from %s exporters" %
             (k(float(os.environ.get("FLOWS", "100000"))), os.environ.get("EXPORTERS", "4"))
             if MAIN == "sendmmsg" else "loadgen's model, 1 sender thread")
    smax = med(lg if MAIN == "loadgen" else cs)
    p("### Senders: maximum send rate into the null sink (datagrams/s, %s records each)\n" %
      k(med([r["rec_per_dg"] for r in snd])))
    p("| sender | datagrams/s | records/s | loss at the null sink | ratio |")
    p("|---|---|---|---|---|")
    lp = [r["ach_pps"] for r in snd if r["sender"] == "loadgen-pool"]
    lpn = [r["ach_pps"] for r in snd if r["sender"] == "loadgen-pool-nogso"]
    for name, v, rr in (("loadgen (1 thread, model live, UDP GSO)", lg, [r for r in snd if r["sender"] == "loadgen"]),
                        ("loadgen --pool (1 thread, UDP GSO)", lp, [r for r in snd if r["sender"] == "loadgen-pool"]),
                        ("loadgen --pool --no-gso (1 thread)", lpn, [r for r in snd if r["sender"] == "loadgen-pool-nogso"]),
                        ("C sendmmsg (benches/c/sendmmsg.c)", cs, [r for r in snd if r["sender"] == "sendmmsg"])):
        if not v:
            continue
        p(f"| {name} | {mmr(v)} | {mmr([r['ach_pps'] * r['rec_per_dg'] for r in rr if r['ach_pps']])} | "
          f"{mmr([100 * r['loss'] for r in rr if r['loss'] is not None], lambda x: '%.3f%%' % x)} | "
          f"{ratio(med(v), med(cs)) if name.startswith('loadgen') else '1.00x'} |")
    p("")

    # loss-free
    lf = {}
    for rx in rxs:
        conf = [r for r in recs if r.get("phase") == "lossfree" and r["rx"] == rx and r.get("step") == "confirm"]
        if rx == "nullsink" and not conf:
            conf = [r for r in snd if r["sender"] == MAIN]
        lf[rx] = conf
    lfm = {rx: med([r["ach_pps"] for r in v]) for rx, v in lf.items()}
    p("Workload of the loss-free, CPU and drain tables: %s.\n" % WDESC)
    p("### Maximum loss-free rate (loss < %s%% over %s s)\n" %
      (float(os.environ.get("LOSS_MAX", "0.001")) * 100, os.environ.get("PROBE_S", "5")))
    p("| receiver | datagrams/s | records/s | loss-free runs | vs nfcapd | vs null sink | note |")
    p("|---|---|---|---|---|---|---|")
    for rx in rxs:
        v = lf[rx]
        if not v:
            continue
        sb = all(r.get("rate") == 0 for r in v) and all(r["lossfree"] for r in v)
        note = "sender-bound: >= the sender's maximum" if sb else "at the highest loss-free paced rate found"
        sp = ">= " if sb else ""
        p(f"| {L(rx)} | {sp}{mmr([r['ach_pps'] for r in v])} | {sp}{mmr([r['ach_pps'] * r['rec_per_dg'] for r in v])} | "
          f"{sum(r['lossfree'] for r in v)}/{len(v)} | {ratio(lfm[rx], lfm.get('nfcapd'))} | "
          f"{ratio(lfm[rx], lfm.get('nullsink'))} | {note} |")
    ov = [r for r in recs if r.get("phase") == "lossfree" and r.get("step") == "search" and r.get("rate") == 0]
    if ov:
        p("\nUnpaced probe (sender at its maximum), what each receiver accepted:\n")
        p("| receiver | sent datagrams/s | accepted datagrams/s | loss |")
        p("|---|---|---|---|")
        for r in ov:
            p(f"| {L(r['rx'])} | {k(r['ach_pps'])} | {k(r['acc_pps'])} | "
              f"{pct(r['loss'])} ({r.get('loss_method', '')}) |")
    p("")

    # CPU
    rates = sorted({r["rate"] for r in recs if r.get("phase") == "cpu"})
    cpu = {(rx, rt_): [r for r in recs if r.get("phase") == "cpu" and r["rx"] == rx and r["rate"] == rt_]
           for rx in rxs for rt_ in rates}
    cm = {key: med([r.get("cpu_per_m") for r in v]) for key, v in cpu.items()}
    p("### CPU-seconds per million records at fixed rates (receiver processes, all threads; "
      "the first %s s of each run left out)\n" % os.environ.get("WARMUP_S", "2"))
    hdr = "| receiver | " + " | ".join(f"{k(x)} datagrams/s" for x in rates) + " | " + \
          " | ".join(f"vs nfcapd at {k(x)}" for x in rates) + " | runs with loss >= %s%% |" % \
          (float(os.environ.get("LOSS_MAX", "0.001")) * 100)
    p(hdr)
    p("|---" * (2 + 2 * len(rates)) + "|")
    for rx in rxs:
        cells = [mmr([r.get("cpu_per_m") for r in cpu[(rx, x)]], lambda y: f"{y:.3f}") for x in rates]
        rat = [ratio(cm[(rx, x)], cm.get(("nfcapd", x))) for x in rates]
        lossy = ", ".join(
            f"{k(x)}: {sum(not r['lossfree'] for r in cpu[(rx, x)])}/{len(cpu[(rx, x)])} "
            f"(median loss {pct(med([r['loss'] for r in cpu[(rx, x)]]))})"
            for x in rates if any(not r["lossfree"] for r in cpu[(rx, x)]))
        p(f"| {L(rx)} | " + " | ".join(cells) + " | " + " | ".join(rat) + f" | {lossy or 'none'} |")
    p("")

    # the other workload
    alt = [r for r in recs if r.get("phase") in ("alt", "alt-cpu")]
    if alt:
        hr = med([r["rate"] for r in alt if r["phase"] == "alt-cpu"])
        if MAIN == "sendmmsg":
            p("### The other workload: loadgen's model (1 sender thread)\n")
            p("At these rates nearly every record is a new connection and, with --idle/--linger %s, "
              "an emitted flow: the writer's formatting dominates.\n" % os.environ.get("IDLE", "1s"))
        else:
            p("### The other workload: the C sender cycling through %s fixed flows from %s exporters\n" %
              (k(float(os.environ.get("FLOWS", "100000"))), os.environ.get("EXPORTERS", "4")))
        p(f"| receiver | unpaced: sent datagrams/s | accepted datagrams/s | loss | loss-free runs | "
          f"CPU-s per M records at {k(hr)} datagrams/s | vs nfcapd |")
        p("|---|---|---|---|---|---|---|")
        acm = {rx: med([r.get("cpu_per_m") for r in alt if r["rx"] == rx and r["phase"] == "alt-cpu"])
               for rx in ("nfstitch", "nfcapd")}
        for rx in ("nfstitch", "nfcapd", "nullsink"):
            un = [r for r in alt if r["rx"] == rx and r["phase"] == "alt"]
            if rx == "nullsink":
                un = [r for r in snd if r["sender"] != MAIN]
            cp = [r.get("cpu_per_m") for r in alt if r["rx"] == rx and r["phase"] == "alt-cpu"]
            if not un and not cp:
                continue
            p(f"| {L(rx)} | {mmr([r['ach_pps'] for r in un])} | {mmr([r['acc_pps'] for r in un])} | "
              f"{mmr([None if r['loss'] is None else 100 * r['loss'] for r in un], lambda x: '%.3f%%' % x)} | "
              f"{sum(r['lossfree'] for r in un)}/{len(un)} | {mmr(cp, lambda y: '%.3f' % y)} | "
              f"{ratio(acm.get(rx), acm.get('nfcapd')) if cp else '-'} |")
        p("")

    # drain
    dr = {rx: [r for r in recs if r.get("phase") == "drain" and r["rx"] == rx] for rx in rxs}
    dm = {rx: med([r.get("drain_pps") for r in v]) for rx, v in dr.items()}
    if any(dr.values()):
        p("### Drain rate: %s datagrams queued while the receiver is stopped, then SIGCONT\n" %
          k(med([r["sent_dg"] for v in dr.values() for r in v])))
        p("| receiver | drain datagrams/s | records/s | vs null sink | vs nfcapd | dropped while queueing | lost |")
        p("|---|---|---|---|---|---|---|")
        for rx in rxs:
            v = dr[rx]
            if not v:
                continue
            p(f"| {L(rx)} | {mmr([r.get('drain_pps') for r in v])} | "
              f"{mmr([r['drain_pps'] * r['rec_per_dg'] for r in v if r.get('drain_pps')])} | "
              f"{ratio(dm[rx], dm.get('nullsink'))} | {ratio(dm[rx], dm.get('nfcapd'))} | "
              f"{mmr([r.get('kernel_drops_dg') for r in v])} | "
              f"{mmr([None if r['loss'] is None else 100 * r['loss'] for r in v], lambda x: '%.3f%%' % x)} |")
        p("")

    # peak RSS
    p("### Peak RSS (VmHWM, summed over the receiver's processes)\n")
    hi_rate = max(rates) if rates else None
    secs = float(os.environ.get("PROBE_S", "5")) + float(os.environ.get("WARMUP_S", "2"))
    p(f"| receiver | at {k(hi_rate)} datagrams/s for {secs:g} s | highest in any run |")
    p("|---|---|---|")
    for rx in rxs:
        a = [r.get("hwm_kb") for r in cpu.get((rx, hi_rate), [])]
        b = [r.get("hwm_kb") for r in recs if r.get("rx") == rx and r.get("hwm_kb")]
        f = lambda x: f"{x / 1024:.0f} MiB"
        p(f"| {L(rx)} | {mmr(a, f)} | {f(max(b)) if b else '-'} |")
    p("")

    mem = [r for r in recs if r.get("phase") == "mem"]
    if mem:
        p("### nfstitch memory per active flow (default timeouts, every record a new flow, RSS after - RSS before)\n")
        p("| active flows | RSS before | RSS after | bytes per flow | VmHWM |")
        p("|---|---|---|---|---|")
        for n in sorted({r["flows"] for r in mem}):
            v = [r for r in mem if r["flows"] == n]
            f = lambda x: f"{x / 1024:.0f} MiB"
            p(f"| {k(med([r['flows_held'] for r in v]))} | {mmr([r['rss0_kb'] for r in v], f)} | "
              f"{mmr([r['rss1_kb'] for r in v], f)} | {mmr([r['bytes_per_flow'] for r in v], lambda x: f'{x:.0f}')} | "
              f"{mmr([r['hwm_kb'] for r in v], f)} |")
        p("")

    # targets
    p("### Targets\n")
    nf, nc, ns = lfm.get("nfstitch"), lfm.get("nfcapd"), lfm.get("nullsink")
    nfv = lf.get("nfstitch", [])
    sb = bool(nfv) and all(r.get("rate") == 0 and r["lossfree"] for r in nfv)
    def yn(b):
        return "n/a" if b is None else ("**met**" if b else "**missed**")
    t1a = sb if nfv else None
    t1b = (nf / nc >= 2) if nf and nc else None
    p(f"- one worker loss-free at the sender's maximum: {yn(t1a)} "
      f"(nfstitch {'>= ' if sb else ''}{k(nf)} datagrams/s loss-free; sender maximum {k(smax)})")
    p(f"- loss-free rate >= 2x nfcapd's: {yn(t1b)} ({k(nf)} vs {k(nc)}: {ratio(nf, nc)}"
      f"{'; a lower bound, the sender is the limit' if sb else ''})")
    d1, d0, dmeta = dm.get("nfstitch"), dm.get("nullsink"), dm.get("nullsink-meta")
    p(f"- drain rate >= 50% of the null sink's: {yn(None if not (d1 and d0) else d1 / d0 >= 0.5)} "
      f"({k(d1)} vs {k(d0)} datagrams/s: {ratio(d1, d0)})")
    if dmeta and d0:
        p(f"  - for scale: the null sink -m, receiving the way nfstitch must and doing nothing "
          f"with the records, drains {k(dmeta)} ({ratio(dmeta, d0)} of the null sink); "
          f"nfstitch is {ratio(d1, dmeta)} of it")
    if rates:
        c1, c0 = cm.get(("nfstitch", hi_rate)), cm.get(("nfcapd", hi_rate))
        p(f"- CPU per million records at {k(hi_rate)} datagrams/s <= 0.5x nfcapd's: "
          f"{yn(None if not (c1 and c0) else c1 / c0 <= 0.5)} ({'-' if c1 is None else f'{c1:.3f}'} vs "
          f"{'-' if c0 is None else f'{c0:.3f}'} CPU-s: {ratio(c1, c0)})")
        for sink in ("nullsink", "nullsink-meta"):
            cs_ = cm.get((sink, hi_rate))
            if cs_ and c0:
                p(f"  - for scale: {L(sink)} {cs_:.3f} CPU-s ({ratio(cs_, c0)} of nfcapd's)")
    p("")
    print("\n".join(out))

def criterion(root, since):
    rows = []
    for est in sorted(glob.glob(os.path.join(root, "target/criterion/**/new/estimates.json"), recursive=True)):
        if os.path.getmtime(est) < since:
            continue  # not from this run
        d = os.path.dirname(est)
        e, b = rj(est), rj(os.path.join(d, "benchmark.json"))
        if not e or not b:
            continue
        ns = e["median"]["point_estimate"]
        lo, hi = e["median"]["confidence_interval"]["lower_bound"], e["median"]["confidence_interval"]["upper_bound"]
        thr = b.get("throughput") or {}
        el = thr.get("Elements")
        rows.append((b.get("full_id") or b.get("title"), ns, lo, hi, el))
    print("| benchmark | time per iteration (median [95% CI]) | elements | Melem/s | ns per element |")
    print("|---|---|---|---|---|")
    def t(x):
        return f"{x / 1e6:.3f} ms" if x >= 1e6 else (f"{x / 1e3:.2f} us" if x >= 1e3 else f"{x:.1f} ns")
    for name, ns, lo, hi, el in rows:
        mps = f"{el / ns * 1e3:.1f}" if el else "-"
        npe = f"{ns / el:.1f}" if el else "-"
        print(f"| {name} | {t(ns)} [{t(lo)}-{t(hi)}] | {el or '-'} | {mps} | {npe} |")

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "ingest":
        ingest(dict(a.split("=", 1) for a in sys.argv[2:]))
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3])
    elif cmd == "criterion":
        criterion(sys.argv[2], float(sys.argv[3]))
PYEOF

HZ=$(getconf CLK_TCK)

# ---------------------------------------------------------------- receivers
PORT_SEQ=0
next_port() { PORT=$((BASE_PORT + PORT_SEQ % 500)); PORT_SEQ=$((PORT_SEQ + 1)); }

have_rx() {
    case $1 in
    nfcapd) command -v nfcapd >/dev/null ;;
    nfacctd) command -v nfacctd >/dev/null ;;
    *) return 0 ;;
    esac
}

# rx_start NAME DIR BUF: start receiver NAME on 127.0.0.1:$PORT pinned to
# RECV_CPU; sets RX_PIDS (the process and its children). NFACCTD_CSV=0 would
# send nfacctd's output to /dev/null (then its loss is only known from the
# socket's drops and its "missing data" warnings); by default it writes CSV and
# the packets in it are summed.
rx_start() {
    local name=$1 d=$2 buf=$3 pid i
    RX_NAME=$name RX_DIR=$d RX_PIDS=""
    mkdir -p "$d"
    case $name in
    nfstitch | nfstitch-nostitch)
        local extra=()
        if [ -n "${NFSTITCH_EXTRA+set}" ]; then
            read -r -a extra <<<"$NFSTITCH_EXTRA"
        elif [ "${SENDER:-$MAIN_SENDER}" = loadgen ]; then
            # IDLE only where flows must end inside a run: loadgen's model.
            # The recurring flows keep nfstitch's default timeouts: with
            # IDLE=1s the drain's SIGSTOP pause alone would idle all 100k
            # flows out (emitted, formatted, then created again: another
            # workload than the issue's drain).
            extra=(--idle "$IDLE" --linger "$IDLE")
        fi
        [ "$name" = nfstitch-nostitch ] && extra+=(--no-stitch)
        taskset -c "$RECV_CPU" "$NFSTITCH" collect --listen "127.0.0.1:$PORT" --workers 1 --cpus "$RECV_CPU" \
            --rcvbuf "$buf" "${extra[@]}" \
            --stats-json "$d/stats.json" -o /dev/null -q --stats-interval 0 >"$d/stdout" 2>"$d/stderr" &
        ;;
    nfcapd)
        mkdir -p "$d/nfcapd"
        taskset -c "$RECV_CPU" nfcapd -w "$d/nfcapd" -p "$PORT" -b 127.0.0.1 -B "$buf" >"$d/stdout" 2>"$d/stderr" &
        ;;
    nfacctd)
        local csv="$d/nfacctd.csv"
        [ "${NFACCTD_CSV:-1}" = 0 ] && csv=/dev/null
        cat >"$d/nfacctd.conf" <<EOF
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: $PORT
nfacctd_pipe_size: $buf
plugins: print[p]
aggregate[p]: src_host, dst_host, src_port, dst_port, proto
print_output[p]: csv
print_output_file[p]: $csv
print_output_file_append[p]: true
print_refresh_time[p]: ${IDLE%s}
print_cache_entries[p]: 65537
plugin_pipe_size[p]: 268435456
plugin_buffer_size[p]: 1048576
logfile: $d/nfacctd.log
pidfile: $d/nfacctd.pid
EOF
        taskset -c "$RECV_CPU" nfacctd -f "$d/nfacctd.conf" >"$d/stdout" 2>"$d/stderr" &
        ;;
    nullsink)
        taskset -c "$RECV_CPU" "$BIN/nullsink" -p "$PORT" -b "$buf" -o "$d/nullsink.json" >"$d/stdout" 2>"$d/stderr" &
        ;;
    nullsink-meta)
        taskset -c "$RECV_CPU" "$BIN/nullsink" -m -p "$PORT" -b "$buf" -o "$d/nullsink.json" >"$d/stdout" 2>"$d/stderr" &
        ;;
    *) die "unknown receiver $name" ;;
    esac
    pid=$!
    track "$pid"
    # Ready: the port is bound (and nfacctd's plugin has its cache).
    for i in $(seq 100); do
        if "$UDPQ" "$PORT" >/dev/null 2>&1; then
            if [ "$name" != nfacctd ] || grep -q "cache entries=" "$d/nfacctd.log" 2>/dev/null; then
                break
            fi
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    "$UDPQ" "$PORT" >/dev/null 2>&1 || { log "warning: $name did not bind 127.0.0.1:$PORT (see $d)"; }
    sleep 0.2
    track_tree "$pid"
    RX_PIDS="$pid $(for c in "${!STARTED[@]}"; do [ "$(awk '{ sub(/^.*\) /, ""); print $2 }' "/proc/$c/stat" 2>/dev/null)" = "$pid" ] && echo "$c"; done)"
    RX_MAIN=$pid
}

# CPU ticks (utime+stime+cutime+cstime, every thread, dead ones included) and
# VmHWM/VmRSS (kB) summed over the receiver's processes.
rx_cpu() {
    local p s=0 v
    for p in $RX_PIDS; do
        v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || v=0
        s=$((s + ${v:-0}))
    done
    echo $s
}
rx_mem() { # rx_mem VmHWM|VmRSS
    local p s=0 v
    for p in $RX_PIDS; do
        v=$(awk -v k="$1:" '$1 == k { print $2 }' "/proc/$p/status" 2>/dev/null)
        s=$((s + ${v:-0}))
    done
    echo $s
}
rx_drops() { "$UDPQ" "$PORT" 2>/dev/null | awk '{ print $2 }'; }

rx_stop() {
    local s=TERM
    [ "$RX_NAME" = nfacctd ] && s=INT # nfacctd purges its cache and exits on SIGINT
    sig CONT $RX_PIDS
    sig "$s" "$RX_MAIN"
    # shellcheck disable=SC2086
    wait_gone 120 $RX_PIDS
    case $RX_NAME in
    nfacctd)
        if [ -f "$RX_DIR/nfacctd.csv" ]; then
            awk -F, '$1 != "SRC_IP" { s += $6; n++ } END { printf "%.0f %.0f\n", s, n }' "$RX_DIR/nfacctd.csv" >"$RX_DIR/csv_packets"
            rm -f "$RX_DIR/nfacctd.csv"
        fi
        ;;
    nfcapd) rm -rf "$RX_DIR/nfcapd" ;;
    esac
}

# lg_send PPS [COUNT]: loadgen from SENDER_CPU into $PORT (bounded in count and time)
lg_send() { # with LG_POOL=N: loadgen --pool N (pre-built datagrams cycled)
    local pps=$1 count=${2:-} bound=(--duration "${SEND_S:-$PROBE_S}s") pool=()
    [ -n "${LG_POOL:-}" ] && pool=(--pool "$LG_POOL")
    [ -n "${LG_NOGSO:-}" ] && pool+=(--no-gso) && touch "$RUN_DIR/nogso"
    [ -n "$count" ] && bound=(--count "$count" --duration 120s)
    timeout 180 taskset -c "$SENDER_CPU" "$LOADGEN" --target "127.0.0.1:$PORT" --pps "$pps" "${bound[@]}" \
        --exporters "$EXPORTERS" --flows "$FLOWS" --records-per-datagram "$RPD" --threads 1 --cpus "$SENDER_CPU" \
        "${pool[@]}" --truth "$RUN_DIR/truth.json" >"$RUN_DIR/lg.out" 2>"$RUN_DIR/lg.err"
}
c_send() { # c_send ARGS...: benches/c/sendmmsg from SENDER_CPU
    timeout 660 taskset -c "$SENDER_CPU" "$BIN/sendmmsg" -t "127.0.0.1:$PORT" -r "$RPD" "$@" >"$RUN_DIR/sender.json" 2>"$RUN_DIR/sender.err"
}

RUN_N=0
new_run() { # new_run PHASE RX TAG -> RUN_DIR
    RUN_N=$((RUN_N + 1))
    RUN_DIR=$RES/runs/$(printf '%03d' $RUN_N)-$1-$2${3:+-$3}
    mkdir -p "$RUN_DIR"
    next_port
}
ingest() { python3 "$PY" ingest raw="$RES/raw.jsonl" hz="$HZ" lossmax="$LOSS_MAX" rpd="$RPD" dir="$RUN_DIR" "$@"; }

# measure PHASE RX RATE STEP: one loadgen run of PROBE_S seconds at RATE
# (0 = unpaced) into a fresh receiver. Sets MRES="LOSSFREE ACH ACC LOSS% CPU/M ...".
# With WARM=S (CPU phases), the sender runs S seconds longer and the CPU window
# starts S seconds in, so that start-up (tables and caches growing, pages
# faulted in) is left out; the records in the window are counted pro rata.
measure() {
    local phase=$1 rx=$2 rate=$3 step=$4 c0 c1 d0 d1 hwm res warm=${WARM:-0} spid t_c0 t_end
    new_run "$phase" "$rx" "$rate"
    rx_start "$rx" "$RUN_DIR" "$RCVBUF"
    d0=$(rx_drops)
    c0=$(rx_cpu)
    SEND_S=$(python3 -c "print($PROBE_S + $warm)")
    if [ "${SENDER:-$MAIN_SENDER}" = c ]; then
        c_send -e "$EXPORTERS" -f "$FLOWS" -d "$SEND_S" -p "$rate" &
    else
        lg_send "$rate" &
    fi
    spid=$!
    t_c0=$(date +%s.%N)
    if [ "$warm" != 0 ]; then
        sleep "$warm"
        c0=$(rx_cpu)
        t_c0=$(date +%s.%N)
    fi
    wait "$spid"
    t_end=$(date +%s.%N) # the records counted are those sent in [t_c0, t_end]
    "$UDPQ" -e -T 30 "$PORT" >"$RUN_DIR/empty.json"
    # Steady state (WARM > 0): the window holds its arrivals' receive work and,
    # as the lagging work (flows idling out IDLE later, nfacctd purging every
    # IDLE) lags by the same amount at both ends, about as much lagging work
    # as those arrivals cause. Without WARM the CPU figure is only logged.
    c1=$(rx_cpu)
    hwm=$(rx_mem VmHWM)
    d1=$(rx_drops)
    rx_stop
    res=$(ingest phase="$phase" rx="$rx" rate="$rate" step="$step" cpu0="$c0" cpu1="$c1" hwm_kb="$hwm" drops0="$d0" drops1="$d1" \
        warm="$warm" window_s="$(python3 -c "print($t_end - $t_c0)")")
    log "$phase $rx rate=${rate} $step: lossfree/achieved/accepted/loss%/cpu-s-per-M: $res"
    MRES=$res
}

elapsed_min() { echo $((($(date +%s) - T_START) / 60)); }

# ---------------------------------------------------------------- 1. senders
if want senders; then
    log "== senders: loadgen and the C sendmmsg sender at their maximum, into the null sink"
    for run in $(seq "$RUNS"); do
        new_run sender nullsink loadgen
        rx_start nullsink "$RUN_DIR" "$RCVBUF"
        d0=$(rx_drops)
        c0=$(rx_cpu)
        lg_send 0
        "$UDPQ" -e -T 30 "$PORT" >/dev/null
        c1=$(rx_cpu) hwm=$(rx_mem VmHWM) d1=$(rx_drops)
        rx_stop
        log "sender loadgen run $run: $(ingest phase=sender rx=nullsink rate=0 step=confirm cpu0="$c0" cpu1="$c1" hwm_kb="$hwm" drops0="$d0" drops1="$d1")"
        # loadgen --pool: the model's datagrams pre-built (FLOWS/RPD of them, so
        # about FLOWS distinct flows recur, like the C sender's pool), then cycled.
        new_run sender nullsink loadgen-pool
        rx_start nullsink "$RUN_DIR" "$RCVBUF"
        d0=$(rx_drops)
        LG_POOL=$(((FLOWS + RPD - 1) / RPD)) lg_send 0
        "$UDPQ" -e -T 30 "$PORT" >/dev/null
        d1=$(rx_drops)
        rx_stop
        log "sender loadgen-pool run $run: $(ingest phase=sender rx=nullsink rate=0 step=pool drops0="$d0" drops1="$d1")"
        new_run sender nullsink loadgen-pool-nogso
        rx_start nullsink "$RUN_DIR" "$RCVBUF"
        d0=$(rx_drops)
        LG_NOGSO=1 LG_POOL=$(((FLOWS + RPD - 1) / RPD)) lg_send 0
        "$UDPQ" -e -T 30 "$PORT" >/dev/null
        d1=$(rx_drops)
        rx_stop
        log "sender loadgen-pool-nogso run $run: $(ingest phase=sender rx=nullsink rate=0 step=pool drops0="$d0" drops1="$d1")"
        new_run sender nullsink sendmmsg
        rx_start nullsink "$RUN_DIR" "$RCVBUF"
        d0=$(rx_drops)
        c_send -e "$EXPORTERS" -f "$FLOWS" -d "$PROBE_S"
        "$UDPQ" -e -T 30 "$PORT" >/dev/null
        d1=$(rx_drops)
        rx_stop
        log "sender sendmmsg run $run: $(ingest phase=sender rx=nullsink rate=0 step=c drops0="$d0" drops1="$d1")"
    done
fi

# ---------------------------------------------------------------- 2. loss-free
if want lossfree; then
    log "== maximum loss-free rate"
    for rx in $RECEIVERS; do
        have_rx "$rx" || continue
        # The null sink's probes are the sender runs above; -m's would be the same
        # (the sender is the limit for both).
        case $rx in nullsink*) continue ;; esac
        measure lossfree "$rx" 0 search
        read -r lf ach acc _ <<<"$MRES"
        if [ "$lf" = 1 ]; then
            # Loss-free with the sender unpaced: the sender is the limit. This probe is run 1.
            python3 - "$RES/raw.jsonl" <<'EOF'
import json, sys
p = sys.argv[1]
L = [json.loads(l) for l in open(p)]
L[-1]["step"] = "confirm"
open(p, "w").write("".join(json.dumps(r) + "\n" for r in L))
EOF
            for run in $(seq 2 "$RUNS"); do measure lossfree "$rx" 0 confirm; done
            continue
        fi
        if [ -z "${ach:-}" ] || [ "$ach" = - ]; then
            log "warning: $rx: the unpaced probe gave no result (see $RUN_DIR); no search"
            continue
        fi
        [ "${acc:-}" = - ] && acc=$ach
        lo=$(python3 -c "print(max(1000, int(0.5 * float('$acc'))))")
        hi=$(python3 -c "print(max(2 * $lo, int(min(float('$ach'), 1.05 * float('$acc')))))")
        lo_ok=0
        for step in $(seq "$SEARCH_STEPS"); do
            mid=$(((lo + hi) / 2))
            measure lossfree "$rx" "$mid" search
            read -r lf _ <<<"$MRES"
            if [ "$lf" = 1 ]; then lo=$mid lo_ok=1; else hi=$mid; fi
        done
        log "loss-free $rx: confirming at $lo datagrams/s (search passed there: $lo_ok)"
        for run in $(seq "$RUNS"); do measure lossfree "$rx" "$lo" confirm; done
    done
fi

# ---------------------------------------------------------------- 3. CPU at fixed rates
if want cpu; then
    log "== CPU per million records at fixed rates ($RATES datagrams/s); elapsed $(elapsed_min) min"
    for run in $(seq "$RUNS"); do
        for rate in $RATES; do
            for rx in $RECEIVERS; do
                have_rx "$rx" || continue
                WARM=$WARMUP_S measure cpu "$rx" "$rate" "run$run"
            done
        done
    done
fi

# ---------------------------------------------------------------- 4. drain
if want drain; then
    log "== drain: $DRAIN_COUNT datagrams queued while stopped, rcvbuf $DRAIN_RCVBUF; elapsed $(elapsed_min) min"
    for run in $(seq "$RUNS"); do
        for rx in $RECEIVERS; do
            have_rx "$rx" || continue
            new_run drain "$rx" "run$run"
            rx_start "$rx" "$RUN_DIR" "$DRAIN_RCVBUF"
            d0=$(rx_drops)
            c0=$(rx_cpu)
            # shellcheck disable=SC2086
            sig STOP $RX_PIDS
            if [ "$MAIN_SENDER" = c ]; then
                c_send -e "$EXPORTERS" -f "$FLOWS" -c "$DRAIN_COUNT"
            else
                lg_send 0 "$DRAIN_COUNT"
            fi
            "$UDPQ" "$PORT" >"$RUN_DIR/queued.txt"
            # shellcheck disable=SC2086
            "$UDPQ" -k "$(echo $RX_PIDS | tr ' ' ,)" -T 120 "$PORT" >"$RUN_DIR/drain.json"
            c1=$(rx_cpu) hwm=$(rx_mem VmHWM) d1=$(rx_drops)
            rx_stop
            log "drain $rx run $run: $(ingest phase=drain rx="$rx" rate=0 step="run$run" cpu0="$c0" cpu1="$c1" hwm_kb="$hwm" drops0="$d0" drops1="$d1" drain="$RUN_DIR/drain.json") (queued bytes, drops: $(cat "$RUN_DIR/queued.txt"))"
        done
    done
fi

# ---------------------------------------------------------------- 5. memory per flow
if want mem; then
    log "== nfstitch memory per active flow ($MEM_FLOWS flows, default timeouts); elapsed $(elapsed_min) min"
    for run in $(seq "$RUNS"); do
        for n in $MEM_FLOWS; do
            new_run mem nfstitch "$n"
            # --reserve-flows 0: every flow's memory is faulted in while it is
            # measured (the default reservation would already hold 128k of them).
            NFSTITCH_EXTRA="--max-flows $((n * 2 + 1000000)) --reserve-flows 0" rx_start nfstitch "$RUN_DIR" "$RCVBUF"
            sleep 0.3
            r0=$(rx_mem VmRSS)
            d0=$(rx_drops)
            c_send -e "$EXPORTERS" -f "$n" -c $(((n + RPD - 1) / RPD)) -p "$MEM_PPS"
            "$UDPQ" -e -T 60 "$PORT" >/dev/null
            sleep 1
            r1=$(rx_mem VmRSS) hwm=$(rx_mem VmHWM) d1=$(rx_drops)
            # The flows are not emitted: flushing 10M flows at shutdown takes long
            # and is not what is measured here.
            # shellcheck disable=SC2086
            sig KILL $RX_PIDS
            # shellcheck disable=SC2086
            wait_gone 10 $RX_PIDS
            log "mem $n run $run: $(ingest phase=mem rx=nfstitch rate="$MEM_PPS" step="run$run" flows="$n" rss0_kb="$r0" rss1_kb="$r1" hwm_kb="$hwm" drops0="$d0" drops1="$d1") (RSS $r0 -> $r1 kB)"
        done
    done
fi

# ---------------------------------------------------------------- 6. the other workload
# (see WORKLOAD above): recurring flows from the C sender, or loadgen's model.
if [ "$ALT" = 1 ]; then
    hi_rate=$(echo "$RATES" | tr ' ' '\n' | sort -n | tail -1)
    log "== the other workload (sender $ALT_SENDER): unpaced and at $hi_rate datagrams/s; elapsed $(elapsed_min) min"
    for run in $(seq "$RUNS"); do
        for rx in nfstitch nfcapd; do # the null sink's unpaced runs are the sender runs above
            have_rx "$rx" || continue
            SENDER=$ALT_SENDER measure alt "$rx" 0 "run$run"
            SENDER=$ALT_SENDER WARM=$WARMUP_S measure alt-cpu "$rx" "$hi_rate" "run$run"
        done
    done
fi

# ---------------------------------------------------------------- 7. scaling, criterion
if [ "$SCALING" = 1 ]; then
    log "== scaling sweep (benches/scaling.sh); elapsed $(elapsed_min) min"
    RUNS=$RUNS PROBE_S=$PROBE_S BUILD=0 RESULTS="$RES/scaling" IDLE=$IDLE RCVBUF=$RCVBUF \
        bash "$ROOT/benches/scaling.sh" >"$RES/scaling.md" 2>>"$RES/log.txt" || log "warning: scaling.sh failed"
fi
if [ "$CRITERION" = 1 ]; then
    log "== criterion micro-benchmarks (cargo bench --bench core); elapsed $(elapsed_min) min"
    # shellcheck disable=SC2086
    if cargo bench --bench core -- --noplot $CRITERION_ARGS >"$RES/criterion.txt" 2>&1; then
        python3 "$PY" criterion "$ROOT" "$T_START" >"$RES/criterion.md"
    else
        log "warning: cargo bench failed (see $RES/criterion.txt)"
    fi
fi

# ---------------------------------------------------------------- report
{
    echo "## Results $STAMP"
    echo
    echo '```'
    cat "$RES/env.txt"
    echo '```'
    echo
    WARMUP_S=$WARMUP_S LOSS_MAX=$LOSS_MAX PROBE_S=$PROBE_S FLOWS=$FLOWS EXPORTERS=$EXPORTERS python3 "$PY" report "$RES/raw.jsonl" "$RES/env.txt"
    if [ -s "$RES/scaling.md" ]; then
        echo "### Scaling sweep (benches/scaling.sh)"
        echo
        cat "$RES/scaling.md"
        echo
    fi
    if [ -s "$RES/criterion.md" ]; then
        echo "### Criterion micro-benchmarks (cargo bench --bench core)"
        echo
        cat "$RES/criterion.md"
        echo
    fi
    echo "Total time: $(($(date +%s) - T_START)) s; raw results: ${RES#"$ROOT"/}/raw.jsonl"
} >"$RES/report.md"
cat "$RES/report.md"
log "done in $(($(date +%s) - T_START)) s; results in $RES"
