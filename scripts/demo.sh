#!/usr/bin/env bash
# Builds Runnel and the example plugins and runs the main job on an embedded
# Kafka-protocol cluster: no broker to install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/build-env.sh
announce_build
scripts/setup.sh

echo "==> building the example plugins (wasm32-wasip2)"
(cd plugins && CARGO_TARGET_DIR="$RUNNEL_PLUGINS_TARGET_DIR" cargo build --release)
echo "==> building the host"
cargo build --release -p runnel
echo "==> running the demo (Ctrl-C stops it)"
exec "$CARGO_TARGET_DIR/release/runnel" dev \
    --plugin "$RUNNEL_PLUGINS_TARGET_DIR/wasm32-wasip2/release/uppercase.wasm" "$@"
