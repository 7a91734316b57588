#!/usr/bin/env bash
# chDB (the chdb-core package: the ClickHouse 26 engine in-process) in a
# virtual environment, for the native-schema test (tests/integration/chdb.rs):
# Debian ships only ClickHouse 18.16, which gets the legacy schema.
#
#   .ci/chdb.sh      install into $NFSTITCH_CHDB_VENV (/opt/nfstitch-chdb)
#
# Idempotent: when the venv's python already imports chdb, nothing is touched.
# python3-venv comes from apt when `python3 -m venv` is missing. The test
# finds the venv's python as $NFSTITCH_CHDB_PYTHON or /opt/nfstitch-chdb/bin/python.
set -euo pipefail

VENV=${NFSTITCH_CHDB_VENV:-/opt/nfstitch-chdb}
PKG=chdb-core==26.9.0

say() { echo "chdb.sh: $*"; }
die() {
    echo "chdb.sh: ERROR: $*" >&2
    exit 1
}

if "$VENV/bin/python" -c 'import chdb' 2>/dev/null; then
    say "chdb present in $VENV ($("$VENV/bin/python" -c 'import chdb; print(chdb.__version__)' 2>/dev/null || echo '?'))"
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
"$VENV/bin/python" -c 'import chdb' || die "chdb does not import after install"
say "installed $PKG in $VENV"
