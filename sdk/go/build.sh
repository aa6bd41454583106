#!/usr/bin/env bash
# Builds Runnel plugins written in Go into components.
#
#   sdk/go/build.sh PLUGIN_DIR OUT.wasm    build one plugin (a folder with package main)
#   sdk/go/build.sh --examples OUT_DIR     build the examples into OUT_DIR/{uppercase,json_router,counter,thrower}.wasm
#   sdk/go/build.sh --test                 run the SDK's and the examples' tests
#
# Installs what is missing on first use (Go 1.24 or later, wasm-tools, the WASI reactor
# adapter, runnel-preinit), cached under ~/.cache/runnel.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../componentize/componentize.sh
source "$here/../componentize/componentize.sh"

# go:wasmexport, which the exports need, came in Go 1.24.
GO_VERSION=1.26.8

# Puts a Go of at least 1.24 first on PATH: the one installed, or the pinned release fetched
# from the Go module proxy, where the go command itself gets its toolchains.
ensure_go() {
    if command -v go >/dev/null && go version | grep -Eq 'go1\.(2[4-9]|[3-9][0-9])'; then
        return
    fi
    local root=$RUNNEL_CACHE/go-$GO_VERSION
    if [ ! -x "$root/go/bin/go" ]; then
        echo "installing Go $GO_VERSION from the Go module proxy (once)" >&2
        local zip=$RUNNEL_CACHE/go-$GO_VERSION.zip
        mkdir -p "$RUNNEL_CACHE"
        command -v unzip >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq unzip >/dev/null || sudo apt-get install -y -qq unzip >/dev/null; }
        curl -fsSL -o "$zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-amd64.zip"
        rm -rf "$root.part" && mkdir -p "$root.part"
        (cd "$root.part" && unzip -q "$zip")
        mv "$root.part/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64" "$root.part/go"
        chmod +x "$root.part/go/bin/"* "$root.part/go/pkg/tool/"*/*
        mv "$root.part" "$root"
        rm -f "$zip"
    fi
    export PATH=$root/go/bin:$PATH
}

# build PLUGIN_DIR OUT.wasm
build() {
    local plugin=$1 out=$2 work
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    (cd "$plugin" && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags='-s -w' -o "$work/go.wasm" .)
    # The WASI adapter's own allocator, which must run before Go's runtime can (see adapterarena).
    (cd "$here" && go run ./adapterarena "$work/go.wasm" "$work/arena.wasm")
    # Go's runtime start-up, run once here instead of in every instance (README.md, "Start-up").
    # Before componentize: the adapter must start fresh in each instance.
    preinit "$work/arena.wasm" "$work/core.wasm"
    componentize "$work/core.wasm" "$out"
}

ensure_go
case "${1:-}" in
--test)
    cd "$here" && go vet ./... && go test ./...
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
