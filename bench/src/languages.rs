//! The `uppercase` handler in every language Runnel has an SDK for, side by
//! side in one run: component size, compile time, time to start an
//! instance (`init` included), and messages per second per core at batch 1
//! and batch 100, timed as the WASM stage section times the Rust plugin.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use runnel::runtime::{EngineSettings, LoadError, Plugin, PluginEngine, PluginLimits};

use crate::wasm_stage;

/// The languages measured, in the order of the table: the Rust plugin is
/// the reference the targets compare against.
pub const LANGUAGES: [Language; 5] = [
    Language::Rust,
    Language::C,
    Language::Go,
    Language::Python,
    Language::JavaScript,
];

/// Batch sizes of the table; values are 100 bytes.
pub const BATCH_SIZES: [usize; 2] = [1, 100];
const VALUE_BYTES: usize = 100;
/// Instances started per language for the start-up time; the first is
/// left out (it pays for lazy set-up in the engine).
const INSTANTIATIONS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    C,
    Go,
    Python,
    JavaScript,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rust => "Rust",
            Self::C => "C",
            Self::Go => "Go",
            Self::Python => "Python",
            Self::JavaScript => "JavaScript",
        }
    }

    /// The folder under `sdk/` (and under the built SDK examples).
    fn sdk_folder(self) -> Option<&'static str> {
        match self {
            Self::Rust => None,
            Self::C => Some("c"),
            Self::Go => Some("go"),
            Self::Python => Some("python"),
            Self::JavaScript => Some("js"),
        }
    }

    /// Where its `uppercase` component is: the Rust plugins' directory, or
    /// `SDK_EXAMPLES/<language>/uppercase.wasm`.
    pub fn uppercase(self, rust_plugins: &Path, sdk_examples: &Path) -> PathBuf {
        match self.sdk_folder() {
            None => rust_plugins.join("uppercase.wasm"),
            Some(folder) => sdk_examples.join(folder).join("uppercase.wasm"),
        }
    }
}

/// One language's row.
#[derive(Debug, Clone)]
pub struct LanguageRun {
    pub language: Language,
    pub component_bytes: u64,
    /// Compiling the component to machine code, as a host does when it
    /// loads the plugin.
    pub compile: Duration,
    /// Loading the same component again from the host's compile cache
    /// (`runtime.compile_cache`): what a restarted host pays instead.
    pub compile_cached: Duration,
    /// Median time to create an instance from the pooling allocator and
    /// run `init`, and the fastest and slowest.
    pub instantiate: Duration,
    pub instantiate_range: (Duration, Duration),
    /// Messages per second per core at each of [`BATCH_SIZES`].
    pub messages_per_sec: Vec<(usize, f64)>,
}

impl LanguageRun {
    pub fn messages_per_sec_at(&self, batch_size: usize) -> Option<f64> {
        self.messages_per_sec
            .iter()
            .find(|(size, _)| *size == batch_size)
            .map(|(_, rate)| *rate)
    }
}

/// Measures every language whose component is there; says which are not.
pub fn measure(
    components: &[(Language, PathBuf)],
    window: Duration,
    say: impl Fn(&str),
) -> anyhow::Result<Vec<LanguageRun>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let engine = PluginEngine::new(EngineSettings::default())?;
    let cache_dir = tempfile::tempdir().context("a directory for the compile cache")?;
    let cached_engine = PluginEngine::new(EngineSettings {
        compile_cache: Some(cache_dir.path().to_owned()),
        ..EngineSettings::default()
    })?;
    let mut rows = Vec::new();
    let mut points = Vec::new();
    for (language, path) in components {
        if !path.is_file() {
            say(&format!(
                "  {}: no component at {}; left out",
                language.name(),
                path.display()
            ));
            continue;
        }
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let started = Instant::now();
        let compiled = engine.compile("uppercase", &wasm, false)?;
        let compile = started.elapsed();
        cached_engine.compile("uppercase", &wasm, false)?;
        let started = Instant::now();
        cached_engine.compile("uppercase", &wasm, false)?;
        let compile_cached = started.elapsed();
        let configure = || compiled.configure(Vec::new(), PluginLimits::default());
        let (instantiate, instantiate_range) = runtime.block_on(time_instantiation(&configure))?;
        say(&format!(
            "  {}: {:.1} MB, compiled in {:.2} s ({:.3} s from the cache), instance started in {:.2} ms",
            language.name(),
            wasm.len() as f64 / 1e6,
            compile.as_secs_f64(),
            compile_cached.as_secs_f64(),
            instantiate.as_secs_f64() * 1e3
        ));
        let plugin = configure()?;
        for batch_size in BATCH_SIZES {
            let batch = wasm_stage::batch(batch_size, VALUE_BYTES);
            wasm_stage::check_uppercase(&runtime, &plugin, &batch)
                .with_context(|| format!("the {} uppercase handler", language.name()))?;
            runtime.block_on(wasm_stage::call_for(&plugin, &batch, wasm_stage::WARM_UP))?;
            points.push((rows.len(), batch_size, batch, Vec::new()));
        }
        rows.push((
            LanguageRun {
                language: *language,
                component_bytes: wasm.len() as u64,
                compile,
                compile_cached,
                instantiate,
                instantiate_range,
                messages_per_sec: Vec::new(),
            },
            plugin,
        ));
    }
    // Windows in turn across every language and batch, as the WASM stage
    // section does, so a burst of other work lands on all of them alike.
    for _ in 0..wasm_stage::WINDOWS {
        for (row, _, batch, per_cpu) in &mut points {
            let plugin = &rows[*row].1;
            let (calls_per_cpu_sec, _) =
                runtime.block_on(wasm_stage::one_window(plugin, batch, window))?;
            per_cpu.push(calls_per_cpu_sec * batch.len() as f64);
        }
    }
    for (row, batch_size, _, mut per_cpu) in points {
        per_cpu.sort_by(f64::total_cmp);
        let median = per_cpu[per_cpu.len() / 2];
        rows[row].0.messages_per_sec.push((batch_size, median));
    }
    Ok(rows.into_iter().map(|(run, _)| run).collect())
}

/// Starts [`INSTANTIATIONS`] instances, each of a freshly configured plugin
/// so none is reused; returns the median and the range, the first left out.
async fn time_instantiation(
    configure: &impl Fn() -> Result<Plugin, LoadError>,
) -> anyhow::Result<(Duration, (Duration, Duration))> {
    let mut times = Vec::with_capacity(INSTANTIATIONS);
    for _ in 0..INSTANTIATIONS {
        let plugin = configure()?;
        let started = Instant::now();
        plugin.validate().await?;
        times.push(started.elapsed());
    }
    let mut times = times.split_off(1);
    times.sort();
    Ok((times[times.len() / 2], (times[0], times[times.len() - 1])))
}
