#!/usr/bin/env bash
# Builds Runnel plugins written in JavaScript or TypeScript into components.
#
#   sdk/js/build.sh PLUGIN_DIR OUT.wasm    build one plugin: a folder with handler.js or handler.ts
#   sdk/js/build.sh --examples OUT_DIR     build the examples into OUT_DIR/{uppercase,json_router,counter,thrower}.wasm
#   sdk/js/build.sh --test                 run the SDK's, the examples' and both templates' (JS, TS) tests, and type checks
#
# Needs Node.js 18 or later and npm. Installs the pinned toolchain (toolchain/package-lock.json:
# componentize-js, jco, TypeScript) on first use into ~/.cache/runnel/js-toolchain-HASH.
# With RUNNEL_JS_AOT=1, components are compiled ahead of time (componentize-js --aot) with weval,
# which cargo builds from crates.io on first use into ~/.cache/runnel/weval-VERSION (15-20
# minutes on 2 cores): 1.3-1.5 times the messages per second, a larger component and a longer
# compile in the host (README.md, "What limits the speed").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
wit=$here/../../wit
cache=${RUNNEL_CACHE:-$HOME/.cache/runnel}

# Installs the pinned toolchain once per version of the lock file; sets $tools to its bin folder.
ensure_toolchain() {
    command -v node >/dev/null && command -v npm >/dev/null || {
        echo "build.sh needs Node.js and npm: install them (Debian: apt-get install nodejs npm)" >&2
        exit 1
    }
    local hash dir
    hash=$(cat "$here/toolchain/package.json" "$here/toolchain/package-lock.json" | sha256sum | cut -c1-12)
    dir=$cache/js-toolchain-$hash
    if [ ! -x "$dir/node_modules/.bin/componentize-js" ]; then
        echo "installing componentize-js, jco and TypeScript into $dir (once)" >&2
        rm -rf "$dir.part" && mkdir -p "$dir.part"
        cp "$here/toolchain/package.json" "$here/toolchain/package-lock.json" "$dir.part/"
        (cd "$dir.part" && npm ci --no-audit --no-fund --loglevel=error >&2)
        rm -rf "$dir" && mv "$dir.part" "$dir"
        # Toolchains of older pins are not used again.
        find "$cache" -maxdepth 1 -name 'js-toolchain-*' ! -name "js-toolchain-$hash" -exec rm -rf {} +
    fi
    tools=$dir/node_modules/.bin
    toolchain=$dir
}

# Sets $weval to a weval binary of the version componentize-js is pinned to (its dependency
# @bytecodealliance/weval in the lock file; its ahead-of-time engine and inline-cache file are
# made for that version), building it with cargo once. componentize-js would otherwise download
# the binary from GitHub releases, which is not a package registry. Leaves $weval empty unless
# AOT is asked for (RUNNEL_JS_AOT=1) and cargo is there. Off by default: the one-time weval build
# and the longer compile of every load are a price to choose, not to find.
ensure_weval() {
    weval=
    if [ "${RUNNEL_JS_AOT:-0}" != 1 ]; then
        return
    fi
    local version dir
    version=$(node -p 'require(process.argv[1]).version' \
        "$toolchain/node_modules/@bytecodealliance/weval/package.json")
    dir=$cache/weval-$version
    if [ ! -x "$dir/bin/weval" ]; then
        command -v cargo >/dev/null || {
            echo "warning: cargo is missing, so weval cannot be built: building without AOT" \
                "(scripts/setup.sh installs cargo)" >&2
            return
        }
        echo "installing weval $version with cargo into $dir (once; 15-20 minutes on 2 cores)" >&2
        rm -rf "$dir.part"
        CARGO_TARGET_DIR=$dir.part/target cargo install --quiet --locked --root "$dir.part" \
            "weval@$version" >&2
        rm -rf "$dir.part/target" "$dir"
        mv "$dir.part" "$dir"
        # Other versions are not used again.
        find "$cache" -maxdepth 1 -name 'weval-*' ! -name "weval-$version" -exec rm -rf {} +
    fi
    weval=$dir/bin/weval
}

# build PLUGIN_DIR OUT.wasm
build() {
    local plugin out root entry work
    plugin=$(cd "$1" && pwd)
    out=$(mkdir -p "$(dirname "$2")" && cd "$(dirname "$2")" && pwd)/$(basename "$2")
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN

    if [ -f "$plugin/handler.ts" ]; then
        # TypeScript: type-check and compile a copy of the folder, whose runnel/ holds the SDK
        # with its typings (as `runnel plugin new` lays it out).
        [ -d "$plugin/runnel" ] || {
            echo "$plugin: a TypeScript plugin needs the SDK in runnel/ beside handler.ts" >&2
            exit 1
        }
        cp -R "$plugin/." "$work/"
        rm -rf "$work/node_modules"
        echo "compiling $plugin/handler.ts with tsc" >&2
        "$tools/tsc" --strict --target es2022 --module es2022 --moduleResolution bundler \
            --skipLibCheck "$work/handler.ts"
        root=$work
        entry=handler.js
    elif [ -f "$plugin/handler.js" ]; then
        # The engine reads imported modules from below the folder it runs in: the plugin's own
        # folder when it holds the SDK, the SDK's folder for the examples that import it from there.
        if [ -d "$plugin/runnel" ]; then
            root=$plugin
            entry=handler.js
        elif [ "${plugin#"$here"/}" != "$plugin" ]; then
            # With --aot the engine reads only below the entry's own folder, so the entry is a
            # module at the top of a copy that re-exports the handler.
            local relative=${plugin#"$here"/}
            mkdir -p "$work/$relative"
            cp -R "$plugin/." "$work/$relative/"
            cp -R "$here/runnel" "$work/runnel"
            echo "export * from './$relative/handler.js';" >"$work/entry.js"
            root=$work
            entry=entry.js
        else
            echo "$plugin: a plugin needs the SDK in runnel/ beside handler.js (sdk/js/runnel)" >&2
            exit 1
        fi
    else
        echo "$plugin has neither handler.js nor handler.ts" >&2
        exit 1
    fi

    local aot=()
    if [ -n "$weval" ]; then
        aot=(--aot --weval-bin "$weval")
    fi
    echo "componentizing $plugin into $out${weval:+ ahead of time} (about half a minute)" >&2
    # No HTTP: the host grants no wasi:http, and a handler has no use for fetch.
    (cd "$root" && "$tools/componentize-js" "$entry" --wit "$wit" --world-name plugin \
        --disable http fetch-event "${aot[@]}" --out "$out" >&2)
}

ensure_toolchain
case "${1:-}" in
--test)
    cd "$here"
    tsc_check=("$tools/tsc" --strict --noEmit --target es2022 --module es2022 --moduleResolution bundler)
    echo "type-checking the SDK's typings with tsc" >&2
    "${tsc_check[@]}" test/typed-handler.ts
    node --import ./runnel/register.js --test test/ examples/
    # The template as `runnel plugin new` lays it out, with the SDK copied beside it.
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cp -R template/. "$work/" && cp -R runnel "$work/runnel"
    sed -i 's/{{name}}/template-check/g' "$work/package.json" "$work/README.md" "$work/handler.js"
    (cd "$work" && "${tsc_check[@]}" --allowJs --checkJs handler.js && node --import ./runnel/register.js --test)
    # The TypeScript template the same way: its `npm test`, with the pinned tsc.
    work_ts=$(mktemp -d)
    trap 'rm -rf "$work" "$work_ts"' EXIT
    cp -R template-ts/. "$work_ts/" && cp -R runnel "$work_ts/runnel"
    sed -i 's/{{name}}/template-check/g' "$work_ts/package.json" "$work_ts/README.md"
    (cd "$work_ts" && "$tools/tsc" -p tsconfig.json && node --import ./runnel/register.js --test)
    ;;
--examples)
    out=${2:?usage: build.sh --examples OUT_DIR}
    ensure_weval
    for example in uppercase json-router counter thrower; do
        build "$here/examples/$example" "$out/${example//-/_}.wasm"
    done
    ;;
-*|'')
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
*)
    [ -n "${2:-}" ] || { echo "usage: build.sh PLUGIN_DIR OUT.wasm" >&2; exit 2; }
    ensure_weval
    build "$1" "$2"
    ;;
esac
