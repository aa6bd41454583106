//! `runnel version` and `runnel completions`.

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// What a bug report needs: the version, and what the host was built with
/// and runs plugins against.
pub fn version_text() -> String {
    let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
    format!(
        "runnel {version}\n\
         plugin contract: runnel:plugin@{contract} (WIT world `plugin`)\n\
         wasmtime {wasmtime}\n\
         librdkafka {librdkafka}\n\
         built with {rustc} for {arch}-{os}\n",
        version = env!("CARGO_PKG_VERSION"),
        contract = runnel::runtime::CONTRACT_VERSION,
        wasmtime = env!("RUNNEL_WASMTIME_VERSION"),
        rustc = env!("RUNNEL_RUSTC_VERSION"),
        arch = std::env::consts::ARCH,
        os = std::env::consts::OS,
    )
}

/// Writes the completion script for `shell` to stdout.
pub fn print_completions(shell: Shell) {
    let mut command = Cli::command();
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
}
