//! Logs, and the errors a command ends with, on stderr in one format: text
//! for a person, JSON (one object a line) for a log collector.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Reads `--log` (or `RUNNEL_LOG`) for clap, so that a filter that cannot
/// be read is a usage error like any other bad argument.
pub fn parse_log_filter(directives: &str) -> Result<String, String> {
    // The parse error's source repeats its message: only the message is kept.
    EnvFilter::try_new(directives)
        .map(|_| directives.to_owned())
        .map_err(|error| {
            format!(
                "not a log filter (from --log or RUNNEL_LOG; e.g. `info,runnel=debug`): {error}"
            )
        })
}

/// Sends the logs of `directives` (already read by [`parse_log_filter`])
/// to stderr in `format`.
pub fn init(format: LogFormat, directives: &str) {
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colour_on_stderr()).init(),
        LogFormat::Json => builder.with_ansi(false).json().init(),
    }
}

/// Colour is for a person at a terminal, and never wanted when `NO_COLOR`
/// is set to anything but the empty string (no-color.org).
fn colour_on_stderr() -> bool {
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    std::io::stderr().is_terminal() && !no_colour
}

/// Reports the errors a command ends with, or the problems a check found:
/// each once, on stderr, in the log format chosen.
#[derive(Clone, Copy, Debug)]
pub struct ErrorReport {
    format: LogFormat,
}

impl ErrorReport {
    pub fn new(format: LogFormat) -> Self {
        Self { format }
    }

    /// An `error: ...` line in text, kept whole when the message spans lines
    /// (a TOML error shows the line it is about); one log event in JSON.
    pub fn error(&self, message: &str) {
        match self.format {
            LogFormat::Text => eprintln!("error: {message}"),
            LogFormat::Json => tracing::error!(target: "runnel", "{message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_filter_that_cannot_be_read_is_an_error_naming_where_it_came_from() {
        assert_eq!(
            parse_log_filter("info,runnel=debug").as_deref(),
            Ok("info,runnel=debug")
        );
        let message = parse_log_filter("runnel=loud").expect_err("`loud` is no level");
        let reason = message
            .strip_prefix("not a log filter (from --log or RUNNEL_LOG; e.g. `info,runnel=debug`): ")
            .unwrap_or_else(|| panic!("where it came from is said: {message}"));
        assert!(!reason.is_empty(), "the reason is given: {message}");
    }
}
