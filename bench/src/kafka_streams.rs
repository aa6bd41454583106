//! The peer: the Kafka Streams program of `bench/kafka-streams/`, what a team
//! would write instead of a Runnel pipeline (consume, `mapValues` upper-case,
//! produce). `bench/kafka-streams/build.sh` builds it into a directory of jars
//! outside the repository; the harness runs it from there with `java`, as a
//! child process measured from outside like Runnel and the baseline.

use std::path::Path;
use std::process::Command;

use crate::kafka::TopicPair;

/// Stream threads, as in the measurements the targets were set from: two
/// threads for four partitions, on a two-core machine.
pub const STREAM_THREADS: usize = 2;

/// The program's main class, in the jar `build.sh` builds.
const MAIN_CLASS: &str = "runnel.bench.UppercaseStreams";

/// Kafka Streams' own producer `linger.ms` (4.1): StreamsConfig raises the
/// producer's 5 ms to 100, as its logged ProducerConfig shows.
const STREAMS_DEFAULT_LINGER_MS: u32 = 100;

/// What "tuned" changes for latency: no producer batching wait, and a commit
/// every 100 ms (the exactly-once default) where at-least-once commits every
/// 30 s. Both are the first settings a Kafka Streams user reaching for low
/// latency is told to change.
const TUNED_SETTINGS: &[(&str, &str)] =
    &[("producer.linger.ms", "0"), ("commit.interval.ms", "100")];

/// Kafka Streams' `processing.guarantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    AtLeastOnce,
    /// `exactly_once_v2`: one transaction per stream thread, committed every
    /// `commit.interval.ms` (100 ms by default) across its partitions.
    ExactlyOnce,
}

impl Guarantee {
    fn setting(self) -> &'static str {
        match self {
            Self::AtLeastOnce => "at_least_once",
            Self::ExactlyOnce => "exactly_once_v2",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::AtLeastOnce => "at least once",
            Self::ExactlyOnce => "exactly once",
        }
    }
}

/// One way of running the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamsSettings {
    pub guarantee: Guarantee,
    /// [`TUNED_SETTINGS`] on top of Kafka Streams' defaults.
    pub tuned: bool,
}

impl StreamsSettings {
    pub fn label(&self) -> String {
        let settings = if self.tuned {
            let tuned: Vec<String> = TUNED_SETTINGS
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            format!("tuned: {}", tuned.join(", "))
        } else {
            "defaults".to_owned()
        };
        format!(
            "Kafka Streams, {}, {STREAM_THREADS} threads, {settings}",
            self.guarantee.label()
        )
    }

    pub fn linger_ms(&self) -> u32 {
        if self.tuned {
            0
        } else {
            STREAMS_DEFAULT_LINGER_MS
        }
    }

    /// `java` running the program from `classpath` (the directory
    /// `build.sh` printed) on `topics`, with `application_id` as its
    /// consumer group and `state_dir` for the state directory Kafka
    /// Streams creates even for a stateless topology. The JVM runs with
    /// its defaults, as a user's would unless they tuned it.
    pub fn command(
        &self,
        classpath: &Path,
        brokers: &str,
        topics: &TopicPair,
        application_id: &str,
        state_dir: &Path,
    ) -> Command {
        let mut command = Command::new("java");
        command
            .arg("-cp")
            .arg(classpath.join("*"))
            .arg(MAIN_CLASS)
            .args(["--brokers", brokers])
            .args(["--input", &topics.input, "--output", &topics.output])
            .args(["--application-id", application_id])
            .args(["--guarantee", self.guarantee.setting()])
            .args(["--threads", &STREAM_THREADS.to_string()])
            .arg("--state-dir")
            .arg(state_dir);
        if self.tuned {
            for (key, value) in TUNED_SETTINGS {
                command.arg("--set").arg(format!("{key}={value}"));
            }
        }
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_carries_the_guarantee_and_the_tuning() {
        let topics = TopicPair {
            input: "in".into(),
            output: "out".into(),
        };
        let settings = StreamsSettings {
            guarantee: Guarantee::ExactlyOnce,
            tuned: true,
        };
        let command = settings.command(
            Path::new("/cache/peer"),
            "127.0.0.1:9092",
            &topics,
            "app",
            Path::new("/work/app"),
        );
        let args: Vec<String> = command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        assert!(line.starts_with("-cp /cache/peer/* runnel.bench.UppercaseStreams "));
        assert!(
            line.contains("--guarantee exactly_once_v2 --threads 2"),
            "{line}"
        );
        assert!(line.contains("--set producer.linger.ms=0"), "{line}");
        assert!(line.contains("--set commit.interval.ms=100"), "{line}");
        assert_eq!(settings.linger_ms(), 0);
        assert!(settings.label().contains("exactly once"));
    }
}
