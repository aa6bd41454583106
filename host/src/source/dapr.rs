//! Dapr input bindings: the sidecar POSTs each message to `/{binding}` and
//! waits for the answer. Each request joins its pipeline's batch and is
//! answered with its own outcome once its outputs are acknowledged, so a
//! 2xx always means the message is safe and anything else makes Dapr
//! redeliver.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::batch::BatchPolicy;
use crate::failure::{MessageFailure, MessageFailureKind};
use crate::pipeline::Pipeline;
use crate::runtime::{BatchWriter, NewMessage};

/// One request waiting for its outcome.
struct BindingRequest {
    value: Vec<u8>,
    metadata: KafkaMetadata,
    headers: Vec<(String, Vec<u8>)>,
    respond: oneshot::Sender<Result<usize, MessageFailure>>,
    received: quanta::Instant,
}

/// What Dapr's Kafka binding says about the record behind a request, in
/// its `__topic`, `__partition`, `__offset`, `__timestamp` and `__key`
/// headers; absent for other bindings.
#[derive(Debug, Default)]
struct KafkaMetadata {
    topic: Option<String>,
    partition: Option<i32>,
    offset: Option<i64>,
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
}

impl KafkaMetadata {
    /// Takes Dapr's record metadata out of the request headers; the other
    /// headers (the record's own among them) stay message headers.
    fn extract(headers: &mut Vec<(String, Vec<u8>)>) -> Self {
        let mut metadata = Self::default();
        headers.retain(|(name, value)| {
            let text = || String::from_utf8_lossy(value).into_owned();
            match name.as_str() {
                "__topic" => metadata.topic = Some(text()),
                "__partition" => metadata.partition = text().parse().ok(),
                "__offset" => metadata.offset = text().parse().ok(),
                "__timestamp" => metadata.timestamp = text().parse().ok(),
                "__key" => metadata.key = Some(value.clone()),
                _ => return true,
            }
            false
        });
        metadata
    }
}

/// The entry point of one Dapr input binding.
pub struct BindingInput {
    pub binding: String,
    pub pipeline: Arc<Pipeline>,
    requests: UnboundedSender<BindingRequest>,
}

impl BindingInput {
    /// Starts the binding's batcher; it stops after `shutdown` once the
    /// requests already queued are answered.
    pub fn start(
        binding: &str,
        pipeline: Arc<Pipeline>,
        policy: BatchPolicy,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let (requests, queue) = unbounded_channel();
        tokio::spawn(run_batches(
            binding.to_owned(),
            pipeline.clone(),
            policy,
            queue,
            shutdown,
        ));
        Arc::new(Self {
            binding: binding.to_owned(),
            pipeline,
            requests,
        })
    }

    /// Processes one message; resolves to the number of outputs once they
    /// are acknowledged, or to the message's failure.
    pub async fn handle(
        &self,
        value: Vec<u8>,
        mut headers: Vec<(String, Vec<u8>)>,
    ) -> Result<usize, MessageFailure> {
        let received = quanta::Instant::now();
        let metadata = KafkaMetadata::extract(&mut headers);
        let (respond, outcome) = oneshot::channel();
        let shutting_down = || MessageFailure {
            attempts: 0,
            ..MessageFailure::new(MessageFailureKind::Transient, "the host is shutting down")
        };
        self.requests
            .send(BindingRequest {
                value,
                metadata,
                headers,
                respond,
                received,
            })
            .map_err(|_| shutting_down())?;
        outcome.await.unwrap_or_else(|_| Err(shutting_down()))
    }
}

async fn run_batches(
    binding: String,
    pipeline: Arc<Pipeline>,
    policy: BatchPolicy,
    mut queue: UnboundedReceiver<BindingRequest>,
    shutdown: CancellationToken,
) {
    pipeline.recorder.set_running(true);
    let mut batch = Vec::with_capacity(policy.batch_size);
    let mut closing = false;
    loop {
        let more = if closing {
            policy.next_batch(&mut queue, &mut batch).await
        } else {
            tokio::select! {
                more = policy.next_batch(&mut queue, &mut batch) => more,
                _ = shutdown.cancelled() => {
                    // Answer what is queued (a batch being gathered goes
                    // now); new requests are refused.
                    queue.close();
                    closing = true;
                    !batch.is_empty()
                }
            }
        };
        if !more {
            if closing && !queue.is_empty() {
                continue;
            }
            break;
        }
        let requests = std::mem::take(&mut batch);
        // Batches run concurrently, bounded by the pipeline's concurrency.
        tokio::spawn(process(binding.clone(), pipeline.clone(), requests));
    }
    pipeline.recorder.set_running(false);
}

async fn process(binding: String, pipeline: Arc<Pipeline>, requests: Vec<BindingRequest>) {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .ok();
    let mut builder = BatchWriter::new(&binding);
    for request in &requests {
        let metadata = &request.metadata;
        let message = NewMessage {
            topic: metadata.topic.as_deref().unwrap_or(&binding),
            partition: metadata.partition.unwrap_or(-1),
            offset: metadata.offset.unwrap_or(-1),
            timestamp: metadata.timestamp.or(timestamp),
            key: metadata.key.as_deref(),
            value: &request.value,
        };
        let headers = request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()));
        builder.push(&message, headers);
    }
    let results = pipeline
        .process(&builder.finish(), &pipeline.producer)
        .await;
    let handled = requests
        .iter()
        .take(results.len())
        .map(|request| request.received);
    pipeline.recorder.handled(handled);
    for (request, result) in requests.into_iter().zip(results) {
        let outputs = result.outputs();
        // A dead-lettered message is handled: Dapr must not redeliver it.
        let outcome = match result.failure {
            Some(failure) if !result.dead_lettered => Err(failure),
            // An output not acknowledged: Dapr redelivers the message.
            _ => match pipeline.producer.confirm_all(result.deliveries).await {
                Ok(()) => {
                    pipeline.recorder.outputs_delivered(outputs);
                    Ok(outputs as usize)
                }
                Err(error) => Err(MessageFailure::new(
                    MessageFailureKind::Transient,
                    error.to_string(),
                )),
            },
        };
        let _ = request.respond.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dapr_record_metadata_becomes_message_fields_and_leaves_the_headers() {
        let mut headers = vec![
            ("__topic".to_owned(), b"orders".to_vec()),
            ("__partition".to_owned(), b"3".to_vec()),
            ("__offset".to_owned(), b"42".to_vec()),
            ("__timestamp".to_owned(), b"1700000000000".to_vec()),
            ("__key".to_owned(), b"k".to_vec()),
            ("trace-id".to_owned(), b"abc".to_vec()),
        ];
        let metadata = KafkaMetadata::extract(&mut headers);
        assert_eq!(metadata.topic.as_deref(), Some("orders"));
        assert_eq!(metadata.partition, Some(3));
        assert_eq!(metadata.offset, Some(42));
        assert_eq!(metadata.timestamp, Some(1_700_000_000_000));
        assert_eq!(metadata.key.as_deref(), Some(b"k".as_slice()));
        assert_eq!(headers, vec![("trace-id".to_owned(), b"abc".to_vec())]);
    }
}
