//! The WebAssembly side of Runnel: one wasmtime [`Engine`] per host, plugins
//! compiled once and pre-instantiated, and every call run in a sandbox with
//! memory, wall-clock and (optionally) fuel limits.
//!
//! Policy decided once, here: epoch interruption is always on (one ticker
//! thread per engine), instances come from the pooling allocator, and an
//! instance that failed a call is thrown away, never reused.

mod bindings;
mod limits;
mod plugin;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

// Batches and answers in the encoding of `wit/ENCODING.md`.
pub use limits::{PluginLimits, default_call_timeout, default_max_memory_bytes};
pub use plugin::{CallError, CallErrorKind, CompiledPlugin, Invocation, LoadError, Plugin};
pub use runnel_encoding::{
    BatchView, BatchWriter, EncodedBatch, EncodedOutcomes, FailureKind, MessageView, NewMessage,
    Outcome, OutputView,
};

use plugin::InstanceState;

/// Bytes of each fiber stack left committed between calls.
const ASYNC_STACK_KEEP_RESIDENT: usize = 256 << 10;

/// Engine-wide settings: what every plugin on this host shares.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How often the epoch advances. A plugin's deadline is checked, and a
    /// long-running plugin yields to other work, once per tick.
    pub epoch_tick: Duration,
    /// Count fuel in every plugin. Costs some speed; needed for fuel budgets
    /// and the fuel-used metric.
    pub fuel_metering: bool,
    /// Instances alive at once across all plugins (each holds a memory slot).
    pub max_instances: u32,
    /// No plugin may be given a memory limit above this.
    pub max_memory_bytes: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            epoch_tick: Duration::from_millis(10),
            fuel_metering: true,
            max_instances: 256,
            max_memory_bytes: 1 << 30,
        }
    }
}

#[derive(Debug, Error)]
#[error("failed to set up the WebAssembly engine: {0:#}")]
pub struct EngineError(wasmtime::Error);

/// The host's one WebAssembly engine, with the linker every plugin is
/// instantiated through.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    linker: Linker<InstanceState>,
    settings: EngineSettings,
}

impl PluginEngine {
    pub fn new(settings: EngineSettings) -> Result<Self, EngineError> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(settings.max_instances)
            .total_core_instances(settings.max_instances * 4)
            .total_memories(settings.max_instances * 2)
            .total_tables(settings.max_instances * 2)
            .total_stacks(settings.max_instances)
            .max_memories_per_module(2)
            // Calls run on pooled fiber stacks; keeping the touched part of
            // a stack resident between calls saves page faults on every
            // call.
            .async_stack_keep_resident(ASYNC_STACK_KEEP_RESIDENT)
            .max_memory_size(settings.max_memory_bytes as usize);

        let mut config = Config::new();
        config
            // Plugins are plain synchronous components; without the
            // component-model-async machinery a call is a simple fiber
            // switch, several times cheaper.
            .concurrency_support(false)
            .epoch_interruption(true)
            .consume_fuel(settings.fuel_metering)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(EngineError)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(EngineError)?;
        bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(EngineError)?;

        spawn_epoch_ticker(&engine, settings.epoch_tick).map_err(|e| {
            EngineError(wasmtime::Error::new(e).context("starting the epoch ticker"))
        })?;
        Ok(Self {
            inner: Arc::new(EngineInner {
                engine,
                linker,
                settings,
            }),
        })
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// Compiles a plugin and checks that it implements the `plugin` world.
    /// `init` runs when the first instance is created; call
    /// [`Plugin::validate`] to run it now.
    pub fn load(
        &self,
        name: &str,
        wasm: &[u8],
        config: Vec<(String, String)>,
        limits: PluginLimits,
    ) -> Result<Plugin, LoadError> {
        Plugin::compile(self, name, wasm, config, limits)
    }

    /// Compiles a component and checks that it implements the `plugin`
    /// world, leaving configuration for later ([`CompiledPlugin::configure`]).
    /// CPU-heavy: call it off the async runtime's worker threads.
    pub fn compile(&self, name: &str, wasm: &[u8]) -> Result<CompiledPlugin, LoadError> {
        CompiledPlugin::compile(self, name, wasm)
    }

    fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn linker(&self) -> &Linker<InstanceState> {
        &self.inner.linker
    }
}

/// One thread per engine advances the epoch; stores compare their deadlines
/// against it. The thread lives as long as the process: an engine is created
/// once per host.
fn spawn_epoch_ticker(engine: &Engine, tick: Duration) -> std::io::Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("runnel-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map(drop)
}
