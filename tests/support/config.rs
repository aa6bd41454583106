//! Host configuration files and plugin manifests, built in code so that a
//! test states only what it is about: the preamble every host needs (its
//! broker, where it listens) is written here once.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// A host configuration (`runnel.toml`).
///
/// ```ignore
/// let config = HostConfig::new(&kafka::brokers())
///     .drain_timeout("20s")
///     .pipeline("upper", Pipeline::reading(&input).output(&output).plugin(plugin_path("uppercase")))
///     .write_in(dir.path());
/// ```
#[derive(Debug, Clone)]
pub struct HostConfig {
    table: Table,
}

impl HostConfig {
    /// A host of the cluster at `brokers`, its HTTP server on a free port
    /// of 127.0.0.1 (the tests find it in the host's log).
    pub fn new(brokers: &str) -> Self {
        let config = Self {
            table: Table::new(),
        };
        config
            .set(&["kafka", "brokers"], brokers)
            .listen("127.0.0.1:0")
    }

    /// Where the HTTP server listens (a Dapr sidecar needs a known port).
    pub fn listen(self, address: &str) -> Self {
        self.set(&["http", "listen"], address)
    }

    /// How long a stopping host may take to finish its work, as "20s".
    pub fn drain_timeout(self, timeout: &str) -> Self {
        self.set(&["drain_timeout"], timeout)
    }

    /// Plugins are loaded from, and reloaded when they change in, `dir`.
    pub fn plugin_dir(self, dir: &Path) -> Self {
        self.set(&["plugins", "dir"], path_value(dir))
    }

    /// Output bindings are reached through the Dapr sidecar whose HTTP API
    /// listens on `port`.
    pub fn dapr_sidecar(self, port: u16) -> Self {
        self.set(&["dapr", "sidecar"], format!("http://127.0.0.1:{port}"))
    }

    /// The admin endpoints want the token in the file `path`.
    pub fn admin_token_file(self, path: &Path) -> Self {
        self.set(&["http", "admin_token_file"], path_value(path))
    }

    /// Binding requests want Dapr's app API token, the content of `path`.
    pub fn dapr_app_token_file(self, path: &Path) -> Self {
        self.set(&["dapr", "app_api_token_file"], path_value(path))
    }

    /// One raw librdkafka option of every Kafka client of the host.
    pub fn client(self, option: &str, value: &str) -> Self {
        self.set(&["kafka", "client", option], value)
    }

    /// The SASL password is the content of `path`.
    pub fn sasl_password_file(self, path: &Path) -> Self {
        self.set(&["kafka", "sasl_password_file"], path_value(path))
    }

    /// One raw librdkafka option of the host's producer.
    pub fn producer(self, option: &str, value: &str) -> Self {
        self.set(&["kafka", "producer", option], value)
    }

    /// Adds the pipeline `name`.
    pub fn pipeline(self, name: &str, pipeline: Pipeline) -> Self {
        self.set(&["pipelines", name], pipeline.table)
    }

    /// Adds `settings`, a TOML fragment, to the configuration.
    pub fn settings(mut self, settings: &str) -> Self {
        merge(&mut self.table, parse_fragment(settings));
        self
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(&self.table).expect("a table serializes")
    }

    /// Writes the configuration to `dir/runnel.toml` and returns that path.
    pub fn write_in(&self, dir: &Path) -> PathBuf {
        let path = dir.join("runnel.toml");
        std::fs::write(&path, self.to_toml()).expect("writing the host config");
        path
    }

    fn set(mut self, path: &[&str], value: impl Into<Value>) -> Self {
        set_at(&mut self.table, path, value.into());
        self
    }
}

/// One pipeline's table: in a host configuration under `[pipelines.NAME]`,
/// in a plugin manifest under `[pipeline]`.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    table: Table,
}

impl Pipeline {
    /// A pipeline with no settings yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A pipeline reading the Kafka topic `input`. Tests run side by side,
    /// so its consumer group is named after its input: no two share one.
    pub fn reading(input: &str) -> Self {
        Self::new().set("inputs", vec![input]).set("group", input)
    }

    /// A pipeline fed by the Dapr input binding `binding`.
    pub fn bound_to(binding: &str) -> Self {
        Self::new().set("bindings", vec![binding])
    }

    /// Outputs go to the Kafka topic `topic`.
    pub fn output(self, topic: &str) -> Self {
        self.set("output", topic)
    }

    /// The plugin to run: a component file, or a plugin of the host's
    /// plugin directory by name.
    pub fn plugin(self, plugin: impl AsRef<Path>) -> Self {
        self.set("plugin", path_value(plugin.as_ref()))
    }

    /// Batches of up to `size` messages, each sent when full or `timeout`
    /// (as "20ms") after its first message.
    pub fn batch(self, size: i64, timeout: &str) -> Self {
        self.set("batch_size", size).set("batch_timeout", timeout)
    }

    /// One raw librdkafka option of the pipeline's consumer.
    pub fn consumer(mut self, option: &str, value: &str) -> Self {
        set_at(&mut self.table, &["consumer", option], value.into());
        self
    }

    /// A killed host's partitions move on to another host within seconds,
    /// not after the default 45.
    pub fn quick_failover(self) -> Self {
        self.consumer("session.timeout.ms", "6000")
            .consumer("heartbeat.interval.ms", "1000")
    }

    /// Sets `key` of the pipeline's table.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.table.insert(key.to_owned(), value.into());
        self
    }

    /// Adds `settings`, a TOML fragment of the pipeline's table (`[retry]`
    /// for its retry table).
    pub fn settings(mut self, settings: &str) -> Self {
        merge(&mut self.table, parse_fragment(settings));
        self
    }
}

/// A plugin manifest: plugin `name` at `version`, its component in the
/// file `component` (`NAME.wasm` when None), running `pipeline` if any.
pub fn plugin_manifest(
    name: &str,
    version: &str,
    component: Option<&str>,
    pipeline: Option<&Pipeline>,
) -> String {
    let mut manifest = Table::new();
    manifest.insert("name".into(), name.into());
    manifest.insert("version".into(), version.into());
    if let Some(component) = component {
        manifest.insert("component".into(), component.into());
    }
    if let Some(pipeline) = pipeline {
        manifest.insert("pipeline".into(), pipeline.table.clone().into());
    }
    toml::to_string(&manifest).expect("a table serializes")
}

fn path_value(path: &Path) -> Value {
    path.to_string_lossy().into_owned().into()
}

fn parse_fragment(settings: &str) -> Table {
    settings
        .parse()
        .unwrap_or_else(|error| panic!("test settings are not TOML: {error}\n{settings}"))
}

/// Sets the value at `path`, creating the tables on the way.
fn set_at(table: &mut Table, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("a non-empty path");
    let mut table = table;
    for key in parents {
        table = table
            .entry(key.to_string())
            .or_insert_with(|| Table::new().into())
            .as_table_mut()
            .unwrap_or_else(|| panic!("{key} is not a table"));
    }
    table.insert(last.to_string(), value);
}

/// Adds `extra` to `table`; a table in both is merged key by key.
fn merge(table: &mut Table, extra: Table) {
    for (key, value) in extra {
        match (table.get_mut(&key), value) {
            (Some(Value::Table(existing)), Value::Table(more)) => merge(existing, more),
            (_, value) => {
                table.insert(key, value);
            }
        }
    }
}
