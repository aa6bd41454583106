//! Size/timeout batching. A batch is flushed when it holds `batch_size`
//! messages or when `batch_timeout` has passed since its *first* message,
//! whichever comes first; `batch_size = 1` never waits.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub batch_size: usize,
    pub batch_timeout: Duration,
}

impl BatchPolicy {
    /// Fills `batch` (which must be empty) with the next batch from `input`.
    /// Returns false once `input` is closed and drained; a partial batch
    /// pending at close is returned first, so nothing is left behind.
    pub async fn next_batch<T>(
        &self,
        input: &mut UnboundedReceiver<T>,
        batch: &mut Vec<T>,
    ) -> bool {
        debug_assert!(batch.is_empty());
        let Some(first) = input.recv().await else {
            return false;
        };
        batch.push(first);
        if self.batch_size <= 1 {
            return true;
        }
        let deadline = Instant::now() + self.batch_timeout;
        while batch.len() < self.batch_size {
            // Take what is already queued without touching the timer.
            match input.try_recv() {
                Ok(item) => {
                    batch.push(item);
                    continue;
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {}
            }
            match tokio::time::timeout_at(deadline, input.recv()).await {
                Ok(Some(item)) => batch.push(item),
                Ok(None) | Err(_) => break,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    fn policy(batch_size: usize, timeout_ms: u64) -> BatchPolicy {
        BatchPolicy {
            batch_size,
            batch_timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_message_mode_returns_each_message_at_once() {
        let (tx, mut rx) = unbounded_channel();
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        let mut batch = Vec::new();
        assert!(policy(1, 10_000).next_batch(&mut rx, &mut batch).await);
        assert_eq!(batch, vec![0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_flushes_without_waiting_for_the_timeout() {
        let (tx, mut rx) = unbounded_channel();
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        let started = Instant::now();
        let mut batch = Vec::new();
        assert!(policy(3, 60_000).next_batch(&mut rx, &mut batch).await);
        assert_eq!(batch, vec![0, 1, 2]);
        assert_eq!(started.elapsed(), Duration::ZERO, "no timer involved");
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_flushes_at_the_timeout_after_its_first_message() {
        let (tx, mut rx) = unbounded_channel();
        tx.send(1).unwrap();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            tx.send(2).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(3).unwrap();
        });
        let started = Instant::now();
        let mut batch = Vec::new();
        assert!(policy(10, 100).next_batch(&mut rx, &mut batch).await);
        assert_eq!(batch, vec![1, 2], "3 arrives after the deadline");
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        sender.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn closing_flushes_the_partial_batch_then_ends() {
        let (tx, mut rx) = unbounded_channel();
        tx.send(7).unwrap();
        drop(tx);
        let mut batch = Vec::new();
        let policy = policy(10, 60_000);
        assert!(policy.next_batch(&mut rx, &mut batch).await);
        assert_eq!(batch, vec![7]);
        batch.clear();
        assert!(!policy.next_batch(&mut rx, &mut batch).await);
    }
}
