#!/usr/bin/env bash
# A throwaway ClickHouse server on loopback for the ClickHouse sink test
# (tests/integration/clickhouse.rs).
#
#   .ci/clickhouse.sh install   apt-get install clickhouse-server clickhouse-client (skipped when present)
#   .ci/clickhouse.sh start     start it as a daemon; wait (<= 60 s) until /ping answers (http and https)
#   .ci/clickhouse.sh stop      stop the PID it started; wait (<= 60 s) until it is gone
#   .ci/clickhouse.sh status    exit 0 when it answers /ping, print where it is
#
# It listens on 127.0.0.1 only: HTTP on $CLICKHOUSE_HTTP_PORT (8123), HTTPS on
# $CLICKHOUSE_HTTPS_PORT (8443), native TCP on $CLICKHOUSE_TCP_PORT (9000); no
# interserver port, no IPv6. Config, data and logs live in $CLICKHOUSE_DIR
# (/tmp/nfstitch-clickhouse), written by `start`; data survives stop/start (the
# test restarts the server in the middle of a run), `start` on a fresh
# directory begins empty.
#
# HTTPS: the first `start` in a directory makes a self-signed certificate with
# openssl, $CLICKHOUSE_DIR/server.crt (key server.key; RSA 2048, 30 days,
# subjectAltName IP:127.0.0.1 and DNS:localhost, CA:FALSE so that rustls takes
# it as the server's own certificate), kept across stop/start (until a day
# before it expires) so a client holding it keeps working; the tests pass it
# as `--clickhouse-ca`. No dhParamsFile: the server then uses built-in DH
# groups (rustls only does ECDHE anyway), and generating DH parameters would
# take minutes.
# Cluster: `nfstitch_two_shards`, two shards on this one server, each shard's
# one replica this server's native port with its own default_database
# (nfstitch_shard1, nfstitch_shard2), for the --clickhouse-cluster test: a
# Distributed table with an empty database argument writes shard N's rows
# into nfstitch_shardN. No ZooKeeper, so no ON CLUSTER DDL.
# Debian 12 ships ClickHouse 18.16.
set -euo pipefail

DIR=${CLICKHOUSE_DIR:-/tmp/nfstitch-clickhouse}
HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-8123}
TCP_PORT=${CLICKHOUSE_TCP_PORT:-9000}
HTTPS_PORT=${CLICKHOUSE_HTTPS_PORT:-8443}
PIDFILE=$DIR/clickhouse-server.pid
URL=http://127.0.0.1:$HTTP_PORT/
HTTPS_URL=https://127.0.0.1:$HTTPS_PORT/
CERT=$DIR/server.crt
KEY=$DIR/server.key

say() { echo "clickhouse.sh: $*"; }
die() {
    echo "clickhouse.sh: ERROR: $*" >&2
    exit 1
}

ping_ok() {
    [ "$(curl -s --max-time 2 "${URL}ping" 2>/dev/null || true)" = "Ok." ]
}

https_ok() {
    [ "$(curl -s --max-time 2 --cacert "$CERT" "${HTTPS_URL}ping" 2>/dev/null || true)" = "Ok." ]
}

# A self-signed server certificate for 127.0.0.1 / localhost (once per directory,
# again when it expires within a day).
make_cert() {
    command -v openssl >/dev/null || die "openssl not installed (run .ci/install-deps.sh)"
    # Kept while valid for another day (a directory may outlive the 30 days).
    if [ -s "$CERT" ] && [ -s "$KEY" ] && openssl x509 -checkend 86400 -noout -in "$CERT" >/dev/null; then
        return 0
    fi
    cat >"$DIR/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = server
prompt = no
[dn]
CN = localhost
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
EOF
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -config "$DIR/openssl.cnf" \
        -keyout "$KEY.tmp" -out "$CERT.tmp" 2>"$DIR/log/openssl.log" || {
        cat "$DIR/log/openssl.log" >&2
        die "openssl could not make the server certificate"
    }
    chmod 600 "$KEY.tmp"
    mv "$KEY.tmp" "$KEY"
    mv "$CERT.tmp" "$CERT"
    say "made a self-signed certificate $CERT (127.0.0.1, localhost)"
}

recorded_pid() {
    local pid
    [ -s "$PIDFILE" ] || return 1
    pid=$(tr -dc '0-9' <"$PIDFILE")
    [ -n "$pid" ] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Only ever signal our own server, never a reused PID.
    grep -q clickhouse "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

install() {
    if command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null; then
        say "clickhouse-server present ($(command -v clickhouse-server)), nothing to install"
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not available; install clickhouse-server by hand"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo; install clickhouse-server by hand"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    say "apt-get update"
    "${sudo[@]}" apt-get update
    say "apt-get install -y --no-install-recommends clickhouse-server clickhouse-client curl"
    # The package's own service start is refused in containers (policy-rc.d); that is fine:
    # `start` runs a server of our own.
    "${sudo[@]}" apt-get install -y --no-install-recommends clickhouse-server clickhouse-client curl
    command -v clickhouse-server >/dev/null || die "clickhouse-server still missing after install"
    say "installed $(dpkg-query -W -f='${Version}' clickhouse-server 2>/dev/null || echo '?')"
}

write_config() {
    mkdir -p "$DIR/data" "$DIR/tmp" "$DIR/user_files" "$DIR/format_schemas" "$DIR/log"
    cat >"$DIR/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$DIR/log/clickhouse-server.log</log>
        <errorlog>$DIR/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <listen_try>0</listen_try>
    <http_port>$HTTP_PORT</http_port>
    <https_port>$HTTPS_PORT</https_port>
    <openSSL>
        <server>
            <certificateFile>$CERT</certificateFile>
            <privateKeyFile>$KEY</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
    <tcp_port>$TCP_PORT</tcp_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>50</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$DIR/data/</path>
    <tmp_path>$DIR/tmp/</tmp_path>
    <user_files_path>$DIR/user_files/</user_files_path>
    <format_schema_path>$DIR/format_schemas/</format_schema_path>
    <users_config>$DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <remote_servers>
        <nfstitch_two_shards>
            <shard>
                <replica>
                    <host>127.0.0.1</host>
                    <port>$TCP_PORT</port>
                    <default_database>nfstitch_shard1</default_database>
                </replica>
            </shard>
            <shard>
                <replica>
                    <host>127.0.0.1</host>
                    <port>$TCP_PORT</port>
                    <default_database>nfstitch_shard2</default_database>
                </replica>
            </shard>
        </nfstitch_two_shards>
    </remote_servers>
</yandex>
EOF
    cat >"$DIR/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

start() {
    command -v clickhouse-server >/dev/null || die "clickhouse-server not installed (run: $0 install)"
    command -v curl >/dev/null || die "curl not installed"
    if pid=$(recorded_pid) && ping_ok; then
        say "already running (pid $pid) at $URL and $HTTPS_URL"
        return 0
    fi
    if ping_ok; then
        die "something else already answers on $URL; set CLICKHOUSE_HTTP_PORT"
    fi
    write_config
    make_cert
    rm -f "$PIDFILE"
    say "starting clickhouse-server on 127.0.0.1:$HTTP_PORT (data in $DIR)"
    # --daemon forks and detaches; the server writes its PID into --pid-file.
    clickhouse-server --config-file="$DIR/config.xml" --pid-file="$PIDFILE" --daemon \
        >"$DIR/log/stdout.log" 2>&1 </dev/null || {
        tail -n 30 "$DIR/log/stdout.log" "$DIR/log/clickhouse-server.err.log" 2>/dev/null >&2 || true
        die "clickhouse-server did not start"
    }
    local i
    for ((i = 0; i < 600; i++)); do
        if ping_ok && https_ok; then
            say "up after $((i / 10)).$((i % 10)) s (pid $(recorded_pid || echo '?')) at $URL and $HTTPS_URL (CA file $CERT)"
            return 0
        fi
        sleep 0.1
    done
    tail -n 30 "$DIR/log/stdout.log" "$DIR/log/clickhouse-server.err.log" 2>/dev/null >&2 || true
    die "clickhouse-server did not answer ${URL}ping and ${HTTPS_URL}ping within 60 s"
}

stop() {
    local pid i
    if ! pid=$(recorded_pid); then
        say "not running (no live PID in $PIDFILE)"
        return 0
    fi
    say "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            say "stopped after $((i / 10)).$((i % 10)) s"
            return 0
        fi
        sleep 0.1
    done
    say "pid $pid still alive after 60 s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || {
            rm -f "$PIDFILE"
            return 0
        }
        sleep 0.1
    done
    die "pid $pid survived SIGKILL"
}

status() {
    if ping_ok; then
        say "up at $URL (pid $(recorded_pid || echo 'not ours')); https: $(https_ok && echo "$HTTPS_URL, CA file $CERT" || echo down)"
        return 0
    fi
    say "down (nothing answers ${URL}ping)"
    return 1
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 install|start|stop|status" >&2
    exit 2
    ;;
esac
