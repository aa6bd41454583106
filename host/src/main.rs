//! The `runnel` binary: parses the command line and calls into the library,
//! so tests drive exactly what the binary runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use runnel::config::Config;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "runnel",
    version,
    about = "Runs sandboxed WebAssembly handlers over message streams"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "RUNNEL_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// Log filter, in tracing's env-filter syntax (for example `info,runnel=debug`).
    #[arg(long, global = true, env = "RUNNEL_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipelines of a configuration file.
    Run {
        /// The configuration file.
        #[arg(long, short, env = "RUNNEL_CONFIG")]
        config: PathBuf,
        /// Kafka bootstrap servers; overrides `kafka.brokers`.
        #[arg(long, env = "RUNNEL_BROKERS")]
        brokers: Option<String>,
        /// Override any setting: `--set pipelines.orders.batch_size=100`.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
    },
    /// Run the main job on an embedded Kafka-protocol cluster: no broker to
    /// install. Feeds sample messages through a plugin and prints the outputs.
    Dev(runnel::dev::DevOptions),
    /// Work with plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Check a plugin the way a host checks a new version before serving
    /// it: the component implements the WIT world, the manifest is valid,
    /// and `init` accepts the manifest's configuration. Prints
    /// `ok: NAME VERSION` and exits 0, or prints `error: ...` lines and
    /// exits 1.
    Validate {
        /// The component (`.wasm`), or a manifest (`.toml`) naming one.
        file: PathBuf,
        /// The plugin's manifest, checked too and its configuration used.
        #[arg(long, short)]
        manifest: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything starts: a filter that cannot be read would otherwise
    // hide the very logs it asked for.
    let filter = match log_filter(&cli.log) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(cli.log_format, filter);
    // A host's configuration is read first: it sizes the runtime.
    let job = match cli.command {
        Command::Run {
            config,
            brokers,
            mut overrides,
        } => {
            if let Some(brokers) = brokers {
                overrides.push(format!("kafka.brokers={brokers}"));
            }
            match Config::load(&config, &overrides) {
                Ok(config) => Job::Host(Box::new(config)),
                Err(error) => return failed(&error.into()),
            }
        }
        Command::Dev(options) => Job::Dev(options),
        Command::Plugin(PluginCommand::Validate { file, manifest }) => {
            Job::Validate { file, manifest }
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Job::Host(config) = &job
        && let Some(threads) = config.runtime.worker_threads
    {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match job {
            Job::Host(config) => runnel::app::run(*config, shutdown_on_signal())
                .await
                .map(drained),
            Job::Dev(options) => runnel::dev::run(options, shutdown_on_signal())
                .await
                .map(drained),
            Job::Validate { file, manifest } => {
                Ok(validate_plugin(&file, manifest.as_deref()).await)
            }
        }
    });
    // A librdkafka call blocked on a hung broker must not hold the process
    // once the drain is over: its transaction is aborted by whichever
    // producer takes the partition next.
    runtime.shutdown_timeout(BLOCKING_CALLS_GRACE);
    result.unwrap_or_else(|error| failed(&error))
}

/// How long an exiting host waits for blocking calls still running.
const BLOCKING_CALLS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the command line asks for, its configuration read.
enum Job {
    Host(Box<Config>),
    Dev(runnel::dev::DevOptions),
    Validate {
        file: PathBuf,
        manifest: Option<PathBuf>,
    },
}

/// Reports what stopped the command, which exits with 2.
fn failed(error: &anyhow::Error) -> ExitCode {
    tracing::error!("{error:#}");
    eprintln!("error: {error:#}");
    ExitCode::from(2)
}

/// The exit code of a host run: whether every pipeline drained in time.
fn drained(drained: bool) -> ExitCode {
    if drained {
        ExitCode::SUCCESS
    } else {
        tracing::error!("shutdown did not finish within the drain timeout");
        ExitCode::FAILURE
    }
}

/// Prints the verdict: exit 0 when the plugin passed, 1 when it did not.
async fn validate_plugin(file: &Path, manifest: Option<&Path>) -> ExitCode {
    match runnel::plugin_dir::check::validate(file, manifest).await {
        Ok(plugin) => {
            println!("ok: {plugin}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Cancelled on SIGINT or SIGTERM.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}

/// The log filter of `--log` (or `RUNNEL_LOG`), or an error naming it and
/// saying what is wrong.
fn log_filter(directives: &str) -> anyhow::Result<EnvFilter> {
    // The parse error's source repeats its message: only the message is kept.
    EnvFilter::try_new(directives).map_err(|error| {
        anyhow::anyhow!("invalid log filter `{directives}` (from --log or RUNNEL_LOG): {error}")
    })
}

fn init_logging(format: LogFormat, filter: EnvFilter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_filter_that_cannot_be_read_is_an_error_naming_it_and_why() {
        assert!(log_filter("info,runnel=debug").is_ok());
        let error = log_filter("runnel=loud").expect_err("`loud` is no level");
        let message = format!("{error:#}");
        let reason = message
            .strip_prefix("invalid log filter `runnel=loud` (from --log or RUNNEL_LOG): ")
            .unwrap_or_else(|| panic!("the filter is named: {message}"));
        assert!(!reason.is_empty(), "the reason is given: {message}");
    }
}
