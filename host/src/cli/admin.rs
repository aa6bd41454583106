//! The admin commands, for the everyday checks of a cluster: `runnel
//! topics list|create|describe`, `runnel produce` and `runnel consume`.
//! Each connects with the `[kafka]` table of a host's configuration file
//! when one is given, and `--brokers` as `run` reads them.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Subcommand, ValueEnum};
use runnel::admin::consume::{ConsumeRequest, StartOffset};
use runnel::admin::produce::ProduceRequest;
use runnel::admin::topics::{self, Created, NewTopicRequest};
use runnel::admin::{AdminError, LineFormat};
use runnel::config::Config;

use super::exit::{self, CONFIG};
use super::logging::ErrorReport;
use super::{Cli, ConfigOverrides, parse_setting};

/// How to reach the brokers.
#[derive(Args)]
pub struct ConnectArgs {
    /// A host's configuration file, whose `[kafka]` table (brokers, raw
    /// client options) the command connects with. Optional.
    #[arg(long, short, env = "RUNNEL_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: ConfigOverrides,
}

/// How long the brokers have to answer.
#[derive(Args)]
pub struct BrokerTimeout {
    /// How long to wait for the brokers to answer.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// List the cluster's topics: name, partitions, replication factor.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        timeout: BrokerTimeout,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Create a topic. Partitions and replication factor default to the
    /// broker's.
    Create(CreateArgs),
    /// Describe a topic: each partition's leader, replicas, in-sync
    /// replicas and low and high watermarks, and the topic's settings that
    /// are not Kafka's defaults.
    Describe {
        /// The topic.
        name: String,
        /// Show every setting, those at Kafka's defaults too.
        #[arg(long)]
        all_configs: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        timeout: BrokerTimeout,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// The topic.
    name: String,
    /// Its partitions; the broker's `num.partitions` when not given.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Replicas of each partition; the broker's
    /// `default.replication.factor` when not given.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    replication_factor: Option<i32>,
    /// A setting of the topic (`cleanup.policy=compact`); repeat it for more.
    #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = parse_setting)]
    configs: Vec<(String, String)>,
    /// A topic of that name already there is no error (and is left as it is).
    #[arg(long)]
    if_not_exists: bool,
    #[command(flatten)]
    timeout: BrokerTimeout,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// How records are written as lines, and read from them.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// A record per line, its bytes as they are.
    Text,
    /// A JSON object per line: `key`, `value`, `headers`, `partition`,
    /// `timestamp`; bytes that are not UTF-8 as `{"base64": ".."}`.
    Json,
}

#[derive(Args)]
pub struct ProduceArgs {
    /// The topic.
    topic: String,
    /// Read the records from this file instead of stdin.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// A line is KEY, SEP, VALUE: the key ends at SEP's first occurrence
    /// (text format; kcat's `-K`).
    #[arg(long, short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    /// A header every record gets; repeat it for more.
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE", value_parser = parse_setting)]
    headers: Vec<(String, String)>,
    /// How a line holds its record.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// How long to wait for the brokers to answer, and for each record to
    /// be acknowledged.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Args)]
pub struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Where to start in each partition: `beginning`, `end`, an offset N, or
    /// -N for the last N records.
    #[arg(long, short, default_value = "beginning", allow_hyphen_values = true)]
    offset: StartOffset,
    /// Read only this partition; repeat it for more.
    #[arg(long = "partition", short, value_parser = clap::value_parser!(i32).range(0..))]
    partitions: Vec<i32>,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Stop once nothing has arrived for this long; also how long the
    /// brokers have to answer (10s when not given). Without it, reading
    /// goes on until interrupted.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Stop once every partition has been read to its end.
    #[arg(long, short = 'e')]
    exit_at_end: bool,
    /// How a record is written as a line.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Write KEY, SEP, VALUE on each line (text format).
    #[arg(long, short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// `runnel topics ...`.
pub fn topics(command: TopicsCommand, errors: ErrorReport) -> ExitCode {
    match command {
        TopicsCommand::List {
            json,
            timeout,
            connect,
        } => with_config(&connect, errors, |config| {
            let topics = topics::list(&config.kafka, timeout.timeout)?;
            if json {
                println!("{}", to_json(&topics)?);
            } else {
                print!("{}", topics::list_text(&topics));
            }
            Ok(())
        }),
        TopicsCommand::Create(args) => with_config(&args.connect, errors, |config| {
            let request = NewTopicRequest {
                name: args.name.clone(),
                partitions: args.partitions,
                replication_factor: args.replication_factor,
                configs: args.configs.clone(),
                if_not_exists: args.if_not_exists,
            };
            match topics::create(&config.kafka, &request, args.timeout.timeout)? {
                Created::Created => println!("created topic {}", args.name),
                Created::AlreadyThere => println!("topic {} exists already", args.name),
            }
            Ok(())
        }),
        TopicsCommand::Describe {
            name,
            all_configs,
            json,
            timeout,
            connect,
        } => with_config(&connect, errors, |config| {
            let description = topics::describe(&config.kafka, &name, all_configs, timeout.timeout)?;
            if json {
                println!("{}", to_json(&description)?);
            } else {
                print!("{}", description.to_text());
            }
            Ok(())
        }),
    }
}

/// `runnel produce`.
pub fn produce(args: &ProduceArgs, errors: ErrorReport) -> ExitCode {
    let format = line_format(args.format, args.key_separator.as_deref());
    let request = ProduceRequest {
        topic: args.topic.clone(),
        format,
        headers: (args.headers.iter())
            .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
            .collect(),
        timeout: args.timeout,
    };
    with_config(&args.connect, errors, |config| {
        let (input, source_name): (Box<dyn BufRead>, String) = match &args.file {
            Some(path) => {
                let file = File::open(path).map_err(|reason| AdminError::Read {
                    source_name: path.display().to_string(),
                    reason,
                })?;
                (Box::new(BufReader::new(file)), path.display().to_string())
            }
            None => (Box::new(std::io::stdin().lock()), "stdin".to_owned()),
        };
        let produced =
            runnel::admin::produce::produce(&config.kafka, &request, input, &source_name)?;
        let records = if produced == 1 { "record" } else { "records" };
        println!("produced {produced} {records} to {}", args.topic);
        Ok(())
    })
}

/// `runnel consume`.
pub fn consume(args: &ConsumeArgs, errors: ErrorReport) -> ExitCode {
    let request = ConsumeRequest {
        topic: args.topic.clone(),
        start: args.offset,
        partitions: args.partitions.clone(),
        limit: args.limit,
        idle_timeout: args.timeout,
        exit_at_end: args.exit_at_end,
        format: line_format(args.format, args.key_separator.as_deref()),
    };
    with_config(&args.connect, errors, |config| {
        let mut out = std::io::stdout().lock();
        runnel::admin::consume::consume(&config.kafka, &request, &mut out)?;
        Ok(())
    })
}

/// The line format of `--format` and `--key-separator`; a separator with
/// JSON lines is a usage error.
fn line_format(format: Format, key_separator: Option<&str>) -> LineFormat {
    match (format, key_separator) {
        (Format::Text, separator) => LineFormat::Text {
            key_separator: separator.map(|separator| separator.as_bytes().to_vec()),
        },
        (Format::Json, None) => LineFormat::Json,
        (Format::Json, Some(_)) => Cli::command()
            .error(
                ErrorKind::ArgumentConflict,
                "--key-separator is for the text format: a JSON line has its own `key`",
            )
            .exit(),
    }
}

/// Loads the configuration and runs `command` with it; an error of either
/// is reported once and gives the command's exit code.
fn with_config(
    connect: &ConnectArgs,
    errors: ErrorReport,
    command: impl FnOnce(&Config) -> Result<(), AdminError>,
) -> ExitCode {
    let loaded = (connect.overrides).load(connect.config.as_deref(), Vec::new());
    let config = match loaded {
        Ok(config) => config,
        Err(error) => {
            errors.error(&error.to_string());
            return exit::code(CONFIG);
        }
    };
    match command(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            errors.error(&error.to_string());
            exit::code(exit::admin_code_of(&error))
        }
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String, AdminError> {
    serde_json::to_string(value).map_err(|error| AdminError::Write(error.into()))
}
