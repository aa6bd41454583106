#!/usr/bin/env bash
# bench/run.sh - Runnel's benchmark in one command.
#
# Sets up what is missing (wasm32-wasip2, kcat, Kafka's jars, matplotlib, every
# SDK's toolchain for the languages section),
# builds the host, the example plugins and the harness in release and the
# Kafka Streams peer with Maven (cached, rebuilt only when its sources
# change), starts a real single-node Kafka broker on 127.0.0.1 (stopped again
# on exit, even on failure), and runs every measurement against it. Results:
#   bench/results/latest.md        the table with ratios and PASS/MISS per target
#   bench/results/throughput.png   the chart
#   bench/results/throughput.csv   the chart's data
# Extra arguments go to `runnel-bench run`, e.g. `bench/run.sh --quick` to try
# it out or `bench/run.sh --sections wasm` for one section (see --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS

scripts/setup.sh --with-kafka
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    python3 -m pip install --quiet matplotlib
fi

# The same build caches as scripts/demo.sh and scripts/test.sh.
source scripts/build-env.sh
announce_build

cargo build --release -p runnel -p runnel-bench
# The plugins are their own workspace, built for wasm32-wasip2 by
# plugins/.cargo/config.toml, which cargo reads from the working directory.
(cd plugins && CARGO_TARGET_DIR="$RUNNEL_PLUGINS_TARGET_DIR" cargo build --release --quiet)
# Every other language's examples, for the languages section; each SDK
# installs its toolchain when missing (cached between runs).
scripts/sdks.sh --examples-only
# The peer: a Kafka Streams program, built once into $RUNNEL_CACHE.
kafka_streams="$(bench/kafka-streams/build.sh)"

broker_dir="$(mktemp -d)"
trap 'tests/kafka/broker.sh stop --dir "$broker_dir" >/dev/null 2>&1 || true; rm -rf "$broker_dir"' EXIT
brokers="$(tests/kafka/broker.sh start --dir "$broker_dir" --watch-pid $$)"
kafka_version="$(sed -n 's/^readonly KAFKA_VERSION=//p' tests/kafka/broker.sh)"
heap="${RUNNEL_KAFKA_HEAP:--Xmx512m -Xms512m}"
echo "bench broker at $brokers"

"$CARGO_TARGET_DIR/release/runnel-bench" run \
    --brokers "$brokers" \
    --broker-pid "$(cat "$broker_dir/broker.pid")" \
    --broker-description "Apache Kafka $kafka_version, one KRaft node on 127.0.0.1 ($heap), on the same machine" \
    --runnel "$CARGO_TARGET_DIR/release/runnel" \
    --plugins "$RUNNEL_PLUGINS_TARGET_DIR/wasm32-wasip2/release" \
    --sdk-examples "$RUNNEL_PLUGINS_TARGET_DIR/sdk" \
    --kafka-streams "$kafka_streams" \
    --command-line "bench/run.sh${*:+ $*}" \
    "$@"

echo "bench/run.sh took $((SECONDS - started)) s in all (set-up and builds included)"
