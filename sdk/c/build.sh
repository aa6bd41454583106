#!/usr/bin/env bash
# Builds Runnel plugins written in C (or C++) into components.
#
#   sdk/c/build.sh PLUGIN_DIR OUT.wasm    build one plugin (the .c and .cc files of a folder)
#   sdk/c/build.sh --examples OUT_DIR     build the examples into OUT_DIR/{uppercase,json_router,counter,thrower}.wasm
#   sdk/c/build.sh --test [PLUGIN_DIR]    run the SDK's and the examples' tests, or a plugin's test_*.c
#
# Installs what is missing on first use (Debian's clang, lld and wasi-libc; wit-bindgen,
# wasm-tools and the WASI reactor adapter), cached under ~/.cache/runnel.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../componentize/componentize.sh
source "$here/../componentize/componentize.sh"

ensure_clang() {
    if command -v clang >/dev/null && command -v wasm-ld >/dev/null && [ -f /usr/lib/wasm32-wasi/libc.a ] &&
        compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a' >/dev/null; then
        return
    fi
    echo "installing clang, lld and wasi-libc from Debian (once)" >&2
    local sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -qq clang lld wasi-libc libclang-rt-dev-wasm32 >/dev/null
}

# build PLUGIN_DIR OUT.wasm: the plugin's sources, the SDK (the plugin's own copy when it has
# one, as a scaffolded plugin does) and the bindings wit-bindgen generates from the WIT.
build() {
    local plugin=$1 out=$2 sdk=$here work
    [ -f "$plugin/runnel.c" ] && sdk=$plugin
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    wit_bindgen c "$RUNNEL_WIT" --world plugin --out-dir "$work" >"$work/wit-bindgen.log" 2>&1 ||
        { cat "$work/wit-bindgen.log" >&2; return 1; }
    local sources=()
    # The SDK's own files come from $sdk; test programs are not part of the plugin.
    for source in "$plugin"/*.c "$plugin"/*.cc "$plugin"/*.cpp; do
        case $(basename "$source") in runnel*.c | test_*) continue ;; esac
        [ -f "$source" ] && sources+=("$source")
    done
    # The host's engine always supports WebAssembly SIMD, which lets clang vectorise byte loops,
    # and bulk memory, which turns memcpy into one instruction.
    clang --target=wasm32-wasi -mexec-model=reactor -O2 -msimd128 -mbulk-memory -Wall -Wextra -I"$sdk" -I"$work" -I"$plugin" \
        -o "$work/core.wasm" "${sources[@]}" "$sdk/runnel.c" "$sdk/runnel_component.c" \
        "$work/plugin.c" "$work/plugin_component_type.o"
    componentize "$work/core.wasm" "$out" --no-embed
}

ensure_clang
case "${1:-}" in
--test)
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    if [ -n "${2:-}" ]; then
        # A plugin's own tests: its sources and test_*.c, built natively with the SDK.
        plugin=$2 sdk=$here
        [ -f "$plugin/runnel.c" ] && sdk=$plugin
        for test in "$plugin"/test_*.c; do
            sources=()
            for source in "$plugin"/*.c; do
                case $(basename "$source") in runnel*.c | test_*) continue ;; esac
                sources+=("$source")
            done
            clang -std=c11 -D_GNU_SOURCE -Wall -Wextra -g -fsanitize=address,undefined -I"$sdk" \
                -o "$work/test" "$test" "${sources[@]}" "$sdk/runnel.c" "$sdk/runnel_testing.c"
            "$work/test"
        done
        exit 0
    fi
    clang -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -fsanitize=address,undefined \
        -o "$work/test_runnel" "$here/tests/test_runnel.c" "$here/runnel.c" "$here/examples/json-router/json.c"
    "$work/test_runnel" "$RUNNEL_WIT/encoding-vectors.json"
    for example in "$here"/examples/*/; do
        compgen -G "$example/test_*.c" >/dev/null && "$0" --test "$example"
    done
    ;;
--examples)
    out=${2:?usage: build.sh --examples OUT_DIR}
    mkdir -p "$out"
    for example in uppercase json-router counter thrower; do
        build "$here/examples/$example" "$out/${example//-/_}.wasm"
    done
    ;;
-* | "")
    sed -n '2,10p' "$0" >&2
    exit 2
    ;;
*)
    build "$1" "${2:?usage: build.sh PLUGIN_DIR OUT.wasm}"
    ;;
esac
