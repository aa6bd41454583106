#!/usr/bin/env bash
# check.sh - end-to-end check of tests/kafka/broker.sh: start a real broker,
# round-trip N keyed messages through it with kcat, stop it.
#
# Prints `check: 1 passed, 0 failed` (exit 0) or `check: 0 passed, 1 failed`
# (exit 1) as its last line. N defaults to 100 (env RUNNEL_CHECK_MESSAGES).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BROKER="$HERE/broker.sh"
N="${RUNNEL_CHECK_MESSAGES:-100}"

say() { printf 'check: %s\n' "$*" >&2; }

# Alive = exists and is not a zombie: the broker's parent (broker.sh) has
# exited, so after it dies it may linger as a zombie until init reaps it.
alive() {
  local stat
  stat="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "$stat" && "$stat" != Z* ]]
}

WORK=""
STOPPED=0
cleanup() {
  # Always stop the broker, whatever happened above; then drop the temp dir.
  if [[ -n "$WORK" ]]; then
    ((STOPPED)) || bash "$BROKER" stop --dir "$WORK/broker" || true
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  say "FAIL: $*"
  echo "check: 0 passed, 1 failed"
  exit 1
}

# kcat (librdkafka) is the independent client we test the broker with.
if ! command -v kcat >/dev/null 2>&1; then
  say "installing kcat"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat; } >&2 \
    || fail "could not install kcat"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/runnel-kafka-check.XXXXXX")"

t0=$SECONDS
# --watch-pid $$: if this script is killed, the broker goes with it.
bootstrap="$(bash "$BROKER" start --dir "$WORK/broker" --watch-pid $$)" \
  || fail "broker.sh start failed"
say "broker ready on $bootstrap after $((SECONDS - t0))s"
[[ "$bootstrap" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "unexpected bootstrap line '$bootstrap'"
[[ "$(cat "$WORK/broker/bootstrap")" == "$bootstrap" ]] || fail "DIR/bootstrap does not match stdout"
broker_pid="$(cat "$WORK/broker/broker.pid")"
alive "$broker_pid" || fail "broker.pid $broker_pid is not running"

# A fresh topic, created by the broker on first produce
# (auto.create.topics.enable=true).
topic="runnel-check-$$-$RANDOM"
expected="$WORK/expected.txt"
for ((i = 1; i <= N; i++)); do
  printf 'key-%04d:value-%04d-%s\n' "$i" "$i" "$topic"
done >"$expected"

# -K: splits each line into key:value. kcat -P waits for every delivery
# report before exiting (and acks=all is librdkafka's default), so once it
# returns 0 all N messages are committed to the log.
timeout 60 kcat -P -b "$bootstrap" -t "$topic" -K: -X topic.message.timeout.ms=30000 \
  <"$expected" || fail "kcat produce failed"

# -e: exit at the end of the partition; -o beginning: read everything;
# %k:%s reproduces the producer's input line for an exact comparison.
got="$WORK/got.txt"
timeout 60 kcat -C -b "$bootstrap" -t "$topic" -o beginning -e -q -f '%k:%s\n' >"$got" \
  || fail "kcat consume failed"

count="$(wc -l <"$got")"
[[ "$count" -eq "$N" ]] || fail "consumed $count messages, expected $N"
diff -u "$expected" "$got" >&2 || fail "consumed messages differ from produced ones"
say "round-tripped $N keyed messages through topic $topic"

bash "$BROKER" stop --dir "$WORK/broker" || fail "broker.sh stop failed"
STOPPED=1
if alive "$broker_pid"; then
  fail "broker pid $broker_pid still running after stop"
fi
[[ ! -e "$WORK/broker/watcher.pid" ]] || fail "watcher.pid left behind after stop"

echo "check: 1 passed, 0 failed"
