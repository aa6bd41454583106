#!/usr/bin/env bash
# Builds Runnel and the example plugins and runs the main job on an embedded
# Kafka-protocol cluster: no broker to install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# The plugins always build into plugins/target, whatever CARGO_TARGET_DIR
# says, so the path below holds.
(cd plugins && CARGO_TARGET_DIR=target cargo build --release --quiet)
cargo build --release --quiet -p runnel
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/runnel" dev --plugin plugins/target/wasm32-wasip2/release/uppercase.wasm "$@"
