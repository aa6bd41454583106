//! End-to-end throughput: N messages preloaded into a fresh input topic, a
//! subject started on it, and the time from its first output becoming
//! visible until all N are visible in the output topic.
//!
//! Timing from the first output leaves out what is not throughput: process
//! start, plugin compilation and the consumer group join (reported apart,
//! as "time to first output"). Visible means below the output topic's high
//! watermark: acknowledged by the broker and readable by any consumer. For
//! a subject with transactions, visible means committed, and the count is
//! that of the inputs whose offsets the subject committed with them (see
//! [`CommittedCounter`]).

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::kafka::{CommittedCounter, TopicCounter, unique_name};
use crate::machine::OtherLoad;
use crate::processor::{Harness, Processor, Subject};

/// How often the output topic's watermarks are read: often enough that the
/// error at both ends of a run of a second or more stays under 1%.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Longest wait for the first output: process start, plugin compilation and
/// the group join take a few seconds.
const FIRST_OUTPUT_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest a run may take once outputs flow; a slower subject is reported
/// with what it managed by then.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// The timed part of a run should last at least this long, so a run's
/// message count follows the subject's speed (see [`message_count`]).
pub const TARGET_TIMED_SECONDS: u64 = 4;

/// The most messages preloaded for one run: bounds the preload's time and
/// the broker's disk.
pub const MAX_MESSAGES: usize = 1_500_000;

/// Messages for a run of a subject that last ran at `previous_rate`:
/// enough for [`TARGET_TIMED_SECONDS`] at that rate, within
/// `minimum..=MAX_MESSAGES`.
pub fn message_count(minimum: usize, previous_rate: Option<f64>) -> usize {
    let wanted = previous_rate.map_or(0, |rate| (rate * TARGET_TIMED_SECONDS as f64) as usize);
    wanted.clamp(minimum, MAX_MESSAGES.max(minimum))
}

/// One timed run.
#[derive(Debug, Clone)]
pub struct ThroughputRun {
    /// Messages processed while timed.
    pub messages: usize,
    /// Messages processed before the clock started, for a JIT compiler to
    /// do its work (see [`measure`]).
    pub warm_up_messages: usize,
    pub messages_per_sec: f64,
    pub time_to_first_output: Duration,
    /// CPU time of the subject's process per message, while timed.
    pub subject_cpu_us_per_message: Option<f64>,
    /// CPU time of the broker per message, while timed.
    pub broker_cpu_us_per_message: Option<f64>,
    /// The subject's peak resident memory over the whole run.
    pub subject_peak_rss: Option<u64>,
    /// Whether the run hit [`RUN_TIMEOUT`] before all outputs were visible.
    pub timed_out: bool,
    /// Whether all outputs appeared at once, so the run was timed from the
    /// subject's start instead of from its first output.
    pub startup_included: bool,
    /// Cores other processes kept busy while timed.
    pub other_load_cores: Option<f64>,
}

/// A point in time and how many outputs were visible then.
#[derive(Debug, Clone, Copy)]
struct Observation {
    at: Instant,
    outputs: i64,
    subject_cpu: Option<f64>,
    broker_cpu: Option<f64>,
}

/// Times `subject` over `messages` messages. With `warm_up` messages, the
/// clock starts once that many outputs are visible instead of at the
/// first: a JVM compiles its hot paths while it processes its first
/// messages, where Runnel compiles its plugin before its first output
/// (which the time to first output already leaves out).
pub fn measure(
    harness: &Harness,
    subject: &Subject,
    messages: usize,
    warm_up: usize,
) -> anyhow::Result<ThroughputRun> {
    let topics = harness.cluster.fresh_topics("throughput")?;
    let total = messages + warm_up;
    harness.cluster.preload(&topics.input, total)?;
    let group = unique_name("group");
    let counter = if subject.is_exactly_once() {
        Counter::CommittedInputs(harness.cluster.committed_counter(&group, &topics.input)?)
    } else {
        Counter::VisibleOutputs(harness.cluster.counter(&topics.output)?)
    };

    let started = Instant::now();
    let mut processor = subject.start(harness, &topics, &group)?;
    let first_output =
        wait_for_outputs(harness, &mut processor, &counter, 1, FIRST_OUTPUT_TIMEOUT)?;
    let first = if warm_up > 0 {
        wait_for_outputs(
            harness,
            &mut processor,
            &counter,
            warm_up as i64,
            RUN_TIMEOUT,
        )?
    } else {
        first_output
    };
    let measured: Vec<u32> = [Some(processor.pid()), harness.broker_pid]
        .into_iter()
        .flatten()
        .collect();
    let other_load = OtherLoad::start(&measured);
    let last = wait_for_outputs(harness, &mut processor, &counter, total as i64, RUN_TIMEOUT)?;
    let other_load_cores = other_load.and_then(|load| load.cores());
    let peak_rss = processor.memory().map(|memory| memory.peak_resident);
    processor.stop();

    let time_to_first_output = first_output.at.duration_since(started);
    if last.outputs == first.outputs {
        // Everything appeared between two polls: too few messages to time
        // from the first output, so time from the start, start-up included.
        return Ok(ThroughputRun {
            messages: total,
            warm_up_messages: 0,
            messages_per_sec: last.outputs as f64 / first.at.duration_since(started).as_secs_f64(),
            time_to_first_output,
            subject_cpu_us_per_message: None,
            broker_cpu_us_per_message: None,
            subject_peak_rss: peak_rss,
            timed_out: false,
            startup_included: true,
            other_load_cores: None,
        });
    }
    let timed = (last.outputs - first.outputs) as f64;
    let seconds = last.at.duration_since(first.at).as_secs_f64();
    let per_message_us = |from: Option<f64>, to: Option<f64>| Some((to? - from?) * 1e6 / timed);
    Ok(ThroughputRun {
        messages,
        warm_up_messages: warm_up,
        messages_per_sec: timed / seconds,
        time_to_first_output,
        subject_cpu_us_per_message: per_message_us(first.subject_cpu, last.subject_cpu),
        broker_cpu_us_per_message: per_message_us(first.broker_cpu, last.broker_cpu),
        subject_peak_rss: peak_rss,
        timed_out: last.outputs < total as i64,
        startup_included: false,
        other_load_cores,
    })
}

/// How a run counts the outputs a subject has made visible.
enum Counter {
    /// Below the output topic's high watermarks.
    VisibleOutputs(TopicCounter),
    /// Committed in a transaction, counted by the inputs committed with them.
    CommittedInputs(CommittedCounter),
}

impl Counter {
    fn count(&self) -> anyhow::Result<i64> {
        match self {
            Counter::VisibleOutputs(counter) => counter.count(),
            Counter::CommittedInputs(counter) => counter.count(),
        }
    }
}

/// Polls until at least `target` outputs are visible or `timeout` passes,
/// and returns the observation that ended the wait.
fn wait_for_outputs(
    harness: &Harness,
    processor: &mut Processor,
    counter: &Counter,
    target: i64,
    timeout: Duration,
) -> anyhow::Result<Observation> {
    let deadline = Instant::now() + timeout;
    loop {
        let outputs = counter.count()?;
        // Read right after the count, so CPU and count describe one moment.
        let observation = Observation {
            at: Instant::now(),
            outputs,
            subject_cpu: processor.cpu_seconds(),
            broker_cpu: harness.broker_pid.and_then(crate::procfs::cpu_seconds),
        };
        if outputs >= target {
            return Ok(observation);
        }
        processor.ensure_running()?;
        if observation.at >= deadline {
            if target == 1 {
                bail!("no output within {timeout:?}");
            }
            eprintln!("  timed out with {outputs} of {target} outputs visible");
            return Ok(observation);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_counts_follow_the_previous_rate_within_bounds() {
        assert_eq!(message_count(200_000, None), 200_000);
        assert_eq!(message_count(200_000, Some(12_000.0)), 200_000);
        assert_eq!(message_count(200_000, Some(150_000.0)), 600_000);
        assert_eq!(message_count(200_000, Some(2e6)), MAX_MESSAGES);
    }
}
