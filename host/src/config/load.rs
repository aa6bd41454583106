//! Reading the file: TOML, then the command line's `--set path=value`
//! overrides, then the checks that need the whole file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::owned_options::{
    HOST_OWNED_CONSUMER_OPTIONS, HOST_OWNED_PRODUCER_OPTIONS, refuse_owned,
};
use super::plugin_source::PluginSource;
use super::{Config, ConfigError, KafkaSecrets};

impl Config {
    /// Reads a config file and applies `path.to.field=value` overrides;
    /// the Kafka clients' secrets come from the process's environment and
    /// the files the file names.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        Self::load_with_env(path, overrides, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with `env` for the environment.
    pub fn load_with_env(
        path: &Path,
        overrides: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
            path: path.to_owned(),
            reason,
        })?;
        let mut config = Self::parse(&text, overrides).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        // Plugin paths are relative to the file that names them.
        let base = path.parent().unwrap_or(Path::new("."));
        for pipeline in config.pipelines.values_mut() {
            let is_file = matches!(
                PluginSource::parse(&pipeline.plugin),
                Some(PluginSource::File(_))
            );
            if is_file && pipeline.plugin.is_relative() {
                pipeline.plugin = base.join(&pipeline.plugin);
            }
        }
        if let Some(dir) = config.plugins.as_mut().and_then(|p| p.dir.as_mut())
            && dir.is_relative()
        {
            *dir = base.join(&*dir);
        }
        let files = [
            config.http.admin_token_file.as_mut(),
            config.http.tls_cert_file.as_mut(),
            config.http.tls_key_file.as_mut(),
            config.dapr.app_api_token_file.as_mut(),
            config.kafka.sasl_password_file.as_mut(),
            config.kafka.ssl_key_password_file.as_mut(),
        ];
        let files = files
            .into_iter()
            .flatten()
            .chain(config.runtime.trusted_plugin_keys.iter_mut());
        for file in files {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        if let Some(cache) = &mut config.runtime.compile_cache
            && cache.is_relative()
        {
            // wasmtime wants an absolute directory.
            *cache = std::path::absolute(base.join(&*cache)).unwrap_or_else(|_| base.join(&*cache));
        }
        config.kafka.secrets = KafkaSecrets::read(&config.kafka, env)?;
        Ok(config)
    }

    /// Parses the text of a config file and applies `path.to.field=value`
    /// overrides.
    pub fn parse(text: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message,
        };
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| parse_error(e.to_string()))?;
        for spec in overrides {
            apply_override(&mut table, spec)?;
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| parse_error(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.kafka.brokers.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "kafka.brokers must name at least one broker".into(),
            ));
        }
        if let Some(instance) = &self.kafka.instance_id {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
            if instance.is_empty() || !instance.chars().all(allowed) {
                return Err(ConfigError::Invalid(format!(
                    "kafka.instance_id {instance:?} must be letters, digits, '-', '_' or '.'"
                )));
            }
        }
        if let Some(plugins) = &self.plugins {
            check_plugin_sources(plugins.dir.is_some(), plugins.store_topic.as_deref())?;
        }
        if self.http.tls_cert_file.is_some() != self.http.tls_key_file.is_some() {
            return Err(ConfigError::Invalid(
                "http.tls_cert_file and http.tls_key_file go together: set both to serve HTTPS, \
                 or neither"
                    .into(),
            ));
        }
        if self.runtime.worker_threads == Some(0) {
            return Err(ConfigError::Invalid(
                "runtime.worker_threads must be at least 1".into(),
            ));
        }
        // Options owned in exactly-once pipelines only are checked as each
        // pipeline resolves.
        for owned in [HOST_OWNED_PRODUCER_OPTIONS, HOST_OWNED_CONSUMER_OPTIONS] {
            refuse_owned("kafka.client", &self.kafka.client, owned, false)?;
        }
        refuse_owned(
            "kafka.producer",
            &self.kafka.producer,
            HOST_OWNED_PRODUCER_OPTIONS,
            false,
        )?;
        refuse_owned(
            "kafka.consumer",
            &self.kafka.consumer,
            HOST_OWNED_CONSUMER_OPTIONS,
            false,
        )?;
        let mut bindings = HashSet::new();
        for name in self.pipelines.keys() {
            let pipeline = self.resolve(name)?;
            for binding in pipeline.bindings {
                if !bindings.insert(binding.clone()) {
                    return Err(ConfigError::Invalid(format!(
                        "Dapr binding `{binding}` feeds more than one pipeline"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `[plugins]` has a directory, a store, or both; a store's topic is a
/// name Kafka accepts.
fn check_plugin_sources(dir: bool, store_topic: Option<&str>) -> Result<(), ConfigError> {
    let Some(topic) = store_topic else {
        if dir {
            return Ok(());
        }
        return Err(ConfigError::Invalid(
            "[plugins] needs `dir` (a plugin directory), `store_topic` (the cluster's plugin \
             store) or both"
                .into(),
        ));
    };
    let legal = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if topic.is_empty()
        || topic.len() > 249
        || !topic.chars().all(legal)
        || topic == "."
        || topic == ".."
    {
        return Err(ConfigError::Invalid(format!(
            "plugins.store_topic {topic:?} is not a Kafka topic name: 1 to 249 letters, digits, \
             '.', '_' or '-'"
        )));
    }
    Ok(())
}

/// Sets `a.b.c = value` in the parsed file. The value is read as TOML when
/// it parses (numbers, booleans, quoted strings), and as a bare string
/// otherwise, so `kafka.brokers=host:9092` needs no quotes.
fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::BadOverride(spec.to_owned());
    let (path, raw) = spec.split_once('=').ok_or_else(bad)?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(bad());
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let (last, parents) = keys.split_last().ok_or_else(bad)?;
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(bad)?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::MINIMAL;
    use super::*;

    #[test]
    fn overrides_set_nested_fields_with_or_without_quotes() {
        let config = Config::parse(
            MINIMAL,
            &[
                "kafka.brokers=10.0.0.1:9092".into(),
                "pipelines.upper.batch_size=50".into(),
                "pipelines.upper.batch_timeout=\"2s\"".into(),
            ],
        )
        .unwrap();
        assert_eq!(config.kafka.brokers, "10.0.0.1:9092");
        let pipeline = config.resolve("upper").unwrap();
        assert_eq!(pipeline.batch_size, 50);
        assert_eq!(pipeline.batch_timeout, Duration::from_secs(2));
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let error = Config::parse(&format!("{MINIMAL}\nbatch_sise = 3\n"), &[]).unwrap_err();
        assert!(error.to_string().contains("batch_sise"), "{error}");
    }

    #[test]
    fn plugins_come_from_a_directory_a_store_or_both() {
        let parse = |table: &str| Config::parse(&format!("{MINIMAL}\n[plugins]\n{table}"), &[]);
        let store = parse("store_topic = \"runnel-plugins\"")
            .unwrap()
            .plugins
            .unwrap();
        assert_eq!(store.store_topic.as_deref(), Some("runnel-plugins"));
        assert_eq!(store.dir, None);
        let both = parse("dir = \"p\"\nstore_topic = \"t\"").unwrap();
        assert!(both.plugins.unwrap().dir.is_some());
        let error = parse("debounce = \"1s\"").unwrap_err().to_string();
        assert!(error.contains("needs `dir`"), "{error}");
        let error = parse("store_topic = \"a topic\"").unwrap_err().to_string();
        assert!(error.contains("not a Kafka topic name"), "{error}");
    }

    #[test]
    fn tls_needs_a_certificate_and_a_key() {
        let config = Config::parse(MINIMAL, &[]).unwrap();
        assert_eq!(config.http.tls_cert_file, None);
        let both = Config::parse(
            MINIMAL,
            &[
                "http.tls_cert_file=cert.pem".into(),
                "http.tls_key_file=key.pem".into(),
            ],
        )
        .unwrap();
        assert!(both.http.tls_key_file.is_some());
        let error = Config::parse(MINIMAL, &["http.tls_cert_file=cert.pem".into()]).unwrap_err();
        assert!(error.to_string().contains("go together"), "{error}");
    }

    #[test]
    fn worker_threads_default_to_the_cpus_and_cannot_be_zero() {
        let config = Config::parse(MINIMAL, &[]).unwrap();
        assert_eq!(config.runtime.worker_threads, None);
        let config = Config::parse(MINIMAL, &["runtime.worker_threads=1".into()]).unwrap();
        assert_eq!(config.runtime.worker_threads, Some(1));
        let error = Config::parse(MINIMAL, &["runtime.worker_threads=0".into()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "runtime.worker_threads must be at least 1"
        );
    }
}
