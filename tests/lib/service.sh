# shellcheck shell=bash
# service.sh - what tests/kafka/broker.sh and tests/dapr/daprd.sh share: a
# background service started in a directory of its own, found again through
# its PID file and command line, stopped with SIGTERM and then SIGKILL, and a
# watcher process that stops it once the process that asked for it is gone.
#
# Sourced, not run. The sourcing script sets, before sourcing:
#   SELF             its own absolute path (the watcher runs `bash $SELF _watch`)
# and, before calling anything below:
#   SERVICE          what log lines call the service ("broker", "daprd")
#   SERVICE_PID_FILE the file under DIR holding the service's PID
#   SERVICE_LOG      the file under DIR the service's output goes to
#   SERVICE_FILES    files under DIR that describe a running service, removed
#                    once it has stopped (an array)
#   SERVICE_ADDRESS  the file under DIR whose content `status` prints
#   STOP_GRACE       seconds between SIGTERM and SIGKILL
#   START_TIMEOUT    seconds a starting service may take to be ready
#   START_ATTEMPTS   how many starts to try when another process takes a port
# and defines `service_pid_if_ours DIR`, which prints the service's PID if
# DIR's PID file names a live service of DIR.
#
# A script's `start` command runs, in order: prepare_start, its own set-up,
# start_with_retries with its function that starts the service once (which
# calls launch_service, then await_start), and finish_start. Its `resume`
# runs prepare_resume, launch_service, its own wait, and finish_start.

log() { printf '%s: %s\n' "${SELF##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH${2:+ ($2)}"; }

# ---------------------------------------------------------------------------
# Process helpers. PIDs can be reused, so before signalling anything we check
# that it is still the process we started (by its command line), and the
# watcher identifies the watched process by PID *and* start time.
# ---------------------------------------------------------------------------
pid_alive() {
  # A zombie (exited, not yet reaped) counts as dead.
  local state
  [[ -r "/proc/$1/stat" ]] || return 1
  state="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

pid_starttime() {
  # Field 22 of /proc/PID/stat; strip "pid (comm) " first because comm may
  # contain spaces. Field 22 is then the 20th of what remains.
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20
}

pid_cmdline_has() {
  # pid_cmdline_has PID WORD...: is PID alive and does its argv contain all WORDs?
  local pid=$1 cmd w
  shift
  pid_alive "$pid" || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  for w in "$@"; do [[ "$cmd" == *"$w"* ]] || return 1; done
}

read_pid() { [[ -f "$1" ]] && tr -dc '0-9' <"$1"; }

stop_service_in() {
  local dir=$1 pid i
  if pid="$(service_pid_if_ours "$dir")"; then
    log "stopping $SERVICE pid $pid ($dir)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_GRACE * 5; i++)); do
      pid_alive "$pid" || break
      sleep 0.2
    done
    if pid_alive "$pid"; then
      log "$SERVICE pid $pid ignored SIGTERM for ${STOP_GRACE}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.1; done
    fi
  fi
  remove_service_files "$dir"
}

remove_service_files() {
  local dir=$1 file
  for file in "${SERVICE_FILES[@]}"; do rm -f "$dir/$file"; done
}

stop_watcher_in() {
  local dir=$1 pid
  pid="$(read_pid "$dir/watcher.pid")" || true
  if [[ -n "${pid:-}" ]] && pid_cmdline_has "$pid" "$SELF" _watch "$dir"; then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/watcher.pid"
}

# watched_start_time PID: PID's start time, checking that it names a running
# process (the watcher compares it, so a reused PID is not mistaken for it).
watched_start_time() {
  [[ "$1" =~ ^[0-9]+$ ]] || die "--watch-pid needs a numeric PID"
  pid_alive "$1" || die "--watch-pid $1 is not a running process"
  pid_starttime "$1"
}

# start_watcher DIR PID START_TIME: a separate, fully detached process that
# outlives the script and stops DIR's service once PID has gone.
start_watcher() {
  local dir=$1 watch=$2 wstart=$3
  bash "$SELF" _watch --dir "$dir" --watch-pid "$watch" --watch-start "$wstart" \
    </dev/null >>"$dir/watcher.log" 2>&1 &
  echo $! >"$dir/watcher.pid"
}

# ---------------------------------------------------------------------------
# Ports. We pick ports below the kernel's ephemeral range (so outgoing
# connections cannot grab them between our pick and the service's bind) that
# no socket in /proc/net/tcp{,6} uses. Another process can still win the race
# for a port; the script's start sees the bind fail and tries again.
# ---------------------------------------------------------------------------
used_ports() {
  # Local ports (hex) of every TCP socket, any state, v4 and v6.
  awk 'FNR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u
}

pick_port() {
  # pick_port EXCLUDED_PORT...
  local lo hi used p i x ok
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range || lo=32768
  hi=$((lo - 1))
  ((hi > 20000)) || hi=65000   # odd ephemeral ranges: fall back to any high port
  used="$(used_ports)"
  for ((i = 0; i < 500; i++)); do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % (hi - 10000)))
    ok=1
    for x in "$@"; do [[ "$p" == "$x" ]] && ok=0; done
    ((ok)) || continue
    grep -qix "$(printf '%04X' "$p")" <<<"$used" && continue
    echo "$p"
    return 0
  done
  die "could not find a free TCP port"
}

# ---------------------------------------------------------------------------
# Starting and resuming. The functions below share these with the script:
#   SERVICE_DIR   the service's directory, absolute (the watcher and the PID
#                 checks rely on that)
#   SERVICE_PID   the PID of the service launched last
#   PORT_RACE     1 when a start failed because another process took a port
# ---------------------------------------------------------------------------
SERVICE_DIR=""
SERVICE_PID=""
PORT_RACE=0
WATCH_PID=""
WATCH_START=""

# prepare_start DIR WATCH_PID: makes DIR the service's directory, refusing
# one whose service runs, and clears what an earlier run there left.
prepare_start() {
  local dir=$1
  WATCH_PID=$2
  WATCH_START=""
  [[ -z "$WATCH_PID" ]] || WATCH_START="$(watched_start_time "$WATCH_PID")"
  mkdir -p "$dir"
  SERVICE_DIR="$(cd "$dir" && pwd)"
  if service_pid_if_ours "$SERVICE_DIR" >/dev/null; then
    die "a $SERVICE is already running for $SERVICE_DIR ($(cat "$SERVICE_DIR/$SERVICE_ADDRESS" 2>/dev/null || echo '?')); stop it first"
  fi
  stop_watcher_in "$SERVICE_DIR"   # a stale watcher from an earlier run in this DIR
  rm -f "$SERVICE_DIR/$SERVICE_ADDRESS"
  : >"$SERVICE_DIR/$SERVICE_LOG"   # logs of an earlier run in this DIR would mislead
  : >"$SERVICE_DIR/watcher.log"
}

# start_with_retries COMMAND...: runs COMMAND, which starts the service once
# and sets PORT_RACE=1 when it lost a port to another process, until the
# service is ready; then new ports are worth another try, anything else is
# fatal. If anything fails (or the script is interrupted) before
# finish_start, the service is stopped: none is left running behind the
# caller's back. COMMAND runs as a plain statement, never in `if`/`||`, so
# that `set -e` stays in force inside it.
start_with_retries() {
  local attempt
  trap 'stop_service_in "$SERVICE_DIR"' EXIT
  trap 'exit 130' INT TERM
  for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
    "$@"
    ((PORT_RACE)) || break
    stop_service_in "$SERVICE_DIR"
  done
  ((PORT_RACE == 0)) || die "could not start the $SERVICE after $START_ATTEMPTS attempts"
}

# launch_service COMMAND...: runs COMMAND in the background as the service,
# its output going to SERVICE_LOG, and records its PID. stdin, stdout and
# stderr are all detached: a background child holding the caller's stdout
# would make `$(script start ...)` wait forever.
launch_service() {
  "$@" </dev/null >>"$SERVICE_DIR/$SERVICE_LOG" 2>&1 &
  SERVICE_PID=$!
  echo "$SERVICE_PID" >"$SERVICE_DIR/$SERVICE_PID_FILE"
}

# await_start WHERE CHECK...: waits until CHECK... succeeds, the launched
# service still running. Sets PORT_RACE=1 if the service exited because its
# address was in use; exits with the log's tail if it exited otherwise, or
# was not ready (WHERE: "on HOST:PORT") within START_TIMEOUT.
await_start() {
  local where=$1 log=$SERVICE_DIR/$SERVICE_LOG deadline
  shift
  PORT_RACE=0
  deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! pid_alive "$SERVICE_PID"; then
      if grep -qi 'address already in use' "$log"; then
        log "port race lost (address already in use); retrying with new ports"
        PORT_RACE=1
        return 0
      fi
      tail -n 40 "$log" >&2 || true
      die "$SERVICE exited during startup (full log: $log)"
    fi
    "$@" && return 0
    sleep 0.3
  done
  tail -n 40 "$log" >&2 || true
  die "$SERVICE not ready $where after ${START_TIMEOUT}s (full log: $log)"
}

# prepare_resume DIR WATCH_PID FILE...: makes DIR the service's directory
# for a resume: DIR must hold FILE... of an earlier start, and no running
# service.
prepare_resume() {
  local file
  SERVICE_DIR="$(cd "$1" && pwd)" || die "no such directory $1"
  WATCH_PID=$2
  shift 2
  for file in "$@"; do
    [[ -f "$SERVICE_DIR/$file" ]] || die "$SERVICE_DIR holds no $SERVICE that was started before; use start"
  done
  service_pid_if_ours "$SERVICE_DIR" >/dev/null && die "the $SERVICE of $SERVICE_DIR is running"
  WATCH_START=""
  [[ -z "$WATCH_PID" ]] || WATCH_START="$(watched_start_time "$WATCH_PID")"
}

# finish_start ADDRESS: the service is ready at ADDRESS; records it for
# `status` and starts the watcher if one was asked for.
finish_start() {
  echo "$1" >"$SERVICE_DIR/$SERVICE_ADDRESS"
  [[ -z "$WATCH_PID" ]] || start_watcher "$SERVICE_DIR" "$WATCH_PID" "$WATCH_START"
  trap - EXIT INT TERM
}

# ---------------------------------------------------------------------------
# Commands every service script has.
# ---------------------------------------------------------------------------
cmd_watch() {
  local dir=$1 watch=$2 wstart=$3 now
  log "$(date '+%F %T') watching pid $watch for $SERVICE in $dir"
  while :; do
    # The service went away by itself (or was stopped): nothing left to do.
    service_pid_if_ours "$dir" >/dev/null || exit 0
    now="$(pid_starttime "$watch" || true)"
    if ! pid_alive "$watch" || [[ -n "$wstart" && "$now" != "$wstart" ]]; then
      log "$(date '+%F %T') pid $watch exited; stopping $SERVICE"
      stop_service_in "$dir"
      rm -f "$dir/watcher.pid"
      exit 0
    fi
    sleep 1
  done
}

cmd_stop() {
  local dir=$1
  [[ -d "$dir" ]] || { log "no such directory $dir; nothing to stop"; return 0; }
  dir="$(cd "$dir" && pwd)"
  # Watcher first, so it does not race us to the service.
  stop_watcher_in "$dir"
  if service_pid_if_ours "$dir" >/dev/null; then
    stop_service_in "$dir"
  else
    log "no $SERVICE running for $dir"
    remove_service_files "$dir"
  fi
}

# SIGKILL: the service crashes; its directory stays for a resume.
cmd_kill() {
  local dir pid i
  dir="$(cd "$1" && pwd)" || die "no such directory $1"
  stop_watcher_in "$dir"
  if pid="$(service_pid_if_ours "$dir")"; then
    log "killing $SERVICE pid $pid ($dir)"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do pid_alive "$pid" || break; sleep 0.1; done
  else
    log "no $SERVICE running for $dir"
  fi
  remove_service_files "$dir"
}

cmd_status() {
  local dir=$1 pid
  dir="$(cd "$dir" 2>/dev/null && pwd)" || { log "not running"; return 1; }
  if pid="$(service_pid_if_ours "$dir")"; then
    log "running, pid $pid"
    cat "$dir/$SERVICE_ADDRESS"
  else
    log "not running"
    return 1
  fi
}
