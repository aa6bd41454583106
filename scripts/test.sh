#!/usr/bin/env bash
# Runs every test of Runnel. Set-up included: on a fresh machine this one
# command installs what is missing, fetches and starts a real Kafka broker on
# 127.0.0.1, builds the host and the example plugins, and runs all tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Says what comes next: some steps take minutes without printing anything.
step() { printf '\n==> %s\n' "$*"; }

source scripts/build-env.sh
announce_build

step "set-up: toolchain, kcat, Kafka's jars"
scripts/setup.sh --with-kafka

step "formatting (cargo fmt --check)"
cargo fmt --all --check

# A file past 600 lines is usually two ideas; split it along the idea.
step "no Rust source file over 600 lines"
oversized="$(git ls-files '*.rs' | xargs wc -l | awk '$2 != "total" && $1 > 600')"
if [ -n "$oversized" ]; then
    echo "split these files:" >&2
    echo "$oversized" >&2
    exit 1
fi

step "lints of the host workspace (cargo clippy)"
cargo clippy --release --workspace --all-targets -- -D warnings

# The plugins are a workspace of their own, built for wasm32-wasip2
# (plugins/.cargo/config.toml) into the target directory the tests build
# them in.
step "lints of the plugins workspace (cargo clippy, wasm32-wasip2)"
(cd plugins && CARGO_TARGET_DIR="$RUNNEL_PLUGINS_TARGET_DIR" cargo clippy --release --all-targets -- -D warnings)

# Everything the tests run, built once: the host, the harness, every test
# and runnel-preinit (for the Go SDK's examples). `--all-targets` resolves
# features as `cargo test` does, so the tests below find it all built; a
# separate `cargo build` of the host or of runnel-preinit would give
# wasmtime other features and compile it a second time.
step "building the host, its tests and tools (cargo build --all-targets)"
cargo build --release --workspace --all-targets

# Every other language's SDK: its own tests in its own runner, and its
# example handlers built for tests/languages.rs and tests/throwing.rs. Each
# installs its toolchain when missing (npm, pip, Go, apt, cargo install),
# cached between runs.
RUNNEL_PREINIT="$CARGO_TARGET_DIR/release/runnel-preinit" scripts/sdks.sh

# docker-compose.yml, deploy/kubernetes and deploy/prometheus, each checked
# by its own format's validators; the dashboard's and the alerts' metrics
# against the README's table.
step "deployment files (scripts/validate-deploy.sh)"
scripts/validate-deploy.sh

step "starting the test broker"
# One broker for the whole run; it stops with this script, even on failure.
broker_dir="$(mktemp -d)"
trap 'tests/kafka/broker.sh stop --dir "$broker_dir" >/dev/null 2>&1 || true; rm -rf "$broker_dir"' EXIT
RUNNEL_TEST_BROKERS="$(tests/kafka/broker.sh start --dir "$broker_dir" --watch-pid $$)"
export RUNNEL_TEST_BROKERS
echo "test broker at $RUNNEL_TEST_BROKERS"

step "checking the broker with an independent client (kcat)"
# An independent client (kcat) proves the broker the tests use is real.
tests/kafka/check.sh

step "tests (cargo test)"
cargo test --release --workspace
