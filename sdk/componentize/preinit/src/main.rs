//! `runnel-preinit IN.wasm OUT.wasm`: runs a WASI preview 1 reactor's `_initialize` once, at
//! build time, and writes the module back with the memory and globals it left as the
//! module's initial state (Wizer's snapshot, `wasmtime-wizer`). `_initialize` is removed, so
//! an instance of the result starts where initialisation ended instead of running it again:
//! for a Go plugin that is the Go runtime's start-up and every package initialiser, about
//! 1.3 ms per instance.
//!
//! Run it on the core module, before it becomes a component: the WASI adapter then starts
//! fresh in every instance, holding no handle of this process's WASI context.
//!
//! What initialisation sees is chosen so that its snapshot holds nothing the host would show
//! differently: no arguments, no environment, no files, no standard input or output (standard
//! error is this process's, so that a failing initialiser's message shows in the build). The
//! wall clock and the random source are real: their values, read once here, are frozen into
//! the module (see sdk/go/README.md for what that means for Go).

use std::cell::Cell;
use std::path::PathBuf;
use std::process::ExitCode;

use wasmtime::error::Context;
use wasmtime::{Engine, Linker, Store, bail};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{HostMonotonicClock, WasiCtxBuilder};
use wasmtime_wizer::Wizer;

/// The monotonic clock initialisation reads: 1 ns more at every read, from 0. Whatever the
/// module records from it is frozen into every instance, and an instance's own clock (the
/// host's, which starts at 0 when its WASI context is made) must never read less than a
/// frozen value: time going backwards would break the runtime's timers and pacing. A real
/// clock here would freeze milliseconds, more than a fresh instance's clock may yet read. Go's
/// runtime reads this one 8 times while starting the uppercase example: the largest value it
/// can keep is a few nanoseconds, far below what any instance reads after being created.
/// Counting (rather than always 0) keeps a loop that waits for time to pass finite.
struct CountingClock(Cell<u64>);

impl HostMonotonicClock for CountingClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        let now = self.0.get() + 1;
        self.0.set(now);
        now
    }
}

async fn preinitialise(wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    let engine = Engine::default();
    let wasi = WasiCtxBuilder::new()
        .inherit_stderr()
        .monotonic_clock(CountingClock(Cell::new(0)))
        .build_p1();
    let mut store = Store::new(&engine, wasi);
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |wasi| wasi)?;
    Wizer::new()
        .init_func("_initialize")
        .run(&mut store, wasm, async |store, module| {
            // The plugin's own imports (logging) are the host's: calling one while
            // initialising traps, naming it, rather than running against a stand-in.
            linker.define_unknown_imports_as_traps(module)?;
            linker.instantiate_async(store, module).await
        })
        .await
        .context("initialising the module (only WASI may be called during `_initialize`)")
}

fn run() -> wasmtime::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        bail!("usage: runnel-preinit IN.wasm OUT.wasm");
    };
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));
    let wasm = std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let snapshot = runtime.block_on(preinitialise(&wasm))?;
    std::fs::write(&output, snapshot).with_context(|| format!("writing {}", output.display()))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("runnel-preinit: {error:#}");
            ExitCode::FAILURE
        }
    }
}
