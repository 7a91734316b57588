#!/usr/bin/env bash
# Install the Debian packages the interop test needs (tests/integration/interop.rs):
# softflowd (a real NetFlow v5 exporter), tcpdump, curl, nfdump (nfcapd/nfdump)
# and python3; openssl makes the ClickHouse test server's certificate (.ci/clickhouse.sh);
# promtool (Debian package prometheus) validates the metrics scrape. Idempotent: when every tool is already on PATH, apt is not touched.
# Run as root (or with sudo available). Fails loudly when it cannot install:
# CI needs these tools, and the test only skips when they are absent.
set -euo pipefail

# command name -> Debian package
declare -A PKG=(
    [softflowd]=softflowd
    [tcpdump]=tcpdump
    [curl]=curl
    [nfcapd]=nfdump
    [nfdump]=nfdump
    [python3]=python3
    [promtool]=prometheus
    [openssl]=openssl
)

missing=()
for cmd in softflowd tcpdump curl nfcapd nfdump python3 promtool openssl; do
    if path=$(command -v "$cmd"); then
        echo "install-deps: $cmd present ($path)"
    else
        echo "install-deps: $cmd missing (package ${PKG[$cmd]})"
        missing+=("${PKG[$cmd]}")
    fi
done

# The HTTPS test's wrong-CA case reads Debian's CA bundle.
if [ ! -f /etc/ssl/certs/ca-certificates.crt ]; then
    echo "install-deps: /etc/ssl/certs/ca-certificates.crt missing (package ca-certificates)"
    missing+=(ca-certificates)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: everything present, nothing to do"
    exit 0
fi

# Unique package names, in order.
pkgs=$(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++' | tr '\n' ' ')

if ! command -v apt-get >/dev/null; then
    echo "install-deps: ERROR: apt-get not available; install by hand: $pkgs" >&2
    exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
        SUDO=(sudo)
    else
        echo "install-deps: ERROR: not root and no sudo; install by hand: $pkgs" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get update"
"${SUDO[@]}" apt-get update
echo "install-deps: apt-get install -y --no-install-recommends $pkgs"
# shellcheck disable=SC2086
"${SUDO[@]}" apt-get install -y --no-install-recommends $pkgs

for cmd in softflowd tcpdump curl nfcapd nfdump python3 promtool openssl; do
    if ! path=$(command -v "$cmd"); then
        echo "install-deps: ERROR: $cmd still missing after install" >&2
        exit 1
    fi
    echo "install-deps: $cmd ok ($path)"
done
