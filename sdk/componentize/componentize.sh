# Shared by sdk/go/build.sh and sdk/c/build.sh, which source it: both languages build a
# WebAssembly core module for WASI preview 1 and turn it into a Runnel component the same way.
#
#   wasm-tools component embed WIT_DIR --world plugin CORE.wasm -o EMBEDDED.wasm
#   wasm-tools component new EMBEDDED.wasm --adapt wasi_snapshot_preview1=REACTOR_ADAPTER -o OUT.wasm
#
# The reactor adapter translates the module's preview 1 imports into the preview 2 interfaces
# the host links. Tools and the adapter are installed on first use and cached.

# Versions pinned here and nowhere else.
WASM_TOOLS_VERSION=1.263.0
WIT_BINDGEN_VERSION=0.63.0
# The adapter must come from the wasmtime release the host is built with (Cargo.lock).
ADAPTER_VERSION=50.0.1

RUNNEL_CACHE=${RUNNEL_CACHE:-$HOME/.cache/runnel}
COMPONENTIZE_CACHE=$RUNNEL_CACHE/componentize
RUNNEL_WIT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../wit" && pwd)

# Prints the path of a cargo-installed tool, installing the pinned version if it is missing;
# FEATURES keeps the build to the parts used here (a few minutes instead of ten on 2 cores).
cargo_tool() {
    local name=$1 crate=$2 version=$3 features=$4
    if command -v "$name" >/dev/null; then
        command -v "$name"
        return
    fi
    if [ ! -x "$COMPONENTIZE_CACHE/bin/$name" ]; then
        command -v cargo >/dev/null || {
            echo "error: $name is missing and cargo, which installs it, too: run scripts/setup.sh" >&2
            return 1
        }
        echo "installing $crate $version with cargo (a few minutes, once)" >&2
        cargo install --quiet --locked --root "$COMPONENTIZE_CACHE" \
            --no-default-features --features "$features" "$crate@$version" >&2
    fi
    echo "$COMPONENTIZE_CACHE/bin/$name"
}

wasm_tools() { "$(cargo_tool wasm-tools wasm-tools "$WASM_TOOLS_VERSION" component)" "$@"; }
wit_bindgen() { "$(cargo_tool wit-bindgen wit-bindgen-cli "$WIT_BINDGEN_VERSION" c)" "$@"; }

# Prints the path of the reactor adapter, fetching it on first use: the crates.io crate
# wasi-preview1-component-adapter-provider ships the adapter binaries in its source.
reactor_adapter() {
    local adapter=$COMPONENTIZE_CACHE/wasi_snapshot_preview1.reactor-$ADAPTER_VERSION.wasm
    if [ ! -f "$adapter" ]; then
        echo "fetching the WASI preview 1 reactor adapter $ADAPTER_VERSION from crates.io" >&2
        local fetch=$COMPONENTIZE_CACHE/adapter-fetch
        mkdir -p "$fetch/src"
        touch "$fetch/src/lib.rs"
        cat >"$fetch/Cargo.toml" <<TOML
[package]
name = "fetch-adapter"
version = "0.0.0"
edition = "2021"

[dependencies]
wasi-preview1-component-adapter-provider = "=$ADAPTER_VERSION"
TOML
        cargo fetch --quiet --manifest-path "$fetch/Cargo.toml" >&2
        local manifest
        manifest=$(cargo metadata --format-version 1 --manifest-path "$fetch/Cargo.toml" |
            grep -o '"manifest_path":"[^"]*/wasi-preview1-component-adapter-provider-[^"]*"' |
            head -n 1 | sed 's/"manifest_path":"\(.*\)"/\1/')
        cp "$(dirname "$manifest")/artefacts/wasi_snapshot_preview1.reactor.wasm" "$adapter.part"
        mv "$adapter.part" "$adapter"
    fi
    echo "$adapter"
}

# preinit IN.wasm OUT.wasm: runs the reactor's `_initialize` once, here, and writes the module
# with the state it left as its initial state, so that no instance runs it again (preinit/).
# Run it on the core module, before componentize. The tool is a member of the host's cargo
# workspace, built with the host into the target directory the host is built in
# (scripts/build-env.sh), and cargo rebuilds it when its sources change. With the host:
# built alone, cargo would give wasmtime and the crates under it fewer features than the
# host's, and compile all of them a second time.
# A script that has built runnel-preinit along with everything else (scripts/test.sh) names
# it in RUNNEL_PREINIT, which is then run as it is.
preinit() {
    if [ -n "${RUNNEL_PREINIT:-}" ]; then
        "$RUNNEL_PREINIT" "$@"
        return
    fi
    command -v cargo >/dev/null || {
        echo "error: cargo, which builds runnel-preinit, is missing: run scripts/setup.sh" >&2
        return 1
    }
    local target=${CARGO_TARGET_DIR:-$RUNNEL_CACHE/target}
    if [ ! -x "$target/release/runnel-preinit" ]; then
        echo "building runnel-preinit and the host with cargo (minutes, unless the host is built)" >&2
    fi
    # From inside the repository, so that rust-toolchain.toml picks the compiler.
    (cd "$(dirname "${BASH_SOURCE[0]}")/../.." &&
        CARGO_TARGET_DIR=$target cargo build --quiet --release -p runnel -p runnel-preinit >&2)
    "$target/release/runnel-preinit" "$@"
}

# componentize CORE.wasm OUT.wasm [--no-embed]: embeds the WIT world (unless the module already
# carries it) and adapts the module into a component.
componentize() {
    local core=$1 out=$2 embedded=$1.embedded.wasm
    if [ "${3:-}" = --no-embed ]; then
        embedded=$core
    else
        wasm_tools component embed "$RUNNEL_WIT" --world plugin "$core" -o "$embedded"
    fi
    wasm_tools component new "$embedded" --adapt "wasi_snapshot_preview1=$(reactor_adapter)" -o "$out"
}
