//! The time each message spent inside the measured process, read from its
//! Prometheus histogram `runnel_message_processing_seconds`: from receipt
//! to its output being handed to the producer. Runnel records it on its
//! `/metrics`, the baseline records the same series on its own, so both
//! are measured the same way, by the same code, and without the broker and
//! the network that make end-to-end percentiles too coarse for
//! microseconds.

use std::time::Duration;

use anyhow::{Context, bail};

pub const PROCESSING_METRIC: &str = "runnel_message_processing_seconds";

/// Cumulative bucket counts of one histogram, summed over its label sets:
/// `(upper bound in seconds, observations at or below it)`, by bound, the
/// last one `+Inf`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    cumulative: Vec<(f64, u64)>,
}

impl Buckets {
    /// Reads `metric`'s buckets from a Prometheus text exposition.
    pub fn parse(exposition: &str, metric: &str) -> anyhow::Result<Self> {
        let prefix = format!("{metric}_bucket{{");
        let mut cumulative: Vec<(f64, u64)> = Vec::new();
        for line in exposition.lines().filter(|line| line.starts_with(&prefix)) {
            let (labels, count) = line[prefix.len()..]
                .rsplit_once("} ")
                .with_context(|| format!("malformed bucket line `{line}`"))?;
            let bound = labels
                .split(',')
                .find_map(|label| label.strip_prefix("le=\""))
                .and_then(|bound| bound.strip_suffix('"'))
                .with_context(|| format!("bucket line without `le`: `{line}`"))?;
            let bound: f64 = match bound {
                "+Inf" => f64::INFINITY,
                bound => bound
                    .parse()
                    .with_context(|| format!("bad bucket bound in `{line}`"))?,
            };
            let count: u64 = count
                .trim()
                .parse()
                .with_context(|| format!("bad bucket count in `{line}`"))?;
            match cumulative.iter_mut().find(|(known, _)| *known == bound) {
                Some((_, total)) => *total += count,
                None => cumulative.push((bound, count)),
            }
        }
        if cumulative.is_empty() {
            bail!("no `{metric}` buckets in the exposition");
        }
        cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(Self { cumulative })
    }

    /// What was observed after `earlier`, a snapshot of the same histogram.
    pub fn since(&self, earlier: &Self) -> Self {
        let cumulative = self
            .cumulative
            .iter()
            .map(|&(bound, count)| {
                let before = earlier
                    .cumulative
                    .iter()
                    .find(|(known, _)| *known == bound)
                    .map_or(0, |&(_, count)| count);
                (bound, count.saturating_sub(before))
            })
            .collect();
        Self { cumulative }
    }

    /// Pools another measurement of the same histogram into this one.
    pub fn add(&mut self, other: &Self) {
        for &(bound, count) in &other.cumulative {
            match self
                .cumulative
                .iter_mut()
                .find(|(known, _)| *known == bound)
            {
                Some((_, total)) => *total += count,
                None => self.cumulative.push((bound, count)),
            }
        }
        self.cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
    }

    pub fn total(&self) -> u64 {
        self.cumulative.last().map_or(0, |&(_, count)| count)
    }

    /// The bucket the `fraction` percentile falls in, as `(lower, upper]`
    /// bounds; `None` with no observations. The histogram cannot say more
    /// precisely where in the bucket it is.
    pub fn percentile(&self, fraction: f64) -> Option<BucketRange> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = (fraction * total as f64).ceil().max(1.0) as u64;
        let mut lower = 0.0;
        for &(bound, count) in &self.cumulative {
            if count >= rank {
                return Some(BucketRange {
                    lower: Duration::from_secs_f64(lower),
                    upper: (bound.is_finite()).then(|| Duration::from_secs_f64(bound)),
                });
            }
            lower = bound;
        }
        None
    }

    /// p50, p90 and p99, as the buckets they fall in.
    pub fn percentiles_label(&self) -> String {
        let label = |fraction| {
            self.percentile(fraction)
                .map_or("–".into(), |range| range.label())
        };
        format!(
            "p50 {}, p90 {}, p99 {}",
            label(0.5),
            label(0.9),
            label(0.99)
        )
    }

    /// The share of observations at or below `bound`, which must be one of
    /// the histogram's bucket bounds.
    pub fn share_within(&self, bound: Duration) -> Option<f64> {
        let total = self.total();
        let bound = bound.as_secs_f64();
        let (_, count) = self
            .cumulative
            .iter()
            .find(|(known, _)| (known - bound).abs() < 1e-12)?;
        (total > 0).then(|| *count as f64 / total as f64)
    }
}

/// Where a percentile lies: above `lower`, at or below `upper` (`None`:
/// above the last finite bound).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRange {
    pub lower: Duration,
    pub upper: Option<Duration>,
}

impl BucketRange {
    pub fn label(&self) -> String {
        let lower = self.lower.as_micros();
        match self.upper {
            Some(upper) => format!("{lower}–{} µs", upper.as_micros()),
            None => format!("> {lower} µs"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition of one label set with these cumulative counts at 10
    /// µs, 100 µs, 1 ms and +Inf, between the lines of other metrics.
    fn exposition(pipeline: &str, counts: [u64; 4]) -> String {
        let bounds = ["0.00001", "0.0001", "0.001", "+Inf"];
        let mut text = format!("# TYPE {PROCESSING_METRIC} histogram\n");
        for (bound, count) in bounds.iter().zip(counts) {
            text += &format!(
                "{PROCESSING_METRIC}_bucket{{pipeline=\"{pipeline}\",le=\"{bound}\"}} {count}\n"
            );
        }
        text += &format!(
            "{PROCESSING_METRIC}_count{{pipeline=\"{pipeline}\"}} {}\n",
            counts[3]
        );
        text += &format!("kafka_batch_size_bucket{{pipeline=\"{pipeline}\",le=\"1\"}} 7\n");
        text
    }

    fn micros(us: u64) -> Duration {
        Duration::from_micros(us)
    }

    #[test]
    fn buckets_are_summed_over_label_sets() {
        let text = exposition("a", [1, 90, 99, 100]) + &exposition("b", [0, 0, 0, 100]);
        let buckets = Buckets::parse(&text, PROCESSING_METRIC).unwrap();
        assert_eq!(buckets.total(), 200);
        assert_eq!(buckets.share_within(micros(100)), Some(90.0 / 200.0));
        assert!(Buckets::parse(&text, "missing_metric").is_err());
    }

    #[test]
    fn the_percentile_is_the_bucket_its_rank_falls_in() {
        let buckets =
            Buckets::parse(&exposition("a", [1, 90, 99, 100]), PROCESSING_METRIC).unwrap();
        // The 90th of 100 is at or below 100 µs; the 91st above it.
        let p90 = buckets.percentile(0.90).unwrap();
        assert_eq!((p90.lower, p90.upper), (micros(10), Some(micros(100))));
        let p99 = buckets.percentile(0.99).unwrap();
        assert_eq!((p99.lower, p99.upper), (micros(100), Some(micros(1000))));
        let max = buckets.percentile(1.0).unwrap();
        assert_eq!((max.lower, max.upper), (micros(1000), None));
        assert_eq!(p99.label(), "100–1000 µs");
        assert_eq!(Buckets::default().percentile(0.99), None);
    }

    #[test]
    fn a_snapshot_difference_keeps_only_what_came_after() {
        let before = Buckets::parse(&exposition("a", [1, 90, 99, 100]), PROCESSING_METRIC).unwrap();
        let after = Buckets::parse(&exposition("a", [1, 90, 99, 106]), PROCESSING_METRIC).unwrap();
        let new = after.since(&before);
        assert_eq!(new.total(), 6);
        assert_eq!(new.share_within(micros(1000)), Some(0.0));
        let mut pooled = new.clone();
        pooled.add(&new);
        assert_eq!(pooled.total(), 12);
    }
}
