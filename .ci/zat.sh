#!/usr/bin/env bash
# The Zeek Analysis Tools (zat, PyPI) in a virtual environment, for the
# Zeek log test (tests/integration/zeek_logs.rs): its log reader parses
# every Zeek log nfstitch writes (flows, conn) into typed columns indexed by `ts`.
#
#   .ci/zat.sh      install into $NFSTITCH_ZAT_VENV (/opt/nfstitch-zat)
#
# Idempotent: when the venv's python already imports zat, nothing is touched.
# The test finds the venv's python as $NFSTITCH_ZAT_PYTHON or /opt/nfstitch-zat/bin/python.
set -euo pipefail

VENV=${NFSTITCH_ZAT_VENV:-/opt/nfstitch-zat}
PKG=zat==0.4.9

say() { echo "zat.sh: $*"; }
die() {
    echo "zat.sh: ERROR: $*" >&2
    exit 1
}

if "$VENV/bin/python" -c 'import zat' 2>/dev/null; then
    say "zat present in $VENV"
    exit 0
fi
command -v python3 >/dev/null || die "python3 not installed (run .ci/install-deps.sh)"
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    command -v apt-get >/dev/null || die "no python3 venv module and no apt-get; install python3-venv by hand"
    SUDO=()
    [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
    say "apt-get install -y --no-install-recommends python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" apt-get install -y --no-install-recommends python3-venv
fi
rm -rf "$VENV"
say "python3 -m venv $VENV"
python3 -m venv "$VENV"
say "pip install $PKG"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$PKG"
"$VENV/bin/python" -c 'from zat import zeek_log_reader' || die "zat does not import after install"
say "installed $PKG in $VENV"
