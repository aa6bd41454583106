//! The pipeline's back-pressure gauge: messages received but not yet done,
//! counted and weighed against the configured bounds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Longest the receive loop stops polling to let in-flight work drain
/// before it pauses the partitions instead.
const MAX_UNPOLLED: Duration = Duration::from_secs(5);

/// Messages received but not yet done, counted and weighed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Work {
    pub messages: usize,
    /// Key and value bytes.
    pub bytes: usize,
}

impl Work {
    pub fn of<'a>(messages: impl IntoIterator<Item = &'a OwnedMessage>) -> Self {
        messages
            .into_iter()
            .fold(Self::default(), |work, message| Self {
                messages: work.messages + 1,
                bytes: work.bytes + message_bytes(message),
            })
    }
}

pub(super) fn message_bytes(message: &OwnedMessage) -> usize {
    message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len)
}

pub(super) struct InFlight {
    messages: AtomicUsize,
    bytes: AtomicUsize,
    max: Work,
    /// Signalled whenever in-flight work finishes.
    room: Notify,
}

impl InFlight {
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            messages: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max: Work {
                messages: max_messages,
                bytes: max_bytes,
            },
            room: Notify::new(),
        }
    }

    pub fn add(&self, bytes: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `work` is done (committed, or given up on).
    pub fn remove(&self, work: Work) {
        self.messages.fetch_sub(work.messages, Ordering::Relaxed);
        self.bytes.fetch_sub(work.bytes, Ordering::Relaxed);
        self.room.notify_waiters();
    }

    /// Whether either count has reached `percent` of its bound.
    pub fn at(&self, percent: usize) -> bool {
        let messages = self.messages.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        messages * 100 >= self.max.messages * percent || bytes * 100 >= self.max.bytes * percent
    }

    /// Waits until in-flight work falls below `percent` of its bounds, for
    /// at most `MAX_UNPOLLED` (well inside `max.poll.interval.ms`). Returns
    /// whether it did.
    pub async fn wait_below(&self, percent: usize, shutdown: &CancellationToken) -> bool {
        let deadline = tokio::time::Instant::now() + MAX_UNPOLLED;
        while self.at(percent) {
            let notified = self.room.notified();
            // Checked again after registering, so no wake-up is missed.
            if !self.at(percent) {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_bounded_by_messages_or_bytes_whichever_comes_first() {
        let in_flight = InFlight::new(4, 1000);
        for _ in 0..3 {
            in_flight.add(10);
        }
        assert!(in_flight.at(75), "3 of 4 messages");
        assert!(!in_flight.at(100));
        in_flight.add(10);
        assert!(in_flight.at(100), "4 of 4 messages");

        in_flight.remove(Work {
            messages: 3,
            bytes: 30,
        });
        assert!(!in_flight.at(50), "1 message, 10 bytes");
        in_flight.add(990);
        assert!(in_flight.at(100), "2 messages, but 1000 bytes");
    }
}
