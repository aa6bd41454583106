#!/usr/bin/env bash
# Builds Runnel plugins written in Python into WebAssembly components.
#
#   build.sh PLUGIN_DIR OUT.wasm   builds the plugin whose handler is PLUGIN_DIR/app.py
#   build.sh --examples OUT_DIR    builds examples/* into OUT_DIR/{uppercase,json_router,counter,thrower}.wasm
#   build.sh --test                runs the SDK's tests and the examples' tests (pytest)
#
# The toolchain (componentize-py, pytest) is installed into a virtualenv under
# $HOME/.cache/runnel the first time; later runs reuse it.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1
PYTEST_VERSION=9.2.0
SDK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${RUNNEL_PYTHON_VENV:-$HOME/.cache/runnel/python-venv}

ensure_toolchain() {
    local wanted="componentize-py $COMPONENTIZE_PY_VERSION"
    if [[ -x $VENV/bin/componentize-py && $("$VENV/bin/componentize-py" --version) == "$wanted" ]] \
        && "$VENV/bin/python" -c "import pytest" 2>/dev/null; then
        return
    fi
    echo "installing $wanted and pytest $PYTEST_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY_VERSION" "pytest==$PYTEST_VERSION"
}

# build PLUGIN_DIR OUT: the plugin's own copy of the SDK (PLUGIN_DIR/runnel), if it has one,
# comes before this one.
build() {
    local plugin_dir=$1 out=$2 wit=$SDK_DIR/runnel/wit
    [[ -f $plugin_dir/app.py ]] || { echo "error: $plugin_dir has no app.py" >&2; exit 2; }
    [[ -d $plugin_dir/runnel/wit ]] && wit=$plugin_dir/runnel/wit
    echo "building $plugin_dir into $out (componentize-py takes about a minute)"
    mkdir -p "$(dirname "$out")"
    # No VIRTUAL_ENV: componentize-py would add the toolchain's own site-packages to the path.
    env -u VIRTUAL_ENV "$VENV/bin/componentize-py" --quiet -d "$wit" -w plugin \
        componentize runnel.component -p "$plugin_dir" -p "$SDK_DIR" -o "$out"
}

# Each example is its own plugin with its own `app` module, so each gets its own pytest run.
run_tests() {
    local dir
    for dir in "$SDK_DIR/tests" "$SDK_DIR"/examples/*/; do
        (cd "$dir" && PYTHONPATH=$SDK_DIR "$VENV/bin/python" -m pytest -q -p no:cacheprovider)
    done
}

ensure_toolchain
case ${1:-} in
    --examples)
        out_dir=${2:?usage: build.sh --examples OUT_DIR}
        for example in uppercase json-router counter thrower; do
            build "$SDK_DIR/examples/$example" "$out_dir/${example//-/_}.wasm"
        done
        ;;
    --test)
        run_tests
        ;;
    -*|"")
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
    *)
        build "$1" "${2:?usage: build.sh PLUGIN_DIR OUT.wasm}"
        ;;
esac
