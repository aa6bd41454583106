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
#   SERVICE_FILES    files under DIR that describe a running service, removed
#                    once it has stopped (an array)
#   SERVICE_ADDRESS  the file under DIR whose content `status` prints
#   STOP_GRACE       seconds between SIGTERM and SIGKILL
# and defines `service_pid_if_ours DIR`, which prints the service's PID if
# DIR's PID file names a live service of DIR.

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
