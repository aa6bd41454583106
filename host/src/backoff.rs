//! How long to wait before trying again: the one backoff of the host, used
//! by message retries, offset commits, transactions, partition rewinds and
//! a full producer queue.

use std::time::Duration;

use serde::Deserialize;

/// How the wait grows from one attempt to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    /// Always `initial_delay`.
    Fixed,
    /// `initial_delay × attempt`.
    Linear,
    /// `initial_delay × 2^(attempt − 1)`.
    #[default]
    Exponential,
}

/// Waits that grow by `kind` from `initial` and never exceed `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub kind: BackoffKind,
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The same wait every time.
    pub const fn fixed(delay: Duration) -> Self {
        Self {
            kind: BackoffKind::Fixed,
            initial: delay,
            max: delay,
        }
    }

    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Self {
            kind: BackoffKind::Exponential,
            initial,
            max,
        }
    }

    /// The wait after `attempt` failed attempts (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let attempt = attempt.max(1);
        let delay = match self.kind {
            BackoffKind::Fixed => self.initial,
            BackoffKind::Linear => self.initial.saturating_mul(attempt),
            BackoffKind::Exponential => self
                .initial
                .saturating_mul(2u32.saturating_pow((attempt - 1).min(31))),
        };
        delay.min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_grows_as_named_and_stops_at_the_maximum() {
        let ms = Duration::from_millis;
        let backoff = |kind| Backoff {
            kind,
            initial: ms(100),
            max: ms(1000),
        };
        let delays = |kind| (1..=6).map(|n| backoff(kind).delay(n)).collect::<Vec<_>>();
        assert_eq!(delays(BackoffKind::Fixed), [ms(100); 6]);
        assert_eq!(
            delays(BackoffKind::Linear),
            [ms(100), ms(200), ms(300), ms(400), ms(500), ms(600)]
        );
        assert_eq!(
            delays(BackoffKind::Exponential),
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(backoff(BackoffKind::Exponential).delay(0), ms(100));
        assert_eq!(backoff(BackoffKind::Exponential).delay(u32::MAX), ms(1000));
    }
}
