//! The exit codes of `runnel`, as the README lists them. Each kind of
//! failure has its own, so a script or an orchestrator can tell a mistake
//! on the command line from a bad configuration from a host that failed.

use std::process::ExitCode;

use runnel::admin::AdminError;
use runnel::app::HostError;
use runnel::config::ConfigError;

/// A check found problems (`check`, `plugin validate`), a stopping host did
/// not drain within its drain timeout, or an admin command was asked for
/// what cannot be (a topic that does not exist, or already does; an input
/// line that is no record; a request the brokers refuse).
pub const FAILED: u8 = 1;
// 2: the command line is wrong. Clap exits with it on its own.
/// The configuration cannot run: the file cannot be read or is invalid, or a
/// plugin it names does not load or refuses its configuration. What
/// `runnel check` finds.
pub const CONFIG: u8 = 3;
/// The host failed for a reason outside its configuration: the listen
/// address is taken, the async runtime or the WebAssembly engine could not
/// start. For an admin command: the brokers did not answer in time, a
/// record was not delivered, or the output could not be written.
pub const RUNTIME: u8 = 4;

/// The exit code for a command that stopped with `error`.
pub fn code_of(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<ConfigError>().is_some() {
        return CONFIG;
    }
    match error.downcast_ref::<HostError>() {
        Some(HostError::Config(_)) => CONFIG,
        _ => RUNTIME,
    }
}

/// The exit code for an admin command that stopped with `error`.
pub fn admin_code_of(error: &AdminError) -> u8 {
    if error.is_configuration() {
        CONFIG
    } else if error.is_runtime() {
        RUNTIME
    } else {
        FAILED
    }
}

pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
