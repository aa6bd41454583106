//! A compiled plugin and its instances.

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use quanta::{Clock, Instant};

use thiserror::Error;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::EngineCore;
use super::component_file::NotAComponent;
use crate::client_events::LogLimiter;
use runnel_encoding::{EncodedBatch, EncodedOutcomes};

use super::bindings::{self, LogLevel, PluginPre};
use super::limits::{MemoryLimiter, MemoryRefusal, PluginLimits};
use super::tenants::Tenant;

/// Idle instances kept per plugin; more are created when calls overlap and
/// dropped when they finish.
const MAX_IDLE_INSTANCES: usize = 8;

/// An instance left with less than this fraction of its memory limit free
/// (1/4) after a call is not reused.
const RETIRE_AT_FREE_FRACTION: u64 = 4;

/// Longest log line a plugin may write; longer lines are cut.
const MAX_LOG_LINE_BYTES: usize = 4096;

/// Why a plugin could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("plugin {plugin} {problem}")]
    NotAComponent {
        plugin: String,
        problem: NotAComponent,
    },
    #[error("plugin {plugin} is not a valid WebAssembly component: {reason}")]
    Compile { plugin: String, reason: String },
    #[error("plugin {plugin} does not implement the runnel:plugin/plugin world: {reason}")]
    WrongWorld { plugin: String, reason: String },
    #[error(
        "plugin {plugin} asks for {requested} bytes of memory, above the host's limit of {allowed}"
    )]
    MemoryLimitTooHigh {
        plugin: String,
        requested: u64,
        allowed: u64,
    },
    #[error("plugin {plugin} sets a fuel budget but was compiled without fuel metering")]
    FuelMeteringOff { plugin: String },
    #[error(
        "plugin {plugin} sets a fuel budget, and the fuel-metered engine failed to start: {reason}"
    )]
    MeteredEngine { plugin: String, reason: String },
    #[error("plugin {plugin} refused its configuration: {message}")]
    InitRefused { plugin: String, message: String },
    #[error("plugin {plugin} failed while starting: {source}")]
    InitFailed { plugin: String, source: CallError },
}

/// How a call into a plugin failed as a whole (as opposed to the plugin
/// reporting that one message failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallErrorKind {
    /// The plugin trapped: a panic, an unreachable instruction, a bad memory
    /// access.
    Trap,
    /// The call ran past its wall-clock deadline.
    Timeout,
    /// The plugin tried to grow its memory past its limit.
    OutOfMemory,
    /// The call used up its fuel budget.
    OutOfFuel,
    /// The plugin answered, but its answer broke the contract.
    ContractViolation,
}

impl CallErrorKind {
    /// Stable name for logs, metrics and dead-letter headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trap => "trap",
            Self::Timeout => "timeout",
            Self::OutOfMemory => "out_of_memory",
            Self::OutOfFuel => "out_of_fuel",
            Self::ContractViolation => "contract_violation",
        }
    }
}

impl std::fmt::Display for CallErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Error)]
#[error("{kind}: {message}")]
pub struct CallError {
    pub kind: CallErrorKind,
    pub message: String,
}

impl CallError {
    fn new(kind: CallErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The result of one `handle` call with what it cost.
#[derive(Debug)]
pub struct Invocation {
    pub result: Result<EncodedOutcomes, CallError>,
    pub elapsed: Duration,
    /// Fuel the call consumed, when fuel metering is on.
    pub fuel_used: Option<u64>,
    /// The instance's linear memory size after the call, in bytes.
    pub memory_bytes: usize,
}

/// A component compiled and checked against the `plugin` world, before any
/// configuration. Cheap to clone: pipelines that run the same component with
/// different configurations share one compilation.
#[derive(Clone)]
pub struct CompiledPlugin {
    name: Arc<str>,
    engine: Arc<EngineCore>,
    pre: PluginPre<InstanceState>,
}

impl std::fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPlugin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CompiledPlugin {
    pub(super) fn compile(
        engine: &Arc<EngineCore>,
        name: &str,
        wasm: &[u8],
    ) -> Result<Self, LoadError> {
        let plugin = name.to_owned();
        if let Some(problem) = NotAComponent::of(wasm) {
            return Err(LoadError::NotAComponent { plugin, problem });
        }
        // Not `Component::new`, which would also read the text format.
        let component =
            Component::from_binary(engine.engine(), wasm).map_err(|e| LoadError::Compile {
                plugin: plugin.clone(),
                reason: format!("{e:#}"),
            })?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            plugin: plugin.clone(),
            reason: match contract_version(&component, engine.engine()) {
                Some(version) if version != CONTRACT_VERSION => format!(
                    "it was built for runnel:plugin@{version}, and this host runs plugins built \
                     for runnel:plugin@{CONTRACT_VERSION}: rebuild it with an SDK for that version"
                ),
                _ => format!("{e:#}"),
            },
        };
        let instance_pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = PluginPre::new(instance_pre).map_err(wrong_world)?;
        Ok(Self {
            name: name.into(),
            engine: engine.clone(),
            pre,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin with the configuration its `init` receives and the limits
    /// it runs under. `init` runs when the first instance is created; call
    /// [`Plugin::validate`] to run it now.
    pub fn configure(
        &self,
        config: Vec<(String, String)>,
        limits: PluginLimits,
    ) -> Result<Plugin, LoadError> {
        check_limits(&self.engine, &self.name, &limits)?;
        Ok(Plugin {
            name: self.name.clone(),
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            config,
            limits,
            idle: Mutex::new(Vec::new()),
        })
    }
}

/// The version of the `runnel:plugin` package this host implements.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// The `runnel:plugin` version a component exports its handler for, if any.
fn contract_version(component: &Component, engine: &wasmtime::Engine) -> Option<String> {
    component
        .component_type()
        .exports(engine)
        .find_map(|(name, _)| {
            name.strip_prefix("runnel:plugin/handler@")
                .map(str::to_owned)
        })
}

/// Refuses limits the engine cannot honour.
fn check_limits(engine: &EngineCore, name: &str, limits: &PluginLimits) -> Result<(), LoadError> {
    let allowed = engine.max_memory_bytes();
    if limits.max_memory_bytes > allowed {
        return Err(LoadError::MemoryLimitTooHigh {
            plugin: name.to_owned(),
            requested: limits.max_memory_bytes,
            allowed,
        });
    }
    if limits.fuel_per_call.is_some() && !engine.fuel_metering() {
        return Err(LoadError::FuelMeteringOff {
            plugin: name.to_owned(),
        });
    }
    Ok(())
}

/// A compiled, pre-instantiated plugin. Cheap to share: clone the `Arc`.
pub struct Plugin {
    name: Arc<str>,
    engine: Arc<EngineCore>,
    pre: PluginPre<InstanceState>,
    config: Vec<(String, String)>,
    limits: PluginLimits,
    idle: Mutex<Vec<PluginInstance>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub(super) fn compile(
        engine: &Arc<EngineCore>,
        name: &str,
        wasm: &[u8],
        config: Vec<(String, String)>,
        limits: PluginLimits,
    ) -> Result<Self, LoadError> {
        // The cheap checks first: no compilation for limits that cannot run.
        check_limits(engine, name, &limits)?;
        CompiledPlugin::compile(engine, name, wasm)?.configure(config, limits)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Creates an instance and runs `init`, proving that the plugin starts
    /// with its configuration. The instance is kept for the first batch.
    pub async fn validate(&self) -> Result<(), LoadError> {
        let instance = self.instantiate(self.engine.unassigned()).await?;
        self.release(instance);
        Ok(())
    }

    /// Runs one batch through the plugin, outside any pipeline's share of
    /// the host.
    pub async fn handle(&self, batch: &EncodedBatch) -> Invocation {
        self.handle_for(batch, self.engine.unassigned()).await
    }

    /// Runs one batch through the plugin on a call slot of `tenant`, with
    /// the instance's memory counted against it.
    pub async fn handle_for(&self, batch: &EncodedBatch, tenant: &Arc<Tenant>) -> Invocation {
        let _slot = tenant.call_slot().await;
        let clock = self.engine.clock();
        let started = clock.now();
        let mut instance = match self.take_idle() {
            Some(mut instance) => {
                instance.store.data_mut().limiter.move_to(tenant);
                instance
            }
            None => match self.instantiate(tenant).await {
                Ok(instance) => instance,
                Err(error) => {
                    let error = match error {
                        LoadError::InitFailed { source, .. } => source,
                        other => CallError::new(CallErrorKind::Trap, other.to_string()),
                    };
                    return Invocation {
                        result: Err(error),
                        elapsed: clock.now().duration_since(started),
                        fuel_used: None,
                        memory_bytes: 0,
                    };
                }
            },
        };
        let deadline = started + self.limits.call_timeout;
        let fuel_before = self.prepare_call(&mut instance.store, deadline);
        let handler = instance.bindings.runnel_plugin_handler();
        let call = handler.call_handle(&mut instance.store, batch.bytes());
        let outcome = within_deadline(call, deadline, clock).await;
        let fuel_used =
            fuel_before.map(|before| before.saturating_sub(instance.store.get_fuel().unwrap_or(0)));
        let memory_bytes = instance.store.data().limiter.peak_memory_bytes();
        let result = match outcome {
            Some(Ok(answer)) => EncodedOutcomes::parse(answer, batch.len()).map_err(|violation| {
                CallError::new(
                    CallErrorKind::ContractViolation,
                    format!("the plugin's answer breaks the encoding: {violation}"),
                )
            }),
            Some(Err(error)) => Err(classify(&error, &instance.store, self.limits.call_timeout)),
            None => Err(deadline_error(self.limits.call_timeout)),
        };
        // An instance whose call failed may hold broken state: drop it. One
        // whose memory has grown close to its limit is dropped too, before
        // it runs out in the middle of a batch: a guest that leaks (as
        // componentize-py 0.25's Python leaks every answer it returns) is
        // then replaced between batches instead of trapping in one.
        if result.is_ok() && !self.near_memory_limit(memory_bytes) {
            self.release(instance);
        } else if result.is_ok() {
            self.note_retired(memory_bytes);
        }
        Invocation {
            result,
            elapsed: clock.now().duration_since(started),
            fuel_used,
            memory_bytes,
        }
    }

    fn near_memory_limit(&self, memory_bytes: usize) -> bool {
        let limit = self.limits.max_memory_bytes;
        memory_bytes as u64 >= limit - limit / RETIRE_AT_FREE_FRACTION
    }

    fn note_retired(&self, memory_bytes: usize) {
        if LogLimiter::global()
            .admit(&format!("memory-retired:{}", self.name()))
            .is_some()
        {
            tracing::info!(
                plugin = %self.name(),
                memory_mib = memory_bytes >> 20,
                limit_mib = self.limits.max_memory_bytes >> 20,
                "plugin instance near its memory limit replaced by a fresh one after its call"
            );
        }
    }

    fn take_idle(&self) -> Option<PluginInstance> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn release(&self, instance: PluginInstance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_INSTANCES {
            idle.push(instance);
        }
    }

    async fn instantiate(&self, tenant: &Arc<Tenant>) -> Result<PluginInstance, LoadError> {
        let engine = self.engine.engine();
        let clock = self.engine.clock();
        let state = InstanceState {
            // Nothing from the host: no arguments, no environment, no
            // preopened directories, no network.
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(self.limits.max_memory_bytes, tenant.clone()),
            plugin: self.name.clone(),
            deadline: clock.now(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        let ticks = clock.clone();
        store.epoch_deadline_callback(move |context| {
            if ticks.now() >= context.data().deadline {
                return Err(DeadlineExceeded.into());
            }
            // Let other tasks run, and other pipelines' calls if this
            // one's runs more than its share of the call slots; then keep
            // going.
            let tenant = context.data().limiter.tenant().clone();
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(tenant.tick())))
        });
        let failed = |source: CallError| LoadError::InitFailed {
            plugin: self.name.to_string(),
            source,
        };
        let deadline = clock.now() + self.limits.call_timeout;
        self.prepare_call(&mut store, deadline);
        let started = within_deadline(
            async {
                let bindings = self.pre.instantiate_async(&mut store).await?;
                let init = bindings
                    .runnel_plugin_handler()
                    .call_init(&mut store, &self.config)
                    .await?;
                Ok::<_, wasmtime::Error>((bindings, init))
            },
            deadline,
            clock,
        )
        .await;
        match started {
            Some(Ok((bindings, Ok(())))) => Ok(PluginInstance { store, bindings }),
            Some(Ok((_, Err(message)))) => Err(LoadError::InitRefused {
                plugin: self.name.to_string(),
                message,
            }),
            Some(Err(error)) => Err(failed(classify(&error, &store, self.limits.call_timeout))),
            None => Err(failed(deadline_error(self.limits.call_timeout))),
        }
    }

    /// Arms the deadline and fuel for one call; returns the fuel given.
    fn prepare_call(&self, store: &mut Store<InstanceState>, deadline: Instant) -> Option<u64> {
        store.data_mut().deadline = deadline;
        store.set_epoch_deadline(1);
        if !self.engine.fuel_metering() {
            return None;
        }
        let fuel = self.limits.fuel_per_call.unwrap_or(u64::MAX);
        // Cannot fail: metering is on.
        store.set_fuel(fuel).ok()?;
        Some(fuel)
    }
}

/// Runs `call` until `deadline`; `None` if it is still running then.
///
/// The epoch callback stops WebAssembly code at the deadline, but not a call
/// blocked in an asynchronous host function (a WASI sleep, say): only a timer
/// can. Almost every call finishes on its first poll, without ever waiting,
/// so the timer is armed only for one that does wait.
async fn within_deadline<T>(
    call: impl Future<Output = T>,
    deadline: Instant,
    clock: &Clock,
) -> Option<T> {
    let mut call = std::pin::pin!(call);
    if let Poll::Ready(done) = futures::poll!(call.as_mut()) {
        return Some(done);
    }
    let left = deadline.saturating_duration_since(clock.now());
    tokio::time::timeout(left, call).await.ok()
}

fn deadline_error(timeout: Duration) -> CallError {
    CallError::new(
        CallErrorKind::Timeout,
        format!(
            "call did not finish within {}",
            humantime::format_duration(timeout)
        ),
    )
}

/// Raised from the epoch callback when a call passes its deadline.
#[derive(Debug, Error)]
#[error("call ran past its deadline")]
struct DeadlineExceeded;

/// Names the reason a call into `store` failed with `error`.
fn classify(error: &wasmtime::Error, store: &Store<InstanceState>, timeout: Duration) -> CallError {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return deadline_error(timeout);
    }
    // A guest whose allocator is refused memory usually aborts with a trap;
    // the limiter knows the real reason.
    let limiter = &store.data().limiter;
    match limiter.refused() {
        Some(MemoryRefusal::Instance) => {
            return CallError::new(
                CallErrorKind::OutOfMemory,
                format!("plugin exceeded its memory limit ({error:#})"),
            );
        }
        Some(MemoryRefusal::HostShare) => {
            let share = limiter.tenant().memory_share() >> 20;
            return CallError::new(
                CallErrorKind::OutOfMemory,
                format!(
                    "the pipeline's plugin instances reached their share of the host's plugin \
                     memory, {share} MiB ({error:#})"
                ),
            );
        }
        None => {}
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
        return CallError::new(CallErrorKind::OutOfFuel, "plugin used up its fuel budget");
    }
    CallError::new(CallErrorKind::Trap, format!("{error:#}"))
}

struct PluginInstance {
    store: Store<InstanceState>,
    bindings: bindings::Plugin,
}

/// What each instance's store holds.
pub(crate) struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    plugin: Arc<str>,
    /// When the current call must end.
    deadline: Instant,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::runnel::plugin::log::Host for InstanceState {
    fn log(&mut self, level: LogLevel, mut message: String) {
        if message.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let plugin = &*self.plugin;
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }
}
