#!/usr/bin/env bash
# broker.sh - a real single-node Apache Kafka broker (KRaft, combined
# broker+controller) for Runnel's end-to-end tests.
#
#   broker.sh fetch                               cache the jars, print the libs dir
#   broker.sh start --dir DIR [--watch-pid PID] [--security sasl_ssl]
#                                                 start a broker, print 127.0.0.1:PORT
#   broker.sh stop  --dir DIR                     stop it (and its watcher): SIGTERM, a clean shutdown
#   broker.sh kill  --dir DIR                     stop it (and its watcher) with SIGKILL: a crash
#   broker.sh resume --dir DIR [--watch-pid PID]  start a stopped broker again on its ports and data
#   broker.sh status --dir DIR                    print the bootstrap address if running
#
# Why this shape:
# - No Docker engine here, and the only network we have is the package
#   registries, so the broker comes from Maven Central as plain jars and runs
#   on the local JDK (`java -cp libs/* kafka.Kafka`).
# - Jars are cached outside the repository, per Kafka version, in
#   ${RUNNEL_CACHE:-$HOME/.cache/runnel}/kafka-<version>/libs; a stamp file marks
#   a finished download so an interrupted one is redone.
# - Every broker gets its own directory, ports, cluster id and log dirs, so
#   parallel or repeated test runs never share state.
# - stdout carries only the one result line (bootstrap address or libs dir),
#   so callers can use `addr=$(broker.sh start ...)`; diagnostics go to stderr.
#
# Environment knobs (all optional):
#   RUNNEL_CACHE              cache root (default $HOME/.cache/runnel)
#   RUNNEL_KAFKA_HEAP         JVM heap flags (default "-Xmx512m -Xms512m")
#   RUNNEL_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 90)
#   RUNNEL_KAFKA_PROBE        "auto" (kcat if installed, else raw TCP), "kcat" or "tcp"
#
# --security sasl_ssl: the printed address is a SASL_SSL listener (TLS with a
# certificate of a CA made for this run, SASL mechanisms SCRAM-SHA-512 and
# PLAIN); the controller and inter-broker listeners stay PLAINTEXT on
# loopback, on ports of their own. DIR/security.env then holds, as
# NAME=value lines, the CA file and a SCRAM and a PLAIN user with their
# passwords (see write_security). No authorizer runs: any authenticated
# user may do anything, as with plain listeners. The default, plain mode,
# is unchanged.
set -euo pipefail

# ---------------------------------------------------------------------------
# Pinned versions. Kafka 4.1.2 is the latest patch of the 4.1 line on Maven
# Central. Kafka's published pom brings log4j-core/-api 2.25.3 and slf4j-api
# 1.7.36 but declares no slf4j binding, so we add the matching
# log4j-slf4j-impl (the slf4j 1.x -> log4j2 bridge) ourselves; without one,
# slf4j falls back to its no-op logger and the broker's logs are dropped.
# ---------------------------------------------------------------------------
readonly KAFKA_VERSION=4.1.2
readonly SCALA_BINARY=2.13
readonly LOG4J_VERSION=2.25.3
# Pin the plugin too: Maven 3.8's default maven-dependency-plugin is 2.8.
readonly DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

readonly CACHE_ROOT="${RUNNEL_CACHE:-$HOME/.cache/runnel}"
readonly KAFKA_CACHE="$CACHE_ROOT/kafka-$KAFKA_VERSION"
readonly LIBS="$KAFKA_CACHE/libs"
readonly STAMP="$KAFKA_CACHE/libs.complete"
readonly KAFKA_JAR="kafka_$SCALA_BINARY-$KAFKA_VERSION.jar"

# Main classes in Kafka 4.1: the broker is still the Scala object kafka.Kafka
# (what bin/kafka-server-start.sh runs) and storage formatting is still
# kafka.tools.StorageTool in the core jar (what bin/kafka-storage.sh runs).
readonly BROKER_MAIN=kafka.Kafka
readonly STORAGE_MAIN=kafka.tools.StorageTool

readonly HEAP_OPTS="${RUNNEL_KAFKA_HEAP:--Xmx512m -Xms512m}"
readonly START_TIMEOUT="${RUNNEL_KAFKA_START_TIMEOUT:-90}"
readonly PROBE="${RUNNEL_KAFKA_PROBE:-auto}"
# Seconds between SIGTERM and SIGKILL. Kafka shuts down cleanly on SIGTERM
# (flushes logs, resigns as controller); a single node takes a few seconds.
readonly STOP_GRACE=20
readonly START_ATTEMPTS=3  # retries only for a lost race on a picked port

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
readonly SELF
# shellcheck source=SCRIPTDIR/../lib/service.sh
source "$(dirname "$SELF")/../lib/service.sh"
readonly SERVICE=broker
readonly SERVICE_PID_FILE=broker.pid
readonly SERVICE_LOG=broker.log
readonly SERVICE_FILES=("$SERVICE_PID_FILE")
readonly SERVICE_ADDRESS=bootstrap

usage() {
  cat >&2 <<EOF
usage: broker.sh fetch
       broker.sh start --dir DIR [--watch-pid PID] [--security plaintext|sasl_ssl]
       broker.sh stop --dir DIR
       broker.sh kill --dir DIR
       broker.sh resume --dir DIR [--watch-pid PID]
       broker.sh status --dir DIR
EOF
  exit 2
}


# ---------------------------------------------------------------------------
# fetch: resolve kafka_2.13 + runtime deps + logging binding into $LIBS.
# ---------------------------------------------------------------------------
libs_ready() { [[ -f "$STAMP" && -f "$LIBS/$KAFKA_JAR" ]]; }

fetch_libs() {
  libs_ready && return 0
  need mvn "install Maven"
  need java "install a JDK >= 17"
  need flock
  mkdir -p "$KAFKA_CACHE"
  # Serialise concurrent fetches (e.g. parallel test processes on a cold
  # cache). The lock fd lives only in this subshell, so neither the broker
  # nor the watcher started later can inherit it and hold the lock forever.
  (
    flock 9
    libs_ready && exit 0
    # Holding the lock, nobody else is fetching: leftovers are from a killed run.
    rm -rf "$KAFKA_CACHE"/fetch.*
    local work
    work="$(mktemp -d "$KAFKA_CACHE/fetch.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
    # A throwaway pom whose only purpose is to let copy-dependencies compute
    # the runtime classpath exactly as Kafka's published poms declare it.
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>runnel.tests</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_BINARY</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
    # -B: no progress bars in CI logs; -q: only errors. Maven's output goes
    # to stderr because stdout is reserved for our single result line; the
    # sed drops the bare colour-reset codes Debian's Maven 3.8 prints even in
    # batch mode. pipefail keeps mvn's exit status.
    mvn -B -q -f "$work/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="$work/libs" 2>&1 \
      | sed 's/\x1b\[[0-9;]*m//g' >&2 \
      || die "mvn could not fetch Kafka $KAFKA_VERSION (is Maven Central reachable?)"
    [[ -f "$work/libs/$KAFKA_JAR" ]] || die "mvn finished but $KAFKA_JAR is missing"
    # Swap the finished directory in, then stamp; a crash before the stamp
    # leaves a directory that the next run throws away and fetches again.
    rm -rf "$LIBS" "$STAMP"
    mv "$work/libs" "$LIBS"
    ls "$LIBS" >"$STAMP"
    log "cached $(wc -l <"$STAMP") jars"
  ) 9>"$KAFKA_CACHE/.fetch.lock"
  libs_ready || die "fetch did not complete"
}

service_pid_if_ours() {
  # Prints the broker's PID if DIR/broker.pid names a live broker of DIR.
  local dir=$1 pid
  pid="$(read_pid "$dir/$SERVICE_PID_FILE")" || return 1
  [[ -n "$pid" ]] && pid_cmdline_has "$pid" "$BROKER_MAIN" "$dir/server.properties" && echo "$pid"
}

# ---------------------------------------------------------------------------
# Readiness. "Listening" is not enough: the produce path needs the broker to
# be registered and unfenced, and an unfenced broker is exactly one that
# appears in a Metadata response. kcat (librdkafka, independent of Kafka's
# JVM tools) is used when installed; otherwise we speak the Kafka protocol
# directly over bash's /dev/tcp: one Metadata v4 request, and we check that
# the reply carries our correlation id and lists broker node 1.
# ---------------------------------------------------------------------------
probe_kcat() {
  timeout 15 kcat -b "$1" -L -m 5 2>/dev/null | grep -q ' broker 1 at '
}

probe_tcp() {
  local host=${1%:*} port=${1##*:} hex
  # Request: int32 size=21 | api_key=3 (Metadata) | api_version=4 |
  # correlation_id="RUNN" | client_id="runnel" | topics=null (-1) |
  # allow_auto_topic_creation=false. Metadata v4 is the oldest version Kafka
  # 4.x still accepts (KIP-896) and has no flexible/tagged fields.
  # shellcheck disable=SC2016  # $0/$1 are expanded by the inner bash
  hex="$(timeout 5 bash -c '
      exec 3<>"/dev/tcp/$0/$1" || exit 1
      printf "\x00\x00\x00\x15\x00\x03\x00\x04RUNN\x00\x06runnel\xff\xff\xff\xff\x00" >&3
      head -c 20 <&3 | od -An -v -tx1
    ' "$host" "$port" 2>/dev/null | tr -d ' \n')" || return 1
  # Reply: size(4) correlation_id(4) throttle_ms(4) broker_count(4) node_id(4)
  [[ ${#hex} -eq 40 && "${hex:8:8}" == 52554e4e && "${hex:24:8}" != 00000000 &&
     "${hex:32:8}" == 00000001 ]]
}

probe() {
  case "$PROBE" in
    kcat) probe_kcat "$1" ;;
    tcp) probe_tcp "$1" ;;
    auto) if command -v kcat >/dev/null 2>&1; then probe_kcat "$1"; else probe_tcp "$1"; fi ;;
    *) die "RUNNEL_KAFKA_PROBE must be auto, kcat or tcp (got '$PROBE')" ;;
  esac
}

# ---------------------------------------------------------------------------
# start
# ---------------------------------------------------------------------------
random_cluster_id() {
  # Kafka cluster ids are 16 random bytes in unpadded URL-safe base64 (what
  # `kafka-storage.sh random-uuid` prints); made here to save a JVM start.
  # Avoid a leading '-', which an argument parser could read as an option.
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && { echo "$id"; return; }
  done
}

write_config() {
  # write_config DIR CLIENT_PORT CONTROLLER_PORT [INTER_BROKER_PORT]: with a
  # fourth port, the clients' listener is SASL_SSL and the inter-broker one
  # PLAINTEXT on that port; without, one PLAINTEXT listener serves both.
  local dir=$1 bport=$2 cport=$3 iport=${4:-}
  local listeners="PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [[ -n "$iport" ]]; then
    listeners="SASL_SSL://127.0.0.1:$bport,PLAINTEXT://127.0.0.1:$iport,CONTROLLER://127.0.0.1:$cport"
    protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
  fi
  cat >"$dir/server.properties" <<EOF
# Generated by tests/kafka/broker.sh for one test run; do not reuse.
process.roles=broker,controller
node.id=1
# Dynamic (KIP-853) quorum with this node as the only voter; pairs with
# 'format --standalone'.
controller.quorum.bootstrap.servers=127.0.0.1:$cport
# Loopback only: nothing outside this machine can reach the test broker.
listeners=$listeners
advertised.listeners=$listeners
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
# Everything the broker persists stays inside this run's directory.
log.dirs=$dir/data
# Topics appear on first use, with one partition, like a dev cluster.
auto.create.topics.enable=true
num.partitions=1
default.replication.factor=1
# One node: internal topics must not ask for more replicas than exist.
# Their partition counts are cut from 50 to 1 so the first consumer group or
# transaction does not wait for 50 partitions to be created.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
# Tests should not sit out the default 3 s before a group's first rebalance.
group.initial.rebalance.delay.ms=0
# Groups on Kafka 4's consumer protocol (KIP-848) have their sessions timed
# here, not by the client: 10 s, as Runnel's classic-protocol consumers
# default to, rather than 45 s, so the two protocols fail over alike.
group.consumer.min.session.timeout.ms=6000
group.consumer.session.timeout.ms=10000
# A small machine: fewer threads than the defaults are plenty for tests.
num.network.threads=2
num.io.threads=4
EOF
  [[ -z "$iport" ]] || write_security_config "$dir"
  # Kafka 4 logs through log4j2; plain console output, which start()
  # redirects into DIR/broker.log. log4j2's own shutdown hook would stop
  # logging as soon as SIGTERM arrives and hide the broker's shutdown
  # sequence; the console appender needs no flushing, so turn it off.
  cat >"$dir/log4j2.properties" <<'EOF'
status = warn
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
EOF
}

# ---------------------------------------------------------------------------
# --security sasl_ssl: a CA and a broker certificate made with openssl for
# this run, SCRAM users created by the storage tool's format (the KRaft way:
# credentials live in the metadata log), PLAIN users in the listener's JAAS
# configuration. Kafka reads PEM key stores directly (ssl.keystore.type=PEM).
# ---------------------------------------------------------------------------
readonly SCRAM_USER=runnel-scram
readonly PLAIN_USER=runnel-plain

make_certificates() {
  # A CA and a certificate for 127.0.0.1 and localhost signed by it, in
  # DIR/tls: ca.pem (what clients trust), broker.pem (the broker's
  # unencrypted PKCS#8 key, then its certificate, then the CA's).
  local tls=$1/tls
  need openssl
  rm -rf "$tls"
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=runnel-test-ca" \
    -keyout "$tls/ca-key.pem" -out "$tls/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    >"$tls/openssl.log" 2>&1 || die "openssl could not make the CA (see $tls/openssl.log)"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$tls/broker-key.pem" -out "$tls/broker.csr" >>"$tls/openssl.log" 2>&1 \
    || die "openssl could not make the broker's key (see $tls/openssl.log)"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$tls/broker.ext"
  openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" \
    -CAcreateserial -days 2 -extfile "$tls/broker.ext" -out "$tls/broker-cert.pem" \
    >>"$tls/openssl.log" 2>&1 || die "openssl could not sign the broker's certificate (see $tls/openssl.log)"
  # Kafka's PEM key store wants a PKCS#8 key; openssl 3 writes one.
  cat "$tls/broker-key.pem" "$tls/broker-cert.pem" "$tls/ca.pem" >"$tls/broker.pem"
  chmod 600 "$tls"/*key.pem "$tls/broker.pem"
}

random_password() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }

write_credentials() {
  # DIR/security.env: what a client needs, as NAME=value lines.
  local dir=$1
  (
    umask 077
    cat >"$dir/security.env" <<EOF
CA_FILE=$dir/tls/ca.pem
SCRAM_USERNAME=$SCRAM_USER
SCRAM_PASSWORD=$(random_password)
PLAIN_USERNAME=$PLAIN_USER
PLAIN_PASSWORD=$(random_password)
EOF
  )
}

credential() { sed -n "s/^$2=//p" "$1/security.env"; }

write_security_config() {
  local dir=$1
  cat >>"$dir/server.properties" <<EOF
# The clients' listener: TLS, then SASL with SCRAM-SHA-512 or PLAIN.
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$PLAIN_USER="$(credential "$dir" PLAIN_PASSWORD)";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$dir/tls/broker.pem
# No authorizer: authenticated users may do anything, as on the plain broker.
EOF
}

java_base() {
  # Shared JVM command line for the storage tool and the broker.
  # shellcheck disable=SC2206  # HEAP_OPTS is a deliberately split flag list
  JAVA_CMD=(java $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$1/log4j2.properties"
    -Dkafka.logs.dir="$1"
    -cp "$LIBS/*")
}

# Set by start_once for its caller.
BOOTSTRAP=""
# plaintext or sasl_ssl, from --security.
SECURITY=plaintext

probe_secured() {
  # probe_secured DIR ADDRESS: the SASL_SSL listener answers the PLAIN user
  # over TLS. Not the SCRAM user: Debian 12's kcat (librdkafka 2.0.2) fails
  # SCRAM-SHA-512 against Kafka 4.1 with "invalid credentials" where Kafka's
  # own client and librdkafka 2.12 succeed. Without kcat, the inter-broker
  # listener's readiness has to do.
  command -v kcat >/dev/null 2>&1 || return 0
  timeout 15 kcat -b "$2" -L -m 5 -X security.protocol=SASL_SSL \
    -X sasl.mechanism=PLAIN -X "sasl.username=$PLAIN_USER" \
    -X "sasl.password=$(credential "$1" PLAIN_PASSWORD)" \
    -X "ssl.ca.location=$1/tls/ca.pem" 2>/dev/null | grep -q ' broker 1 at '
}

probe_dir() {
  # probe_dir DIR ADDRESS: the broker of DIR is ready on ADDRESS, in its
  # mode. A secured broker's registration is probed on its plain
  # inter-broker listener, then its clients' listener with a SCRAM user.
  local dir=$1
  if [[ -f "$dir/internal" ]]; then
    probe "$(cat "$dir/internal")" && probe_secured "$dir" "$2"
  else
    probe "$2"
  fi
}

start_once() {
  # Returns with the broker ready, or with PORT_RACE=1 when another process
  # took one of our ports first; exits on other errors.
  local dir=$SERVICE_DIR bport cport iport="" scram=()
  bport="$(pick_port)"
  cport="$(pick_port "$bport")"
  BOOTSTRAP="127.0.0.1:$bport"

  # Fresh state every attempt: the standalone format writes the controller's
  # endpoint into the metadata log, so it must match this attempt's ports.
  rm -rf "$dir/data" "$dir/bootstrap" "$dir/internal" "$dir/security.env" "$dir/tls"
  if [[ "$SECURITY" == sasl_ssl ]]; then
    iport="$(pick_port "$bport" "$cport")"
    echo "127.0.0.1:$iport" >"$dir/internal"
    make_certificates "$dir"
    write_credentials "$dir"
    scram=(--add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$(credential "$dir" SCRAM_PASSWORD)]")
  fi
  write_config "$dir" "$bport" "$cport" "$iport"
  java_base "$dir"

  log "formatting storage in $dir/data"
  if ! "${JAVA_CMD[@]}" "$STORAGE_MAIN" format --config "$dir/server.properties" \
      --cluster-id "$(random_cluster_id)" --standalone "${scram[@]}" >"$dir/format.log" 2>&1; then
    tail -n 30 "$dir/format.log" >&2 || true
    die "formatting KRaft storage failed (full output: $dir/format.log)"
  fi

  log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP ($SECURITY; controller 127.0.0.1:$cport)"
  launch_service "${JAVA_CMD[@]}" "$BROKER_MAIN" "$dir/server.properties"
  await_start "on $BOOTSTRAP" probe_dir "$dir" "$BOOTSTRAP"
}

cmd_start() {
  prepare_start "$1" "$2"
  need java "install a JDK >= 17"
  need timeout
  fetch_libs
  start_with_retries start_once
  finish_start "$BOOTSTRAP"
  log "broker pid $SERVICE_PID ready on $BOOTSTRAP"
  echo "$BOOTSTRAP"
}

# ---------------------------------------------------------------------------
# kill (in lib/service.sh) and resume: a broker outage for failure tests. The
# data directory, configuration and ports stay, so a resumed broker is the
# same broker coming back, as after a crash or a rolling restart.
# ---------------------------------------------------------------------------
cmd_resume() {
  local deadline
  prepare_resume "$1" "$2" server.properties bootstrap
  BOOTSTRAP="$(cat "$SERVICE_DIR/bootstrap")"
  java_base "$SERVICE_DIR"
  # The ports were ours a moment ago; after a crash the kernel may hold the
  # listening port for a little while, so a bind failure is retried.
  deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    log "resuming Kafka $KAFKA_VERSION on $BOOTSTRAP"
    launch_service "${JAVA_CMD[@]}" "$BROKER_MAIN" "$SERVICE_DIR/server.properties"
    while pid_alive "$SERVICE_PID" && ! probe_dir "$SERVICE_DIR" "$BOOTSTRAP"; do
      ((SECONDS < deadline)) || die "broker not ready on $BOOTSTRAP after ${START_TIMEOUT}s (full log: $SERVICE_DIR/$SERVICE_LOG)"
      sleep 0.2
    done
    pid_alive "$SERVICE_PID" && break
    ((SECONDS < deadline)) || die "broker exited while resuming (full log: $SERVICE_DIR/$SERVICE_LOG)"
    tail -n 5 "$SERVICE_DIR/$SERVICE_LOG" >&2 || true
    log "broker exited while resuming; trying again"
    sleep 1
  done
  finish_start "$BOOTSTRAP"
  log "broker pid $SERVICE_PID ready again on $BOOTSTRAP"
  echo "$BOOTSTRAP"
}

# ---------------------------------------------------------------------------
main() {
  local cmd=${1:-}
  [[ -n "$cmd" ]] || usage
  shift
  local dir="" watch="" wstart=""
  while (($#)); do
    case "$1" in
      --dir) dir=${2:?--dir needs a value}; shift 2 ;;
      --watch-pid) watch=${2:?--watch-pid needs a value}; shift 2 ;;
      --watch-start) wstart=${2-}; shift 2 ;;   # internal, for _watch
      --security)
        case "${2:-}" in
          plaintext | sasl_ssl) SECURITY=$2 ;;
          *) log "--security must be plaintext or sasl_ssl"; usage ;;
        esac
        shift 2 ;;
      -h | --help) usage ;;
      *) log "unknown argument: $1"; usage ;;
    esac
  done
  case "$cmd" in
    fetch) fetch_libs; echo "$LIBS" ;;
    start) [[ -n "$dir" ]] || usage; cmd_start "$dir" "$watch" ;;
    stop) [[ -n "$dir" ]] || usage; cmd_stop "$dir" ;;
    kill) [[ -n "$dir" ]] || usage; cmd_kill "$dir" ;;
    resume) [[ -n "$dir" ]] || usage; cmd_resume "$dir" "$watch" ;;
    status) [[ -n "$dir" ]] || usage; cmd_status "$dir" ;;
    _watch) cmd_watch "$dir" "$watch" "$wstart" ;;
    *) usage ;;
  esac
}

main "$@"
