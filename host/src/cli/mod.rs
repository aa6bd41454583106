//! The command line: what each command reads from it, and how it reports
//! back (stdout for what a command prints, stderr for logs and errors,
//! and the exit codes of [`exit`]).

mod about;
mod admin;
mod commands;
mod exit;
mod logging;
mod project;
mod signing;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use runnel::config::{Config, ConfigError};

use logging::{ErrorReport, LogFormat};

#[derive(Parser)]
#[command(
    name = "runnel",
    version,
    about = "Runs sandboxed WebAssembly handlers over message streams",
    after_help = "Exit codes: 0 success; 1 a check found problems, a stopping host did not \
                  drain in time, or an admin command was asked for what cannot be; 2 usage \
                  error; 3 configuration error; 4 runtime failure (for an admin command: the \
                  brokers did not answer, a record was not delivered)."
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "RUNNEL_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// Log filter, in tracing's env-filter syntax (for example `info,runnel=debug`).
    #[arg(
        long,
        global = true,
        env = "RUNNEL_LOG",
        default_value = "info",
        value_parser = logging::parse_log_filter
    )]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipelines of a configuration file.
    Run(ConfigArgs),
    /// Check a configuration without running it: everything `run` checks
    /// before it starts (the file, every plugin loaded and started with its
    /// configuration, the plugin directory's too). Prints `ok: ...` and exits
    /// 0, or prints every problem found and exits 1.
    Check(CheckArgs),
    /// Run the main job on an embedded Kafka-protocol cluster: no broker to
    /// install. Feeds sample messages through a plugin and prints the outputs.
    Dev(runnel::dev::DevOptions),
    /// Work with plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List, create and describe Kafka topics.
    #[command(subcommand)]
    Topics(admin::TopicsCommand),
    /// Produce records to a topic, a line each, from stdin or a file.
    Produce(admin::ProduceArgs),
    /// Write a topic's records to stdout, a line each, without joining a
    /// consumer group or committing offsets.
    Consume(admin::ConsumeArgs),
    /// Print the version, and what the host was built with.
    Version,
    /// Print a shell completion script: `runnel completions bash >
    /// /etc/bash_completion.d/runnel`.
    Completions { shell: clap_complete::Shell },
}

/// The configuration a host runs.
#[derive(Args)]
struct ConfigArgs {
    /// The configuration file.
    #[arg(long, short, env = "RUNNEL_CONFIG")]
    config: PathBuf,
    /// This host's stable identity in its consumer groups; overrides
    /// `kafka.instance_id`.
    #[arg(long, env = "RUNNEL_INSTANCE_ID")]
    instance_id: Option<String>,
    #[command(flatten)]
    overrides: ConfigOverrides,
}

impl ConfigArgs {
    fn load(&self) -> Result<Config, ConfigError> {
        let mut host = Vec::new();
        if let Some(instance) = &self.instance_id {
            // Quoted, so that an identity of digits stays a string.
            host.push(format!("kafka.instance_id={instance:?}"));
        }
        self.overrides.load(Some(&self.config), host)
    }
}

/// What the command line sets over a configuration file.
#[derive(Args)]
struct ConfigOverrides {
    /// Kafka bootstrap servers; overrides `kafka.brokers`.
    #[arg(long, env = "RUNNEL_BROKERS")]
    brokers: Option<String>,
    /// Override any setting: `--set pipelines.orders.batch_size=100`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<String>,
}

impl ConfigOverrides {
    /// Reads `file` with the overrides applied, `more` last; without a
    /// file, the defaults with the overrides applied.
    fn load(&self, file: Option<&Path>, more: Vec<String>) -> Result<Config, ConfigError> {
        let mut overrides = self.overrides.clone();
        if let Some(brokers) = &self.brokers {
            overrides.push(format!("kafka.brokers={brokers}"));
        }
        overrides.extend(more);
        match file {
            Some(file) => Config::load(file, &overrides),
            None => Config::parse("", &overrides),
        }
    }
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Also reach the Kafka brokers and check that the topics the pipelines
    /// read, and their output and dead-letter topics, exist.
    #[arg(long, visible_alias = "brokers-reachable")]
    connect: bool,
    /// How long `--connect` waits for the brokers.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
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
        /// A setting handed to the plugin's `init`, over the manifest's
        /// `[pipeline.config]`; repeat it for more.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_setting)]
        config: Vec<(String, String)>,
    },
    /// Create a plugin folder to start from: a handler that upper-cases
    /// values, the build file its language uses, a test and a README.
    New {
        /// The plugin's name (lowercase letters, digits, `-`, `_`).
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum)]
        lang: project::Language,
        /// The folder to create; `./NAME` when not given.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The `sdk` folder of a Runnel checkout, when this binary was
        /// built elsewhere.
        #[arg(long, env = "RUNNEL_SDK_DIR")]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin folder into a component with its language's
    /// toolchain (installed when missing): `DIR/build/NAME.wasm` unless
    /// `--out` says otherwise.
    Build {
        /// The plugin folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The language, when the folder's build file does not tell.
        #[arg(long, value_enum)]
        lang: Option<project::Language>,
        /// Where to write the component.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// The `sdk` folder of a Runnel checkout, when this binary was
        /// built elsewhere.
        #[arg(long, env = "RUNNEL_SDK_DIR")]
        sdk: Option<PathBuf>,
    },
    #[command(flatten)]
    Store(store::StoreCommand),
    #[command(flatten)]
    Signing(signing::SigningCommand),
}

fn parse_setting(setting: &str) -> Result<(String, String), String> {
    match setting.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("`{setting}` is not of the form KEY=VALUE")),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, &cli.log);
    let errors = ErrorReport::new(cli.log_format);
    match cli.command {
        Command::Run(args) => commands::run(&args, errors),
        Command::Check(args) => commands::check(&args, errors),
        Command::Dev(options) => commands::dev(options, errors),
        Command::Plugin(PluginCommand::Validate {
            file,
            manifest,
            config,
        }) => commands::validate_plugin(&file, manifest.as_deref(), config, errors),
        Command::Plugin(PluginCommand::New {
            name,
            lang,
            dir,
            sdk,
        }) => project::new(&name, lang, dir.as_deref(), sdk.as_deref(), errors),
        Command::Plugin(PluginCommand::Build {
            dir,
            lang,
            out,
            sdk,
        }) => project::build(&dir, lang, out.as_deref(), sdk.as_deref(), errors),
        Command::Plugin(PluginCommand::Store(command)) => store::run(&command, errors),
        Command::Plugin(PluginCommand::Signing(command)) => signing::run(&command, errors),
        Command::Topics(command) => admin::topics(command, errors),
        Command::Produce(args) => admin::produce(&args, errors),
        Command::Consume(args) => admin::consume(&args, errors),
        Command::Version => {
            print!("{}", about::version_text());
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            about::print_completions(shell);
            ExitCode::SUCCESS
        }
    }
}
