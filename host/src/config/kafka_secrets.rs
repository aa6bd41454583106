//! The Kafka clients' secrets: the SASL password and the TLS key's
//! password. Each comes from an environment variable or from a file the
//! `[kafka]` table names; the variable wins when it is set and not empty.
//! They are read once, when the configuration is loaded, and handed to
//! librdkafka as `sasl.password` and `ssl.key.password` by every client the
//! host makes. `Debug` shows where a secret came from, never the secret.

use std::fmt;
use std::path::Path;

use super::{ConfigError, KafkaConfig};

/// The environment variable of the SASL password (`sasl.password`); it wins
/// over `kafka.sasl_password_file`.
pub const SASL_PASSWORD_ENV: &str = "RUNNEL_KAFKA_SASL_PASSWORD";

/// The environment variable of the client key's password
/// (`ssl.key.password`); it wins over `kafka.ssl_key_password_file`.
pub const SSL_KEY_PASSWORD_ENV: &str = "RUNNEL_KAFKA_SSL_KEY_PASSWORD";

/// The secrets every Kafka client of the host is given.
#[derive(Clone, Default)]
pub struct KafkaSecrets {
    sasl_password: Option<Secret>,
    ssl_key_password: Option<Secret>,
}

#[derive(Clone)]
struct Secret {
    value: String,
    /// A variable's name or a file's path.
    origin: String,
}

impl KafkaSecrets {
    /// Reads the secrets `kafka` names from `env` (the environment) and its
    /// files. A named file that cannot be read or is empty is an error
    /// naming the file and the setting.
    pub fn read(
        kafka: &KafkaConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            sasl_password: read_secret(
                &env,
                SASL_PASSWORD_ENV,
                "kafka.sasl_password_file",
                kafka.sasl_password_file.as_deref(),
            )?,
            ssl_key_password: read_secret(
                &env,
                SSL_KEY_PASSWORD_ENV,
                "kafka.ssl_key_password_file",
                kafka.ssl_key_password_file.as_deref(),
            )?,
        })
    }

    /// The librdkafka options the secrets set.
    pub fn options(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("sasl.password", &self.sasl_password),
            ("ssl.key.password", &self.ssl_key_password),
        ]
        .into_iter()
        .filter_map(|(key, secret)| secret.as_ref().map(|secret| (key, secret.value.as_str())))
    }
}

impl fmt::Debug for KafkaSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = |secret: &Option<Secret>| match secret {
            Some(secret) => format!("from {}", secret.origin),
            None => "none".to_owned(),
        };
        f.debug_struct("KafkaSecrets")
            .field(
                "sasl_password",
                &format_args!("{}", origin(&self.sasl_password)),
            )
            .field(
                "ssl_key_password",
                &format_args!("{}", origin(&self.ssl_key_password)),
            )
            .finish()
    }
}

/// The secret of `variable` when it is set and not empty, else that of
/// `file` (setting `setting`) when there is one, its line break removed.
fn read_secret(
    env: &impl Fn(&str) -> Option<String>,
    variable: &str,
    setting: &'static str,
    file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(value) = env(variable).filter(|value| !value.is_empty()) {
        return Ok(Some(Secret {
            value,
            origin: variable.to_owned(),
        }));
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let file_error = |reason: String| ConfigError::SecretFile {
        setting,
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| file_error(error.to_string()))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(file_error("it is empty; write the password into it".into()));
    }
    Ok(Some(Secret {
        value: value.to_owned(),
        origin: path.display().to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::{Config, MINIMAL};
    use super::*;

    fn load_in(dir: &Path, tables: &str) -> Result<Config, ConfigError> {
        let path = dir.join("runnel.toml");
        std::fs::write(&path, format!("{MINIMAL}\n{tables}")).unwrap();
        Config::load_with_env(&path, &[], |_| None)
    }

    fn options(secrets: &KafkaSecrets) -> HashMap<&'static str, String> {
        secrets
            .options()
            .map(|(key, value)| (key, value.to_owned()))
            .collect()
    }

    #[test]
    fn no_secret_is_set_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let config = load_in(dir.path(), "").unwrap();
        assert!(options(&config.kafka.secrets).is_empty());
    }

    #[test]
    fn secret_files_are_read_relative_to_the_config_file_keeping_inner_spaces() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sasl"), " pass word\n").unwrap();
        std::fs::write(dir.path().join("key"), "k3y").unwrap();
        let config = load_in(
            dir.path(),
            "[kafka]\nsasl_password_file = \"sasl\"\nssl_key_password_file = \"key\"\n",
        )
        .unwrap();
        let set = options(&config.kafka.secrets);
        assert_eq!(set["sasl.password"], " pass word");
        assert_eq!(set["ssl.key.password"], "k3y");
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut kafka = KafkaConfig {
            sasl_password_file: Some(dir.path().join("missing")),
            ..KafkaConfig::default()
        };
        let env = |name: &str| (name == SASL_PASSWORD_ENV).then(|| "from-env".to_owned());
        let secrets = KafkaSecrets::read(&kafka, env).unwrap();
        assert_eq!(options(&secrets)["sasl.password"], "from-env");

        let empty = |_: &str| Some(String::new());
        let error = KafkaSecrets::read(&kafka, empty).unwrap_err().to_string();
        assert!(
            error.contains("missing (kafka.sasl_password_file)"),
            "an empty variable counts as unset: {error}"
        );
        kafka.sasl_password_file = None;
        assert!(options(&KafkaSecrets::read(&kafka, empty).unwrap()).is_empty());
    }

    #[test]
    fn a_missing_or_empty_secret_file_stops_the_load_naming_file_and_setting() {
        let dir = tempfile::tempdir().unwrap();
        let error = load_in(dir.path(), "[kafka]\nsasl_password_file = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        let path = dir.path().join("nowhere");
        assert!(
            error.starts_with(&format!(
                "cannot read the secret file {} (kafka.sasl_password_file): ",
                path.display()
            )),
            "{error}"
        );
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let error = load_in(dir.path(), "[kafka]\nssl_key_password_file = \"empty\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with("it is empty; write the password into it"),
            "{error}"
        );
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sasl"), "hunter2-secret").unwrap();
        let config = load_in(dir.path(), "[kafka]\nsasl_password_file = \"sasl\"\n").unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let secrets = format!("{:?}", config.kafka.secrets);
        assert_eq!(
            secrets,
            format!(
                "KafkaSecrets {{ sasl_password: from {}, ssl_key_password: none }}",
                dir.path().join("sasl").display()
            )
        );
    }
}
