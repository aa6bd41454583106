//! The WebAssembly side of Runnel: wasmtime [`Engine`]s shared by every
//! plugin of the host, plugins compiled once and pre-instantiated, and every
//! call run in a sandbox with memory, wall-clock and (optionally) fuel limits.
//!
//! Policy decided once, here: epoch interruption is always on (one ticker
//! thread per engine), instances come from the pooling allocator, and an
//! instance that failed a call is thrown away, never reused.
//!
//! Fuel is counted only where it is needed, because counting it costs every
//! call of a plugin about a tenth of its speed (930 k against 1.02 M
//! one-message calls per second, 11 M against 13 M messages per second at
//! batch 1000, in `bench/`): plugins with a fuel budget run on a metered
//! engine, made when the first of them loads, and the rest on an unmetered
//! one, unless the host is set to meter every plugin.

mod bindings;
mod component_file;
mod limits;
mod plugin;
mod tenants;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use thiserror::Error;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

pub use component_file::{ComponentFileError, NotAComponent, read_component};
// Batches and answers in the encoding of `wit/ENCODING.md`.
pub use limits::{PluginLimits, default_call_timeout, default_max_memory_bytes};
pub use plugin::{
    CONTRACT_VERSION, CallError, CallErrorKind, CompiledPlugin, Invocation, LoadError, Plugin,
};
pub use runnel_encoding::{
    BatchView, BatchWriter, EncodedBatch, EncodedOutcomes, FailureKind, MessageView, NewMessage,
    Outcome, OutputView,
};
pub use tenants::{CallSlot, HostShares, Tenant, memory_share, slot_share};

use plugin::InstanceState;

/// Bytes of each fiber stack left committed between calls.
const ASYNC_STACK_KEEP_RESIDENT: usize = 256 << 10;

/// Engine-wide settings: what every plugin on this host shares.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How often the epoch advances. A plugin's deadline is checked, and a
    /// long-running plugin yields to other work, once per tick.
    pub epoch_tick: Duration,
    /// Count fuel in every plugin, for the fuel-used metric, not only in
    /// those with a fuel budget (which are always metered). Costs those
    /// plugins about a tenth of their speed.
    pub fuel_metering: bool,
    /// Instances alive at once across all plugins of one engine (each holds
    /// a memory slot); the metered engine, when there is one, has as many.
    pub max_instances: u32,
    /// No plugin may be given a memory limit above this.
    pub max_memory_bytes: u64,
    /// Where compiled plugins are kept between runs (an absolute
    /// directory), if anywhere.
    pub compile_cache: Option<PathBuf>,
    /// Plugin calls running at once across the host, shared fairly by the
    /// pipelines that want them.
    pub call_slots: usize,
    /// Linear memory of every plugin instance together; each pipeline may
    /// hold an equal share.
    pub max_total_memory_bytes: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            epoch_tick: Duration::from_millis(10),
            fuel_metering: false,
            max_instances: crate::config::defaults::MAX_INSTANCES,
            max_memory_bytes: 1 << 30,
            compile_cache: None,
            call_slots: crate::config::defaults::call_slots(),
            max_total_memory_bytes: crate::config::defaults::max_total_memory_bytes(),
        }
    }
}

#[derive(Debug, Error)]
#[error("failed to set up the WebAssembly engine: {0:#}")]
pub struct EngineError(wasmtime::Error);

/// The host's WebAssembly engines, with the linker every plugin is
/// instantiated through.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    shares: Arc<HostShares>,
    /// Where plugins without a fuel budget run: metered only when
    /// `settings.fuel_metering` asks for every plugin to be.
    plain: Arc<EngineCore>,
    /// Where plugins with a fuel budget run on a host that does not meter
    /// every plugin; made when the first such plugin loads.
    metered: OnceLock<Arc<EngineCore>>,
    settings: EngineSettings,
}

/// One wasmtime engine and its linker. Code compiled for one engine runs on
/// that engine only.
pub(crate) struct EngineCore {
    engine: Engine,
    linker: Linker<InstanceState>,
    /// Times calls and their deadlines. It reads the CPU's time-stamp
    /// counter where that is reliable: 12 ns a read against 32 ns for the
    /// system clock on the benchmark machine, and a call reads it twice.
    clock: quanta::Clock,
    /// The highest memory limit a plugin may be given.
    max_memory_bytes: u64,
    fuel_metering: bool,
    /// Whose share calls and instances outside any pipeline count against
    /// (a plugin being validated, a benchmark).
    unassigned: Arc<Tenant>,
}

impl PluginEngine {
    pub fn new(settings: EngineSettings) -> Result<Self, EngineError> {
        let memory = usize::try_from(settings.max_total_memory_bytes).unwrap_or(usize::MAX);
        let shares = HostShares::new(settings.call_slots, memory);
        let plain = EngineCore::new(&settings, settings.fuel_metering, &shares)?;
        Ok(Self {
            inner: Arc::new(EngineInner {
                shares,
                plain: Arc::new(plain),
                metered: OnceLock::new(),
                settings,
            }),
        })
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// A pipeline's claim on the host's call slots and plugin memory, for
    /// as long as it is held.
    pub fn tenant(&self, pipeline: &str, weight: u32) -> Arc<Tenant> {
        self.inner.shares.tenant(pipeline, weight)
    }

    /// The host's call slots and plugin memory.
    pub fn shares(&self) -> &Arc<HostShares> {
        &self.inner.shares
    }

    /// Compiles a plugin for the engine its limits need and checks that it
    /// implements the `plugin` world. `init` runs when the first instance is
    /// created; call [`Plugin::validate`] to run it now.
    pub fn load(
        &self,
        name: &str,
        wasm: &[u8],
        config: Vec<(String, String)>,
        limits: PluginLimits,
    ) -> Result<Plugin, LoadError> {
        let fuel_budget = limits.fuel_per_call.is_some();
        Plugin::compile(&self.core(name, fuel_budget)?, name, wasm, config, limits)
    }

    /// Compiles a component and checks that it implements the `plugin`
    /// world, leaving configuration for later ([`CompiledPlugin::configure`]).
    /// `fuel_budget` says whether any configuration of it will set a fuel
    /// budget, which needs code compiled with fuel metering.
    /// CPU-heavy: call it off the async runtime's worker threads.
    pub fn compile(
        &self,
        name: &str,
        wasm: &[u8],
        fuel_budget: bool,
    ) -> Result<CompiledPlugin, LoadError> {
        CompiledPlugin::compile(&self.core(name, fuel_budget)?, name, wasm)
    }

    /// The engine for a plugin with or without a fuel budget.
    fn core(&self, name: &str, fuel_budget: bool) -> Result<Arc<EngineCore>, LoadError> {
        let inner = &self.inner;
        if !fuel_budget || inner.plain.fuel_metering {
            return Ok(inner.plain.clone());
        }
        if let Some(metered) = inner.metered.get() {
            return Ok(metered.clone());
        }
        // Two plugins loading at once may both build one; the loser is
        // dropped, and its ticker thread ends with it.
        let built = EngineCore::new(&inner.settings, true, &inner.shares).map_err(|error| {
            LoadError::MeteredEngine {
                plugin: name.to_owned(),
                reason: error.to_string(),
            }
        })?;
        Ok(inner.metered.get_or_init(|| Arc::new(built)).clone())
    }
}

impl EngineCore {
    fn new(
        settings: &EngineSettings,
        fuel_metering: bool,
        shares: &Arc<HostShares>,
    ) -> Result<Self, EngineError> {
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
            .consume_fuel(fuel_metering)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(directory) = &settings.compile_cache {
            let mut cache = CacheConfig::new();
            cache.with_directory(directory);
            config.cache(Some(Cache::new(cache).map_err(EngineError)?));
        }
        let engine = Engine::new(&config).map_err(EngineError)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(EngineError)?;
        bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(EngineError)?;

        spawn_epoch_ticker(&engine, settings.epoch_tick).map_err(|e| {
            EngineError(wasmtime::Error::new(e).context("starting the epoch ticker"))
        })?;
        Ok(Self {
            engine,
            linker,
            clock: quanta::Clock::new(),
            max_memory_bytes: settings.max_memory_bytes,
            fuel_metering,
            unassigned: shares.outside_pipelines("unassigned"),
        })
    }

    pub(crate) fn unassigned(&self) -> &Arc<Tenant> {
        &self.unassigned
    }

    /// The highest memory limit a plugin on this engine may be given.
    pub(crate) fn max_memory_bytes(&self) -> u64 {
        self.max_memory_bytes
    }

    /// Whether code on this engine counts fuel.
    pub(crate) fn fuel_metering(&self) -> bool {
        self.fuel_metering
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn linker(&self) -> &Linker<InstanceState> {
        &self.linker
    }

    fn clock(&self) -> &quanta::Clock {
        &self.clock
    }
}

/// One thread per engine advances the epoch; stores compare their deadlines
/// against it. The thread ends when its engine is dropped.
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
