//! The shared secrets the HTTP server checks: the admin token and Dapr's
//! app API token. Each comes from an environment variable or from a file
//! the configuration names; the variable wins when it is set and not empty.
//! No setting holds a token itself: config files are copied, committed and
//! printed, and a secret belongs in neither.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Config, ConfigError};

/// The environment variable of the admin token; it wins over
/// `http.admin_token_file`.
pub const ADMIN_TOKEN_ENV: &str = "RUNNEL_ADMIN_TOKEN";

/// The environment variable of Dapr's app API token: daprd reads it to
/// know what to send in `dapr-api-token`, and an app that shares daprd's
/// environment finds the same value there. It wins over
/// `dapr.app_api_token_file`.
pub const APP_API_TOKEN_ENV: &str = "APP_API_TOKEN";

/// A secret that requests must present. Only its SHA-256 digest is kept:
/// a presented value is hashed and the two digests compared in constant
/// time, so neither the comparison nor a length check tells a caller how
/// close it came. `Debug` shows where the token came from, never the token.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
    origin: String,
}

impl Token {
    /// `secret`, read from `origin` (a variable's name, a file's path).
    pub fn new(secret: &str, origin: impl Into<String>) -> Self {
        Self {
            digest: Sha256::digest(secret.as_bytes()).into(),
            origin: origin.into(),
        }
    }

    /// Whether `presented` is this token.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        self.digest.ct_eq(&digest).into()
    }

    /// Where the token was read from: the environment variable's name or
    /// the file's path.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(from {})", self.origin)
    }
}

/// The tokens of a configuration, read from the environment and files.
#[derive(Debug, Clone, Default)]
pub struct HttpTokens {
    /// Required on the admin endpoints as `Authorization: Bearer <token>`.
    pub admin: Option<Token>,
    /// Required on the Dapr binding endpoints as `dapr-api-token`.
    pub dapr_app: Option<Token>,
}

impl Config {
    /// Reads the HTTP server's tokens from the process's environment and
    /// the files the configuration names. A named file that cannot be read
    /// or holds no usable token is an error naming the file: a host must
    /// not start open when it was meant to be closed.
    pub fn http_tokens(&self) -> Result<HttpTokens, ConfigError> {
        self.http_tokens_with(|name| std::env::var(name).ok())
    }

    /// [`Config::http_tokens`] with `env` for the environment.
    pub fn http_tokens_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<HttpTokens, ConfigError> {
        Ok(HttpTokens {
            admin: read_token(
                &env,
                ADMIN_TOKEN_ENV,
                "http.admin_token_file",
                self.http.admin_token_file.as_deref(),
            )?,
            dapr_app: read_token(
                &env,
                APP_API_TOKEN_ENV,
                "dapr.app_api_token_file",
                self.dapr.app_api_token_file.as_deref(),
            )?,
        })
    }
}

/// The token of `variable` when it is set and not empty, else that of
/// `file` (setting `setting`) when there is one.
fn read_token(
    env: &impl Fn(&str) -> Option<String>,
    variable: &str,
    setting: &'static str,
    file: Option<&Path>,
) -> Result<Option<Token>, ConfigError> {
    if let Some(value) = env(variable).filter(|value| !value.trim().is_empty()) {
        let secret = value.trim();
        return match unusable(secret) {
            None => Ok(Some(Token::new(secret, variable))),
            Some(problem) => Err(ConfigError::Invalid(format!(
                "the environment variable {variable} {problem}"
            ))),
        };
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let file_error = |reason: String| ConfigError::TokenFile {
        setting,
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| file_error(error.to_string()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(file_error("it is empty; write the token into it".into()));
    }
    if let Some(problem) = unusable(secret) {
        return Err(file_error(problem.into()));
    }
    Ok(Some(Token::new(secret, path.display().to_string())))
}

/// Why `secret` cannot be a token a client sends in a header, if it
/// cannot: headers carry it, so it is printable ASCII without spaces (any
/// base64 or hex string is).
fn unusable(secret: &str) -> Option<&'static str> {
    (!secret.bytes().all(|byte| byte.is_ascii_graphic()))
        .then_some("holds a space, a control character or a non-ASCII one; a token is printable ASCII without spaces")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::MINIMAL;
    use super::*;

    fn config_in(dir: &Path, tables: &str) -> Config {
        let path = dir.join("runnel.toml");
        std::fs::write(&path, format!("{MINIMAL}\n{tables}")).unwrap();
        Config::load(&path, &[]).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn no_token_is_configured_by_default() {
        let tokens = Config::parse(MINIMAL, &[])
            .unwrap()
            .http_tokens_with(no_env)
            .unwrap();
        assert!(tokens.admin.is_none());
        assert!(tokens.dapr_app.is_none());
    }

    #[test]
    fn token_files_are_read_relative_to_the_config_file_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), "  s3cret-admin\n").unwrap();
        std::fs::write(dir.path().join("app-token"), "dapr-Token+/=\n").unwrap();
        let config = config_in(
            dir.path(),
            "[http]\nadmin_token_file = \"admin-token\"\n[dapr]\napp_api_token_file = \"app-token\"\n",
        );
        let tokens = config.http_tokens_with(no_env).unwrap();
        let admin = tokens.admin.unwrap();
        assert!(admin.matches(b"s3cret-admin"));
        assert!(!admin.matches(b"s3cret-admin\n"));
        assert!(!admin.matches(b"s3cret-admi"));
        assert!(!admin.matches(b""));
        assert_eq!(
            admin.origin(),
            dir.path().join("admin-token").display().to_string()
        );
        let dapr = tokens.dapr_app.unwrap();
        assert!(dapr.matches(b"dapr-Token+/="));
        assert!(!dapr.matches(b"s3cret-admin"));
    }

    #[test]
    fn a_missing_token_file_is_an_error_naming_the_file_and_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), "[http]\nadmin_token_file = \"nowhere/token\"\n");
        let error = config.http_tokens_with(no_env).unwrap_err().to_string();
        let path = dir.path().join("nowhere/token");
        assert!(
            error.starts_with(&format!(
                "cannot read the token file {} (http.admin_token_file): ",
                path.display()
            )),
            "{error}"
        );

        let config = config_in(
            dir.path(),
            "[dapr]\napp_api_token_file = \"/no/such/file\"\n",
        );
        let error = config.http_tokens_with(no_env).unwrap_err().to_string();
        assert!(
            error.contains("/no/such/file (dapr.app_api_token_file)"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_or_unsendable_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), "[http]\nadmin_token_file = \"token\"\n");
        std::fs::write(dir.path().join("token"), " \n").unwrap();
        let error = config.http_tokens_with(no_env).unwrap_err().to_string();
        assert!(
            error.ends_with("it is empty; write the token into it"),
            "{error}"
        );
        std::fs::write(dir.path().join("token"), "two words").unwrap();
        let error = config.http_tokens_with(no_env).unwrap_err().to_string();
        assert!(error.contains("printable ASCII without spaces"), "{error}");
        let env = |_: &str| Some("tab\tinside".to_owned());
        let error = config.http_tokens_with(env).unwrap_err().to_string();
        assert!(
            error.starts_with("the environment variable RUNNEL_ADMIN_TOKEN holds"),
            "{error}"
        );
    }

    #[test]
    fn the_environment_wins_over_the_file_unless_it_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), "from-file").unwrap();
        let config = config_in(
            dir.path(),
            "[http]\nadmin_token_file = \"admin-token\"\n[dapr]\napp_api_token_file = \"missing\"\n",
        );
        let env: HashMap<&str, &str> = [
            (ADMIN_TOKEN_ENV, "from-env"),
            (APP_API_TOKEN_ENV, " dapr-env "),
        ]
        .into();
        let tokens = config
            .http_tokens_with(|name| env.get(name).map(|value| value.to_string()))
            .unwrap();
        let admin = tokens.admin.unwrap();
        assert!(admin.matches(b"from-env") && !admin.matches(b"from-file"));
        assert_eq!(admin.origin(), "RUNNEL_ADMIN_TOKEN");
        assert!(
            tokens.dapr_app.unwrap().matches(b"dapr-env"),
            "the variable wins, so the missing file is never read"
        );

        let empty = |_: &str| Some(String::new());
        let error = config.http_tokens_with(empty).unwrap_err().to_string();
        assert!(
            error.contains("(dapr.app_api_token_file)"),
            "an empty variable counts as unset: {error}"
        );
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = Token::new("hunter2-secret", "RUNNEL_ADMIN_TOKEN");
        let shown = format!("{token:?}");
        assert_eq!(shown, "Token(from RUNNEL_ADMIN_TOKEN)");
    }
}
