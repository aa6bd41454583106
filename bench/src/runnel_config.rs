//! The `runnel.toml` files the harness generates: one per Runnel process,
//! with nothing set that the measurement does not need, so the numbers
//! are those of Runnel's defaults unless a table says otherwise.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use toml::{Table, Value};

#[derive(Debug, Clone)]
pub struct RunnelConfig {
    pub brokers: String,
    /// Raw producer options (`[kafka.producer]`).
    pub producer: Vec<(String, String)>,
    /// `runtime.worker_threads`; Runnel's default (one per CPU) when `None`.
    pub worker_threads: Option<usize>,
    pub pipelines: Vec<PipelineSpec>,
}

#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub name: String,
    pub input: String,
    pub output: String,
    pub group: String,
    pub plugin: PathBuf,
    /// A profile's presets (`realtime`, ...), beneath the settings below.
    pub profile: Option<&'static str>,
    /// The profile's, or Runnel's default, when `None`.
    pub batch_size: Option<usize>,
    /// The profile's, or Runnel's default, when `None`.
    pub batch_timeout: Option<Duration>,
    /// Runnel's default when `None`.
    pub max_in_flight: Option<usize>,
    /// `exactly_once`: outputs and offsets in Kafka transactions.
    pub exactly_once: bool,
    /// Handed to the plugin's `init`.
    pub plugin_config: Vec<(String, String)>,
}

impl RunnelConfig {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.to_toml()).with_context(|| format!("writing {}", path.display()))
    }

    pub fn to_toml(&self) -> String {
        let mut kafka = Table::new();
        kafka.insert("brokers".into(), self.brokers.clone().into());
        kafka.insert("producer".into(), string_table(&self.producer));
        let mut http = Table::new();
        // Any free port: several hosts may run one after the other, and
        // nothing here calls the HTTP API.
        http.insert("listen".into(), "127.0.0.1:0".into());
        let pipelines: Table = self
            .pipelines
            .iter()
            .map(|pipeline| (pipeline.name.clone(), pipeline.to_value()))
            .collect();
        let mut root = Table::new();
        root.insert("kafka".into(), Value::Table(kafka));
        root.insert("http".into(), Value::Table(http));
        // Stopping a host between measurements should not wait long.
        root.insert("drain_timeout".into(), "5s".into());
        if let Some(threads) = self.worker_threads {
            let mut runtime = Table::new();
            runtime.insert("worker_threads".into(), Value::Integer(threads as i64));
            root.insert("runtime".into(), Value::Table(runtime));
        }
        root.insert("pipelines".into(), Value::Table(pipelines));
        root.to_string()
    }
}

impl PipelineSpec {
    /// A pipeline at `batch_size` and `batch_timeout`, the rest to fill in
    /// or left at Runnel's defaults.
    pub fn new_batch(batch_size: usize, batch_timeout: Duration) -> Self {
        Self {
            name: String::new(),
            input: String::new(),
            output: String::new(),
            group: String::new(),
            plugin: PathBuf::new(),
            profile: None,
            batch_size: Some(batch_size),
            batch_timeout: Some(batch_timeout),
            max_in_flight: None,
            exactly_once: false,
            plugin_config: Vec::new(),
        }
    }

    fn to_value(&self) -> Value {
        let mut table = Table::new();
        table.insert(
            "inputs".into(),
            Value::Array(vec![self.input.clone().into()]),
        );
        table.insert("output".into(), self.output.clone().into());
        table.insert("group".into(), self.group.clone().into());
        table.insert(
            "plugin".into(),
            self.plugin.to_string_lossy().into_owned().into(),
        );
        if let Some(profile) = self.profile {
            table.insert("profile".into(), profile.into());
        }
        if let Some(batch_size) = self.batch_size {
            table.insert("batch_size".into(), Value::Integer(batch_size as i64));
        }
        if let Some(batch_timeout) = self.batch_timeout {
            let millis = format!("{}ms", batch_timeout.as_millis());
            table.insert("batch_timeout".into(), millis.into());
        }
        if let Some(max_in_flight) = self.max_in_flight {
            table.insert("max_in_flight".into(), Value::Integer(max_in_flight as i64));
        }
        if self.exactly_once {
            table.insert("exactly_once".into(), Value::Boolean(true));
        }
        if !self.plugin_config.is_empty() {
            table.insert("config".into(), string_table(&self.plugin_config));
        }
        Value::Table(table)
    }
}

fn string_table(pairs: &[(String, String)]) -> Value {
    Value::Table(
        pairs
            .iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel::config::Config;

    #[test]
    fn runnel_accepts_the_generated_file() {
        let config = RunnelConfig {
            brokers: "127.0.0.1:9092".into(),
            producer: vec![("linger.ms".into(), "0".into())],
            worker_threads: Some(1),
            pipelines: vec![PipelineSpec {
                name: "router".into(),
                input: "in".into(),
                output: "out".into(),
                group: "g".into(),
                plugin: "/plugins/json_router.wasm".into(),
                profile: None,
                batch_size: Some(100),
                batch_timeout: Some(Duration::from_millis(5)),
                max_in_flight: Some(50_000),
                exactly_once: true,
                plugin_config: vec![("route_field".into(), "topic".into())],
            }],
        };
        let parsed = Config::parse(&config.to_toml(), &[]).expect("a valid runnel.toml");
        let pipeline = parsed.resolve("router").unwrap();
        assert_eq!(pipeline.batch_size, 100);
        assert_eq!(pipeline.batch_timeout, Duration::from_millis(5));
        assert_eq!(pipeline.group, "g");
        assert_eq!(pipeline.max_in_flight, 50_000);
        assert!(pipeline.exactly_once);
        assert_eq!(parsed.kafka.producer["linger.ms"], "0");
        assert_eq!(parsed.http.listen.port(), 0);
        assert_eq!(parsed.runtime.worker_threads, Some(1));
    }

    #[test]
    fn a_profile_alone_leaves_batching_to_it() {
        let config = RunnelConfig {
            brokers: "127.0.0.1:9092".into(),
            producer: Vec::new(),
            worker_threads: None,
            pipelines: vec![PipelineSpec {
                name: "upper".into(),
                input: "in".into(),
                output: "out".into(),
                group: "g".into(),
                plugin: "/plugins/uppercase.wasm".into(),
                profile: Some("realtime"),
                batch_size: None,
                batch_timeout: None,
                max_in_flight: None,
                exactly_once: false,
                plugin_config: Vec::new(),
            }],
        };
        let toml = config.to_toml();
        assert!(!toml.contains("batch_size"), "{toml}");
        let parsed = Config::parse(&toml, &[]).expect("a valid runnel.toml");
        let pipeline = parsed.resolve("upper").unwrap();
        assert_eq!(pipeline.batch_size, 1);
        assert!(!pipeline.exactly_once);
    }
}
