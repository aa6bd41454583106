//! `runnel-bench`: how fast is Runnel, and what does it cost? One run on one
//! real broker measures Runnel end to end against a raw rdkafka loop and a
//! Kafka Streams program, the WebAssembly stage alone, latency at fixed
//! rates and the footprint of an idle host, and writes a table with ratios
//! and a chart.
//!
//! `bench/run.sh` builds everything, starts the broker and runs
//! `runnel-bench run`; see `bench/README.md` for what each number means.

mod baseline;
mod footprint;
mod histogram;
mod kafka;
mod kafka_streams;
mod languages;
mod latency;
mod machine;
mod processor;
mod procfs;
mod report;
mod runnel_config;
mod suite;
mod targets;
mod tenants;
mod throughput;
mod wasm_stage;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "runnel-bench",
    about = "Measures Runnel against a raw rdkafka loop and Kafka Streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the measurements and write the results.
    Run(Box<suite::RunOptions>),
    /// The baseline consume → produce loop; started by `run`, not by hand.
    #[command(hide = true)]
    Baseline(baseline::BaselineOptions),
    /// Creates a 4-partition topic holding `count` benchmark messages, as the
    /// throughput runs do: input for profiling a host by hand.
    Preload {
        #[arg(long, env = "RUNNEL_BENCH_BROKERS")]
        brokers: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1_000_000)]
        count: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(options) => suite::run(*options),
        Command::Baseline(options) => baseline::run(options),
        Command::Preload {
            brokers,
            topic,
            count,
        } => {
            let cluster = kafka::Cluster::new(&brokers);
            cluster.create_topics(&[&topic], kafka::PARTITIONS)?;
            cluster.preload(&topic, count)
        }
    }
}
