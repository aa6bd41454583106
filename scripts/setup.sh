#!/usr/bin/env bash
# Everything a fresh machine needs before Runnel builds and its tests run.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The compiler rust-toolchain.toml names, with the WASI preview 2 target that
# plugins are built for (a no-op when both are installed).
rustup --quiet toolchain install >/dev/null
# clippy, for the lints scripts/test.sh runs: rust-toolchain.toml names it,
# but a toolchain installed before it did may lack it.
if ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add clippy
fi

# kcat: an independent Kafka client, used to check the test broker and to
# feed the demo by hand.
if ! command -v kcat >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq kcat >/dev/null
    else
        echo "setup: kcat is missing; install it (apt-get install kcat)" >&2
    fi
fi

# OpenSSL's headers and pkg-config: librdkafka is built with them, for Kafka
# over TLS and SCRAM. openssl itself makes the test broker's certificates.
if ! pkg-config --exists openssl 2>/dev/null || ! command -v openssl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config openssl >/dev/null
    else
        echo "setup: OpenSSL's headers are missing; install them (apt-get install libssl-dev pkg-config openssl)" >&2
    fi
fi

if [ "${1:-}" = "--with-kafka" ]; then
    # The real Apache Kafka broker's jars, cached outside the repository.
    tests/kafka/broker.sh fetch >/dev/null
fi
