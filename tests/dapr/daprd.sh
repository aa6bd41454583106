#!/usr/bin/env bash
# daprd.sh - a real Dapr sidecar (daprd) with a Kafka input binding, for
# Runnel's tests of its Dapr-app mode (Runnel receives the binding's events
# over HTTP).
#
#   daprd.sh build
#       build (or reuse) the pinned daprd, print its path
#   daprd.sh start --dir DIR --app-port PORT --brokers HOST:PORT --topic TOPIC
#                  --binding NAME [--group G] [--app-id ID] [--meta KEY=VALUE]...
#                  [--direction input|output|input,output|none]
#                  [--wait-app] [--watch-pid PID]
#       write DIR/components/NAME.yaml, start daprd on loopback ports,
#       wait until it is up, print its Dapr HTTP port. daprd then POSTs each
#       record of TOPIC to http://127.0.0.1:PORT/NAME (see README.md).
#   daprd.sh start --dir DIR --app-port PORT --binding NAME --component FILE
#                  [--app-id ID] [--wait-app] [--watch-pid PID]
#       the same with the component FILE as written (a bindings.kafka
#       component called NAME, as deploy/dapr/payments-binding.yaml) instead
#       of one written from the options.
#         --group G        Kafka consumer group (default: unique per start)
#         --app-id ID      Dapr app id (default runnel-NAME-<pid>)
#         --meta K=V       extra component metadata, repeatable, e.g.
#                          consumeRetryEnabled=true backOffDuration=500ms
#                          backOffMaxRetries=3 publishTopic=T
#         --direction D    the component's "direction" (default input);
#                          "none" omits it, so daprd probes OPTIONS /NAME
#         --wait-app       also wait until the app answers (/v1.0/healthz);
#                          by default daprd may be started before the app
#         --watch-pid PID  stop daprd when PID exits
#       Files in DIR: components/, daprd.log, daprd.pid, daprd.cmdline,
#       http_port, watcher.pid, watcher.log.
#   daprd.sh stop --dir DIR
#       stop it (and its watcher)
#   daprd.sh resume --dir DIR [--watch-pid PID]
#       start a stopped daprd again with the same command line (ports, app,
#       components), as after a sidecar restart; print its Dapr HTTP port
#   daprd.sh status --dir DIR
#       print the Dapr HTTP port if running
#
# Why this shape:
# - Only the package registries are reachable (no GitHub, no Docker), so the
#   sidecar is compiled from the dapr module as served by the Go module proxy.
#   `go install github.com/dapr/dapr/cmd/daprd@V` refuses modules whose go.mod
#   has replace directives (dapr's does), so we `go mod download` the module,
#   copy it to a writable place (the module cache is read-only) and
#   `go build ./cmd/daprd` inside it, where its go.mod is the main module and
#   its replace directives apply.
# - daprd's component registrations are all behind build tags
#   (stablecomponents/allcomponents; with neither, cmd/daprd/components/
#   zz_notag.go panics at start). Those tags pull in every cloud SDK (AWS,
#   Azure, GCP, ...). We need exactly one component, bindings.kafka, so by
#   default we build with no tag and use `go build -overlay` to swap
#   zz_notag.go for a file that registers only the Kafka binding: same code
#   as upstream's bindings_kafka.go, a fraction of the compile. Set
#   RUNNEL_DAPRD_COMPONENTS=stable for upstream's `-tags stablecomponents`
#   build instead (cached separately; much slower to build).
#   The kafka-only build has no name resolver, so daprd logs one error
#   ("couldn't find name resolution mdns/v1") at start and service
#   invocation is unavailable. Input/output bindings do not need it, and it
#   also means daprd sends no mDNS multicast from the test machine.
# - The binary is cached outside the repository, per version and component
#   set, in ${RUNNEL_CACHE:-$HOME/.cache/runnel}/daprd-<version>[-stable]/daprd.
#   It is built in a scratch directory next to it and renamed into place only
#   when finished, so an interrupted build is simply redone.
# - Every sidecar gets its own directory, app id, ports and (by default)
#   consumer group, so parallel or repeated test runs never share state.
#   Every listener is bound to 127.0.0.1; no placement, scheduler or sentry
#   is involved (self-hosted mode, mTLS off).
# - stdout carries only the one result line (binary path or Dapr HTTP port),
#   so callers can use `port=$(daprd.sh start ...)`; diagnostics go to stderr.
#
# Environment knobs (all optional):
#   RUNNEL_CACHE                 cache root (default $HOME/.cache/runnel)
#   RUNNEL_DAPRD_COMPONENTS      "kafka" (default) or "stable", see above
#   RUNNEL_DAPRD_BIN             use this daprd binary; skips `build`
#   RUNNEL_DAPRD_NICE            niceness of the Go build (default 19)
#   RUNNEL_DAPRD_START_TIMEOUT   seconds to wait for readiness (default 60)
#   RUNNEL_DAPRD_LOG_LEVEL       daprd --log-level (default info)
set -euo pipefail

# ---------------------------------------------------------------------------
# Pinned version. v1.18.2 is the newest dapr release whose whole dependency
# graph the module proxy here serves: v1.18.3 needs
# github.com/dapr/durabletask-go v0.12.4, which the proxy answers with
# "403 This module version is not available". v1.18.2's go.mod asks for
# go >= 1.26.5 (components-contrib v1.18.3, kit v0.18.2).
# ---------------------------------------------------------------------------
readonly DAPR_VERSION=v1.18.2
readonly DAPR_MODULE=github.com/dapr/dapr

readonly COMPONENTS="${RUNNEL_DAPRD_COMPONENTS:-kafka}"
case "$COMPONENTS" in
  kafka) readonly BUILD_SUFFIX="" ;;
  stable) readonly BUILD_SUFFIX="-stable" ;;
  *) printf 'daprd.sh: error: RUNNEL_DAPRD_COMPONENTS must be kafka or stable (got %s)\n' "$COMPONENTS" >&2; exit 2 ;;
esac

readonly CACHE_ROOT="${RUNNEL_CACHE:-$HOME/.cache/runnel}"
readonly DAPRD_CACHE="$CACHE_ROOT/daprd-$DAPR_VERSION$BUILD_SUFFIX"
readonly DAPRD_BIN="${RUNNEL_DAPRD_BIN:-$DAPRD_CACHE/daprd}"
readonly BUILD_NICE="${RUNNEL_DAPRD_NICE:-19}"
readonly START_TIMEOUT="${RUNNEL_DAPRD_START_TIMEOUT:-60}"
readonly LOG_LEVEL="${RUNNEL_DAPRD_LOG_LEVEL:-info}"
# Seconds between SIGTERM and SIGKILL. SIGTERM starts daprd's graceful
# shutdown: it closes the input binding (the Kafka consumer leaves its group)
# and exits within --dapr-graceful-shutdown-seconds, which start sets below this.
readonly STOP_GRACE=15
readonly START_ATTEMPTS=3  # retries only for a lost race on a picked port

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
readonly SELF
# shellcheck source=SCRIPTDIR/../lib/service.sh
source "$(dirname "$SELF")/../lib/service.sh"
readonly SERVICE=daprd
readonly SERVICE_PID_FILE=daprd.pid
readonly SERVICE_LOG=daprd.log
readonly SERVICE_FILES=("$SERVICE_PID_FILE" http_port)
readonly SERVICE_ADDRESS=http_port

usage() {
  cat >&2 <<EOF
usage: daprd.sh build
       daprd.sh start --dir DIR --app-port PORT --brokers HOST:PORT --topic TOPIC
                      --binding NAME [--group G] [--app-id ID] [--meta KEY=VALUE]...
                      [--direction input|output|input,output|none]
                      [--wait-app] [--watch-pid PID]
       daprd.sh start --dir DIR --app-port PORT --binding NAME --component FILE
                      [--app-id ID] [--wait-app] [--watch-pid PID]
       daprd.sh stop --dir DIR
       daprd.sh resume --dir DIR [--watch-pid PID]
       daprd.sh status --dir DIR
EOF
  exit 2
}


# ---------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------

# Registers the Kafka input+output binding and nothing else; a verbatim copy
# of the init() in upstream's cmd/daprd/components/bindings_kafka.go, minus
# its build tag. Swapped in for zz_notag.go with `go build -overlay`.
write_kafka_only_go() {
  cat >"$1" <<'EOF'
// Generated by Runnel's tests/dapr/daprd.sh: replaces zz_notag.go so that a
// tag-less build registers exactly the Kafka binding.
package components

import (
	"github.com/dapr/components-contrib/bindings"
	"github.com/dapr/components-contrib/bindings/kafka"
	bindingsLoader "github.com/dapr/dapr/pkg/components/bindings"
	"github.com/dapr/kit/logger"
)

func init() {
	bindingsLoader.DefaultRegistry.RegisterInputBinding(func(l logger.Logger) bindings.InputBinding {
		return kafka.NewKafka(l)
	}, "kafka")
	bindingsLoader.DefaultRegistry.RegisterOutputBinding(func(l logger.Logger) bindings.OutputBinding {
		return kafka.NewKafka(l)
	}, "kafka")
}
EOF
}

bin_ready() { [[ -x "$DAPRD_BIN" ]]; }

cmd_build() {
  if [[ -n "${RUNNEL_DAPRD_BIN:-}" ]]; then
    bin_ready || die "RUNNEL_DAPRD_BIN=$RUNNEL_DAPRD_BIN is not an executable"
    echo "$DAPRD_BIN"
    return 0
  fi
  bin_ready && { echo "$DAPRD_BIN"; return 0; }
  need go "install Go >= 1.26.5"
  need flock
  mkdir -p "$DAPRD_CACHE"
  # Serialise concurrent builds (parallel test processes on a cold cache).
  # The lock fd lives only in this subshell, so no daprd started later can
  # inherit it.
  (
    flock 9
    bin_ready && exit 0
    # Holding the lock, nobody else is building: leftovers are from a killed run.
    rm -rf "$DAPRD_CACHE"/build.*
    work="$(mktemp -d "$DAPRD_CACHE/build.XXXXXX")"
    trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

    # GOTOOLCHAIN=local: fail clearly on a too-old Go instead of trying to
    # download a toolchain. GOFLAGS is pinned so a user's -mod=vendor or
    # similar cannot leak in; the module cache and build cache are Go's
    # usual persistent ones, so a rebuild after a cache wipe here is quick.
    export GOTOOLCHAIN=local GOFLAGS=-mod=readonly

    log "downloading $DAPR_MODULE@$DAPR_VERSION"
    local moddir
    moddir="$(go mod download -json "$DAPR_MODULE@$DAPR_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -n "$moddir" && -f "$moddir/go.mod" ]] ||
      die "go mod download $DAPR_MODULE@$DAPR_VERSION gave no module directory"
    cp -R "$moddir" "$work/src"
    chmod -R u+w "$work/src"

    local -a args=(-trimpath -buildvcs=false
      # -s -w: no symbol table/DWARF (upstream release builds do the same);
      # panics still print function names. buildinfo.version makes
      # `daprd --version` print the release instead of "edge".
      -ldflags "-s -w -X $DAPR_MODULE/pkg/buildinfo.version=${DAPR_VERSION#v}")
    if [[ "$COMPONENTS" == kafka ]]; then
      write_kafka_only_go "$work/kafka_only.go"
      printf '{"Replace":{"%s":"%s"}}\n' \
        "$work/src/cmd/daprd/components/zz_notag.go" "$work/kafka_only.go" >"$work/overlay.json"
      args+=(-overlay "$work/overlay.json")
    else
      args+=(-tags stablecomponents)
    fi

    log "building daprd $DAPR_VERSION (components: $COMPONENTS) with $(go env GOVERSION); a cold build takes minutes"
    local t0=$SECONDS
    (cd "$work/src" && nice -n "$BUILD_NICE" go build "${args[@]}" -o "$work/daprd" ./cmd/daprd) >&2 ||
      die "go build of daprd $DAPR_VERSION failed"
    local ver
    ver="$("$work/daprd" --version 2>/dev/null)" || die "the built daprd does not run"
    [[ "$ver" == "${DAPR_VERSION#v}" ]] || die "the built daprd reports version '$ver'"
    # The rename is the completion marker: the cached path either holds a
    # finished binary or nothing.
    mv -f "$work/daprd" "$DAPRD_BIN"
    printf 'version=%s\ncomponents=%s\ngo=%s\nseconds=%s\n' "$DAPR_VERSION" "$COMPONENTS" \
      "$(go env GOVERSION)" "$((SECONDS - t0))" >"$DAPRD_CACHE/build.info"
    log "built $DAPRD_BIN in $((SECONDS - t0))s"
  ) 9>"$DAPRD_CACHE/.build.lock"
  bin_ready || die "build did not complete"
  echo "$DAPRD_BIN"
}

service_pid_if_ours() {
  # Prints daprd's PID if DIR/daprd.pid names a live daprd of DIR.
  local dir=$1 pid
  pid="$(read_pid "$dir/$SERVICE_PID_FILE")" || return 1
  [[ -n "$pid" ]] && pid_cmdline_has "$pid" daprd "--resources-path $dir/components" && echo "$pid"
}

# HTTP status of GET URL, "000" if nothing answers. curl if installed,
# otherwise a raw HTTP/1.0 request over bash's /dev/tcp.
http_status() {
  local url=$1 host port path
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true
    return 0
  fi
  host=${url#http://}; path=/${host#*/}; host=${host%%/*}; port=${host##*:}; host=${host%:*}
  # shellcheck disable=SC2016  # $0..$2 are expanded by the inner bash
  timeout 3 bash -c '
      exec 3<>"/dev/tcp/$0/$1" || exit 1
      printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$0" >&3
      head -n 1 <&3' "$host" "$port" "$path" 2>/dev/null | awk '{print $2}' | grep -E '^[0-9]{3}$' || echo 000
}

# ---------------------------------------------------------------------------
# start
# ---------------------------------------------------------------------------
yaml_quote() {
  # A YAML double-quoted scalar: escape backslashes and double quotes.
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

write_component() {
  # write_component DIR NAME BROKERS TOPIC GROUP PROBE_OPTIONS KEY=VALUE...
  local dir=$1 name=$2 brokers=$3 topic=$4 group=$5 direction=$6 kv
  shift 6
  mkdir -p "$dir/components"
  rm -f "$dir/components"/*.yaml
  {
    cat <<EOF
# Generated by tests/dapr/daprd.sh for one test run; do not reuse.
# Metadata names are those of components-contrib's bindings/kafka and
# common/component/kafka for dapr $DAPR_VERSION.
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: $name
spec:
  type: bindings.kafka
  version: v1
  metadata:
EOF
    # "direction" is Dapr's own key, not Kafka's (--direction, default
    # "input"). It decides which halves daprd creates: "input" alone means
    # POST /v1.0/bindings/NAME answers "couldn't find output binding".
    # When it names "input", daprd starts reading at once. When the key is
    # absent (--direction none), daprd creates both halves and first sends
    # OPTIONS /NAME to the app (3 s timeout): it reads only if the app
    # answers 2xx or 405, otherwise it logs "app has not subscribed to
    # binding NAME" and never reads. So "none" exercises the app's OPTIONS.
    if [[ "$direction" != none ]]; then
      printf '  - name: direction\n    value: %s\n' "$(yaml_quote "$direction")"
    fi
    cat <<EOF
  - name: brokers
    value: $(yaml_quote "$brokers")
  - name: topics
    value: $(yaml_quote "$topic")
  - name: consumerGroup
    value: $(yaml_quote "$group")
  - name: clientID
    value: $(yaml_quote "$group")
  # Plaintext, unauthenticated: the test broker's only listener.
  - name: authType
    value: "none"
  - name: disableTls
    value: "true"
  # A group with no committed offset starts at the beginning of the topic,
  # so records produced before daprd joined are delivered too.
  - name: initialOffset
    value: "oldest"
EOF
    for kv in "$@"; do
      printf '  - name: %s\n    value: %s\n' "$(yaml_quote "${kv%%=*}")" "$(yaml_quote "${kv#*=}")"
    done
  } >"$dir/components/$name.yaml"
}

# Set by start_once for its caller.
HTTP_PORT=""

# daprd_ready URL BINDING: does URL answer 2xx, and has daprd loaded BINDING?
daprd_ready() {
  local code
  code="$(http_status "$1")"
  # A component that fails to initialise (e.g. unreachable brokers) is
  # reported asynchronously: the outbound health can turn 204 a moment
  # before daprd logs the fatal error and exits. So also insist on the
  # line daprd logs once our component is up.
  [[ "$code" == 2* ]] &&
    grep -qF "Component loaded: $2 (bindings.kafka/v1)" "$SERVICE_DIR/$SERVICE_LOG"
}

start_once() {
  # Returns with daprd ready, or with PORT_RACE=1 when another process took
  # one of our ports first; exits on other errors.
  local dir=$SERVICE_DIR app_id=$1 app_port=$2 wait_app=$3 binding=$4 gport mport iport url
  HTTP_PORT="$(pick_port "$app_port")"
  gport="$(pick_port "$app_port" "$HTTP_PORT")"
  mport="$(pick_port "$app_port" "$HTTP_PORT" "$gport")"
  iport="$(pick_port "$app_port" "$HTTP_PORT" "$gport" "$mport")"

  # Self-hosted ("standalone") mode, every listener on loopback:
  # - no --placement-host-address / --scheduler-host-address: empty means
  #   no actors and no scheduler, so daprd never dials a control plane;
  #   mTLS is off by default (no sentry).
  # - --app-channel-address: where the app is (the default, made explicit).
  # - --dapr-graceful-shutdown-seconds below our SIGKILL grace.
  local -a argv=("$DAPRD_BIN"
    --mode standalone
    --app-id "$app_id"
    --app-port "$app_port"
    --app-protocol http
    --app-channel-address 127.0.0.1
    --resources-path "$dir/components"
    --dapr-listen-addresses 127.0.0.1
    --dapr-http-port "$HTTP_PORT"
    --dapr-grpc-port "$gport"
    --dapr-internal-grpc-listen-address 127.0.0.1
    --dapr-internal-grpc-port "$iport"
    --metrics-listen-address 127.0.0.1
    --metrics-port "$mport"
    --enable-mtls=false
    --dapr-graceful-shutdown-seconds 5
    --log-level "$LOG_LEVEL")
  printf '%q ' "${argv[@]}" >"$dir/daprd.cmdline"
  echo >>"$dir/daprd.cmdline"
  log "starting daprd $DAPR_VERSION: dapr http 127.0.0.1:$HTTP_PORT grpc :$gport internal :$iport metrics :$mport, app 127.0.0.1:$app_port"
  launch_service "${argv[@]}"

  # /v1.0/healthz/outbound turns 204 once components are loaded, just before
  # daprd starts waiting for the app port; /v1.0/healthz only once the app
  # is reachable too and the input binding is running. By default we only
  # need the former, so daprd may be started before the app listens.
  if [[ "$wait_app" == 1 ]]; then url="http://127.0.0.1:$HTTP_PORT/v1.0/healthz"
  else url="http://127.0.0.1:$HTTP_PORT/v1.0/healthz/outbound"; fi
  await_start "($url)" daprd_ready "$url" "$binding"
}

cmd_start() {
  local dir=$1 watch=$2 app_port=$3 brokers=$4 topic=$5 binding=$6 group=$7 app_id=$8 wait_app=$9
  local direction=${10} component=${11}
  shift 11
  [[ "$app_port" =~ ^[0-9]+$ ]] || die "--app-port needs a numeric port"
  if [[ -n "$component" ]]; then
    [[ -f "$component" ]] || die "--component $component is not a file"
    [[ -z "$brokers$topic$group$*" ]] ||
      die "--component comes with its own brokers, topic, group and metadata"
  else
    [[ -n "$brokers" && -n "$topic" ]] || die "--brokers and --topic are required"
  fi
  # The binding name is the component name and the app's URL path: keep it
  # to what both accept.
  [[ "$binding" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] ||
    die "--binding must be a lowercase DNS-style name (got '$binding')"
  local kv
  for kv in "$@"; do [[ "$kv" == ?*=* ]] || die "--meta needs KEY=VALUE (got '$kv')"; done
  case "$direction" in
    input | output | input,output | output,input | none) ;;
    *) die "--direction must be input, output, input,output or none (got '$direction')" ;;
  esac
  prepare_start "$dir" "$watch"
  # Unique per start unless given: a consumer group shared with an earlier
  # run would resume from that run's committed offsets.
  [[ -n "$group" ]] || group="runnel-dapr-$binding-$(date +%s)-$$"
  [[ -n "$app_id" ]] || app_id="runnel-$binding-$$"
  bin_ready || log "no daprd at $DAPRD_BIN yet; building it first"
  cmd_build >/dev/null

  if [[ -n "$component" ]]; then
    mkdir -p "$SERVICE_DIR/components"
    rm -f "$SERVICE_DIR/components"/*.yaml
    cp "$component" "$SERVICE_DIR/components/$binding.yaml"
    log "component $binding: $component"
  else
    write_component "$SERVICE_DIR" "$binding" "$brokers" "$topic" "$group" "$direction" "$@"
    log "component $binding: bindings.kafka topic=$topic brokers=$brokers group=$group"
  fi

  start_with_retries start_once "$app_id" "$app_port" "$wait_app" "$binding"
  finish_start "$HTTP_PORT"
  log "daprd pid $SERVICE_PID ready, Dapr HTTP API on 127.0.0.1:$HTTP_PORT (log: $SERVICE_DIR/$SERVICE_LOG)"
  echo "$HTTP_PORT"
}

cmd_resume() {
  local deadline arg previous="" url
  prepare_resume "$1" "$2" daprd.cmdline
  # The command line start_once wrote, each word quoted with printf %q.
  local -a argv
  eval "argv=($(cat "$SERVICE_DIR/daprd.cmdline"))"
  HTTP_PORT=""
  for arg in "${argv[@]}"; do
    [[ "$previous" == --dapr-http-port ]] && HTTP_PORT=$arg
    previous=$arg
  done
  [[ -n "$HTTP_PORT" ]] || die "no --dapr-http-port in $SERVICE_DIR/daprd.cmdline"
  log "resuming daprd $DAPR_VERSION on dapr http 127.0.0.1:$HTTP_PORT"
  launch_service "${argv[@]}"
  url="http://127.0.0.1:$HTTP_PORT/v1.0/healthz/outbound"
  deadline=$((SECONDS + START_TIMEOUT))
  until [[ "$(http_status "$url")" == 2* ]]; do
    pid_alive "$SERVICE_PID" || die "daprd exited while resuming (full log: $SERVICE_DIR/$SERVICE_LOG)"
    ((SECONDS < deadline)) || die "daprd not ready ($url) after ${START_TIMEOUT}s (full log: $SERVICE_DIR/$SERVICE_LOG)"
    sleep 0.3
  done
  finish_start "$HTTP_PORT"
  log "daprd pid $SERVICE_PID ready again on 127.0.0.1:$HTTP_PORT"
  echo "$HTTP_PORT"
}

# ---------------------------------------------------------------------------
main() {
  local cmd=${1:-}
  [[ -n "$cmd" ]] || usage
  shift
  local dir="" watch="" wstart="" app_port="" brokers="" topic="" binding="" group="" app_id=""
  local component=""
  local wait_app=0 direction=input
  local -a meta=()
  while (($#)); do
    case "$1" in
      --dir) dir=${2:?--dir needs a value}; shift 2 ;;
      --watch-pid) watch=${2:?--watch-pid needs a value}; shift 2 ;;
      --watch-start) wstart=${2-}; shift 2 ;;   # internal, for _watch
      --app-port) app_port=${2:?--app-port needs a value}; shift 2 ;;
      --brokers) brokers=${2:?--brokers needs a value}; shift 2 ;;
      --topic) topic=${2:?--topic needs a value}; shift 2 ;;
      --binding) binding=${2:?--binding needs a value}; shift 2 ;;
      --group) group=${2:?--group needs a value}; shift 2 ;;
      --app-id) app_id=${2:?--app-id needs a value}; shift 2 ;;
      --meta) meta+=("${2:?--meta needs KEY=VALUE}"); shift 2 ;;
      --wait-app) wait_app=1; shift ;;
      --direction) direction=${2:?--direction needs a value}; shift 2 ;;
      --component) component=${2:?--component needs a file}; shift 2 ;;
      -h | --help) usage ;;
      *) log "unknown argument: $1"; usage ;;
    esac
  done
  case "$cmd" in
    build) cmd_build ;;
    start)
      [[ -n "$dir" && -n "$app_port" && -n "$binding" ]] || usage
      cmd_start "$dir" "$watch" "$app_port" "$brokers" "$topic" "$binding" "$group" "$app_id" \
        "$wait_app" "$direction" "$component" ${meta[@]+"${meta[@]}"}
      ;;
    stop) [[ -n "$dir" ]] || usage; cmd_stop "$dir" ;;
    resume) [[ -n "$dir" ]] || usage; cmd_resume "$dir" "$watch" ;;
    status) [[ -n "$dir" ]] || usage; cmd_status "$dir" ;;
    _watch) cmd_watch "$dir" "$watch" "$wstart" ;;
    *) usage ;;
  esac
}

main "$@"
