# Sourced by scripts/demo.sh and scripts/test.sh: both build into the same
# places, so a user who runs one and then the other compiles wasmtime,
# librdkafka and the plugins once. The places are outside the clone when the
# machine allows it, so a fresh clone reuses them too; nothing depends on
# them being there.
export RUNNEL_CACHE="${RUNNEL_CACHE:-$HOME/.cache/runnel}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$RUNNEL_CACHE/target}"
export RUNNEL_PLUGINS_TARGET_DIR="${RUNNEL_PLUGINS_TARGET_DIR:-$RUNNEL_CACHE/plugins-target}"

# Says when a build will take a while: a first build compiles wasmtime and
# librdkafka, minutes on a small machine, and a silent wait looks like a hang.
announce_build() {
    if [ ! -x "$CARGO_TARGET_DIR/release/runnel" ]; then
        echo "First build: compiling Runnel and its dependencies (wasmtime, librdkafka) takes" \
            "several minutes (about 8 on 2 cores); later runs reuse it from $CARGO_TARGET_DIR."
    fi
}
