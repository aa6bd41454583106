//! Every default of the configuration file, named once. Whatever else in the
//! host needs one of these values uses the constant, so a default changes in
//! one place.
//!
//! serde's `default = "..."` takes a function, not a constant: the small
//! functions at the end exist only for that.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

// ---- the host ----

/// `kafka.brokers`: a broker on this machine, on Kafka's own default port.
pub const BROKERS: &str = "127.0.0.1:9092";

/// `dapr.sidecar`: the sidecar on the pod's loopback, on Dapr's default HTTP
/// port.
pub const DAPR_SIDECAR: &str = "http://127.0.0.1:3500";

/// `http.listen`: loopback only, so that a host started without thought
/// exposes nothing (its admin endpoints included) to the network; port
/// 3000, as the Dapr message processor Runnel replaces used. Containers set
/// `0.0.0.0:3000`.
pub const LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3000);

/// `http.max_body_bytes`: Kafka's default `message.max.bytes` is about
/// 1 MiB; this leaves a little headroom.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// `runtime.max_instances`: plugin instances alive at once per engine. Each
/// holds a slot of the pooling allocator, reserved up front.
pub const MAX_INSTANCES: u32 = 256;

/// `drain_timeout`: how long shutdown waits for in-flight work to finish
/// before it gives up on it.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

// ---- the plugin directory ----

/// `plugins.debounce`: long enough for a copy of a few megabytes to finish,
/// short next to the time a component takes to compile.
pub const PLUGIN_DEBOUNCE: Duration = Duration::from_millis(250);

/// `plugins.rescan_interval`: network filesystems do not always deliver
/// change notices; a plugin change shows within half a minute regardless.
pub const PLUGIN_RESCAN_INTERVAL: Duration = Duration::from_secs(30);

// ---- a pipeline ----

/// The consumer group of a pipeline without `group` is this followed by the
/// pipeline's name.
pub const GROUP_PREFIX: &str = "runnel-";

/// `batch_size` without a profile: per-message mode, no waiting.
pub const BATCH_SIZE: usize = 1;

/// `batch_timeout` without a profile: a batch waits at most this long for
/// more messages after its first one.
pub const BATCH_TIMEOUT: Duration = Duration::from_millis(100);

/// `max_concurrent`: plugin calls running at once, that is partitions
/// processed in parallel.
pub const MAX_CONCURRENT: usize = 4;

/// `max_in_flight`: enough to keep every partition's batches moving while
/// outputs wait for the broker, and, with exactly-once, while a whole
/// transaction waits for its commit (it holds [`TRANSACTION_MAX_MESSAGES`]
/// and the next one fills meanwhile). On a shared two-core machine, 10 000
/// held the pipeline to 0.8 times a raw consume-produce loop, 50 000 to
/// parity; with transactions of 100 000, exactly-once at batch 100 moved
/// 348-479 k msg/s where 50 000 with transactions of 20 000 moved 313-380 k,
/// at about 80 MiB more peak memory. [`MAX_IN_FLIGHT_MIB`] keeps large
/// messages in check.
pub const MAX_IN_FLIGHT: usize = 250_000;

/// `max_in_flight_mib`: librdkafka's own default for prefetched consumer
/// data.
pub const MAX_IN_FLIGHT_MIB: usize = 64;

/// `limits.max_outputs_per_message`: generous for fan-out handlers (a
/// message split into its line items), while a plugin gone wrong that
/// answers one message with a million outputs is refused before any is
/// sent.
pub const MAX_OUTPUTS_PER_MESSAGE: usize = 10_000;

/// `limits.max_output_mib_per_message`: sixteen of Kafka's default largest
/// records (about 1 MB each).
pub const MAX_OUTPUT_MIB_PER_MESSAGE: usize = 16;

/// `transaction_interval`: Kafka Streams commits its exactly-once
/// transactions every 100 ms by default; a commit costs a few milliseconds
/// of broker round trips, shared by every message in the transaction.
pub const TRANSACTION_INTERVAL: Duration = Duration::from_millis(100);

/// `transaction_max_messages`: a commit holds sending for a few to tens of
/// milliseconds (the offsets' round trips, the outputs' last answers), so
/// fewer, larger transactions move more; a transaction holds its messages
/// in flight until it commits, so it is kept well inside [`MAX_IN_FLIGHT`].
pub const TRANSACTION_MAX_MESSAGES: usize = 100_000;

/// `limits.call_timeout`: the runtime's default wall-clock budget of one
/// plugin call, which a plugin checked without a pipeline gets too.
pub const CALL_TIMEOUT: Duration = crate::runtime::default_call_timeout();

/// `limits.max_memory_mib`, in bytes: the runtime's default ceiling of a
/// plugin's linear memory.
pub const MAX_MEMORY_BYTES: u64 = crate::runtime::default_max_memory_bytes();

/// `retry.initial_delay`: the wait before the first retry of a message a
/// plugin reports as transiently failed.
pub const RETRY_INITIAL_DELAY: Duration = Duration::from_millis(100);

/// `retry.max_delay`: no retry waits longer, however the wait grows.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(10);

/// `retry.max_attempts`, the first attempt included: two retries, then the
/// message counts as failed.
pub const RETRY_MAX_ATTEMPTS: u32 = 3;

/// `runtime.call_slots` when neither it nor `runtime.worker_threads` is
/// set: one per CPU, as many as the runtime has worker threads.
pub fn call_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |cpus| cpus.get())
}

/// `runtime.max_plugin_memory_mib` when unset: half of the memory the host
/// may use, its cgroup's limit when it has one (a container's), else the
/// machine's; 4 GiB if neither can be read.
pub fn max_total_memory_bytes() -> u64 {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|limit| limit.trim().parse::<u64>().ok());
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
            let kib = line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
            Some(kib * 1024)
        });
    match (cgroup, machine) {
        (Some(cgroup), Some(machine)) => cgroup.min(machine) / 2,
        (Some(limit), None) | (None, Some(limit)) => limit / 2,
        (None, None) => 4 << 30,
    }
}

// ---- for serde's `default = "..."` ----

pub(super) fn brokers() -> String {
    BROKERS.into()
}

pub(super) fn dapr_sidecar() -> String {
    DAPR_SIDECAR.into()
}

pub(super) const fn listen() -> SocketAddr {
    LISTEN
}

pub(super) const fn max_body_bytes() -> usize {
    MAX_BODY_BYTES
}

pub(super) const fn max_instances() -> u32 {
    MAX_INSTANCES
}

pub(super) const fn drain_timeout() -> Duration {
    DRAIN_TIMEOUT
}

pub(super) const fn plugin_debounce() -> Duration {
    PLUGIN_DEBOUNCE
}

pub(super) const fn plugin_rescan_interval() -> Duration {
    PLUGIN_RESCAN_INTERVAL
}

pub(super) const fn max_concurrent() -> usize {
    MAX_CONCURRENT
}

/// A pipeline's weight in the host's shares: all equal unless set.
pub(super) const fn weight() -> u32 {
    1
}

/// The largest weight: enough to give one pipeline nearly all of a
/// host, small enough that shares never overflow.
pub const MAX_WEIGHT: u32 = 1000;

pub(super) const fn transaction_interval() -> Duration {
    TRANSACTION_INTERVAL
}

pub(super) const fn transaction_max_messages() -> usize {
    TRANSACTION_MAX_MESSAGES
}

pub(super) const fn max_in_flight() -> usize {
    MAX_IN_FLIGHT
}

pub(super) const fn max_in_flight_mib() -> usize {
    MAX_IN_FLIGHT_MIB
}

pub(super) const fn retry_initial_delay() -> Duration {
    RETRY_INITIAL_DELAY
}

pub(super) const fn retry_max_delay() -> Duration {
    RETRY_MAX_DELAY
}

pub(super) const fn retry_max_attempts() -> u32 {
    RETRY_MAX_ATTEMPTS
}
