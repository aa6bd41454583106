//! The commands that run on the async runtime: each reads what it needs,
//! calls into the library, and turns the outcome into output and an exit
//! code.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use runnel::check::CheckOptions;
use runnel::plugin_dir::check::ValidateRequest;
use tokio_util::sync::CancellationToken;

use super::exit::{self, CONFIG, FAILED, RUNTIME};
use super::logging::ErrorReport;
use super::{CheckArgs, ConfigArgs};

/// How long an exiting command waits for blocking calls still running: a
/// librdkafka call blocked on a hung broker must not hold the process once
/// the drain is over (its transaction is aborted by whichever producer
/// takes the partition next).
const BLOCKING_CALLS_GRACE: Duration = Duration::from_secs(5);

/// Runs `job` on a new async runtime of `worker_threads` threads (one per
/// CPU when `None`); `None` when the runtime could not start, which is
/// reported.
pub(super) fn block_on<T>(
    worker_threads: Option<usize>,
    errors: ErrorReport,
    job: impl Future<Output = T>,
) -> Option<T> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = worker_threads {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            errors.error(&format!("cannot start the async runtime: {error}"));
            return None;
        }
    };
    let result = runtime.block_on(job);
    runtime.shutdown_timeout(BLOCKING_CALLS_GRACE);
    Some(result)
}

/// `runnel run`.
pub fn run(args: &ConfigArgs, errors: ErrorReport) -> ExitCode {
    let config = match args.load() {
        Ok(config) => config,
        Err(error) => {
            errors.error(&error.to_string());
            return exit::code(CONFIG);
        }
    };
    let threads = config.runtime.worker_threads;
    let ran = block_on(threads, errors, async {
        runnel::app::run(config, shutdown_on_signal()).await
    });
    match ran {
        Some(Ok(drained)) => drain_outcome(drained),
        Some(Err(error)) => failed(&error.into(), errors),
        None => exit::code(RUNTIME),
    }
}

/// `runnel dev`.
pub fn dev(options: runnel::dev::DevOptions, errors: ErrorReport) -> ExitCode {
    let ran = block_on(None, errors, async {
        runnel::dev::run(options, shutdown_on_signal()).await
    });
    match ran {
        Some(Ok(drained)) => drain_outcome(drained),
        Some(Err(error)) => failed(&error, errors),
        None => exit::code(RUNTIME),
    }
}

/// Reports what stopped a host, once, and exits with its kind's code.
fn failed(error: &anyhow::Error, errors: ErrorReport) -> ExitCode {
    errors.error(&format!("{error:#}"));
    exit::code(exit::code_of(error))
}

/// The exit code of a host run: whether every pipeline drained in time.
fn drain_outcome(drained: bool) -> ExitCode {
    if drained {
        ExitCode::SUCCESS
    } else {
        tracing::error!("shutdown did not finish within the drain timeout");
        exit::code(FAILED)
    }
}

/// `runnel check`: prints `ok: ...`, or every problem found.
pub fn check(args: &CheckArgs, errors: ErrorReport) -> ExitCode {
    let config = match args.config.load() {
        Ok(config) => config,
        Err(error) => {
            errors.error(&error.to_string());
            return exit::code(FAILED);
        }
    };
    let options = CheckOptions {
        connect_timeout: args.connect.then_some(args.connect_timeout),
    };
    let Some(report) = block_on(None, errors, runnel::check::check(&config, &options)) else {
        return exit::code(RUNTIME);
    };
    if report.passed() {
        println!("ok: {}", report.summary());
        return ExitCode::SUCCESS;
    }
    for problem in &report.problems {
        errors.error(problem);
    }
    exit::code(FAILED)
}

/// `runnel plugin validate`: prints `ok: NAME VERSION`, or every error.
pub fn validate_plugin(
    file: &Path,
    manifest: Option<&Path>,
    config: Vec<(String, String)>,
    errors: ErrorReport,
) -> ExitCode {
    let request = ValidateRequest {
        file,
        manifest,
        config,
    };
    let validated = block_on(None, errors, runnel::plugin_dir::check::validate(request));
    match validated {
        Some(Ok(plugin)) => {
            println!("ok: {plugin}");
            ExitCode::SUCCESS
        }
        Some(Err(problems)) => {
            for problem in problems {
                errors.error(&problem.to_string());
            }
            exit::code(FAILED)
        }
        None => exit::code(RUNTIME),
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
