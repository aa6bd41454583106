#!/usr/bin/env bash
# Builds a Rust plugin folder into a component.
#   sdk/rust/build.sh PLUGIN_DIR OUT.wasm
# The Rust SDK is the crate in plugin-sdk/; a plugin is a `cdylib` built for
# wasm32-wasip2, which is a component as it comes out of the compiler.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 PLUGIN_DIR OUT.wasm" >&2
    exit 2
fi
plugin_dir="$(cd "$1" && pwd)"
out="$2"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 target (rustup)" >&2
    rustup target add wasm32-wasip2
fi

target_dir="${CARGO_TARGET_DIR:-$plugin_dir/target}"
(cd "$plugin_dir" && CARGO_TARGET_DIR="$target_dir" cargo build --release --target wasm32-wasip2)

# The component is named after the package, with `-` as `_`.
package="$(cd "$plugin_dir" && cargo metadata --no-deps --format-version 1 \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["packages"][0]["name"])')"
cp "$target_dir/wasm32-wasip2/release/${package//-/_}.wasm" "$out"
