#!/usr/bin/env bash
# The SDKs of every language but Rust (sdk/<language>/): each one's own tests,
# then its example handlers built into $RUNNEL_PLUGINS_TARGET_DIR/sdk/<language>/,
# where tests/languages.rs and tests/throwing.rs run them beside the Rust ones.
# Each SDK's build.sh installs its toolchain when it is missing (cached between
# runs).
#   scripts/sdks.sh [--examples-only] [LANGUAGE...]     (all of them by default)
# --examples-only skips the tests (bench/run.sh needs only the examples).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/build-env.sh

run_tests=true
if [ "${1:-}" = --examples-only ]; then
    run_tests=false
    shift
fi
languages=("$@")
if [ ${#languages[@]} -eq 0 ]; then
    languages=(js python go c)
fi
for language in "${languages[@]}"; do
    started=$SECONDS
    if $run_tests; then
        printf '\n==> SDK %s: its tests (sdk/%s/build.sh --test)\n' "$language" "$language"
        "sdk/$language/build.sh" --test
    fi
    printf '\n==> SDK %s: the example handlers\n' "$language"
    "sdk/$language/build.sh" --examples "$RUNNEL_PLUGINS_TARGET_DIR/sdk/$language"
    echo "SDK $language took $((SECONDS - started)) s"
done
