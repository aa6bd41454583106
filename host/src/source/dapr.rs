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
use crate::runtime::{BatchWriter, EncodedBatch, NewMessage};

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
                // Kafka's -1 (and any time before the epoch) is no
                // timestamp: the request's arrival stands in for it.
                "__timestamp" => metadata.timestamp = text().parse().ok().filter(|ms| *ms >= 0),
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

/// The batch of `requests`, in order. A request without Dapr's record
/// metadata is a message of topic `binding`, timestamped `now`.
fn encode(binding: &str, requests: &[BindingRequest], now: Option<i64>) -> EncodedBatch {
    let mut builder = BatchWriter::new(binding);
    for request in requests {
        let metadata = &request.metadata;
        let message = NewMessage {
            topic: metadata.topic.as_deref().unwrap_or(binding),
            partition: metadata.partition.unwrap_or(-1),
            offset: metadata.offset.unwrap_or(-1),
            timestamp: metadata.timestamp.or(now),
            key: metadata.key.as_deref(),
            value: &request.value,
        };
        let headers = request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()));
        builder.push(&message, headers);
    }
    builder.finish()
}

async fn process(binding: String, pipeline: Arc<Pipeline>, requests: Vec<BindingRequest>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .ok();
    let batch = encode(&binding, &requests, now);
    let results = pipeline.process(&batch, &pipeline.producer).await;
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

    /// Found by the fuzzed test below: a record without a timestamp got
    /// none in the batch, where a request without metadata gets its arrival.
    #[test]
    fn a_negative_record_timestamp_is_no_timestamp() {
        let mut headers = vec![("__timestamp".to_owned(), b"-1".to_vec())];
        assert_eq!(KafkaMetadata::extract(&mut headers).timestamp, None);
    }

    /// Requests as a client may send them, fuzzed: any headers HTTP allows
    /// (Dapr's record metadata with values good and bad among them) and
    /// any body. Each batch decodes to exactly what was sent.
    mod fuzzed {
        use axum::http::{HeaderMap, HeaderName, HeaderValue};
        use proptest::prelude::*;

        use super::*;
        use crate::runtime::BatchView;

        /// Dapr's record metadata first, then others a request may carry.
        const NAMES: &[&str] = &[
            "__topic",
            "__partition",
            "__offset",
            "__timestamp",
            "__key",
            "authorization",
            "dapr-api-token",
            "host",
            "trace-id",
            "runnel-error",
        ];

        fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
            let name = prop_oneof![
                proptest::sample::select(NAMES).prop_map(str::to_owned),
                "[a-z0-9_-]{1,16}",
            ];
            let value = prop_oneof![
                "-?[0-9]{1,20}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..40),
            ];
            (name, value)
        }

        /// A request: its headers as HTTP carries them (those HTTP
        /// forbids dropped), and its body.
        fn request() -> impl Strategy<Value = (HeaderMap, Vec<u8>)> {
            let headers = proptest::collection::vec(header(), 0..12).prop_map(|headers| {
                let mut map = HeaderMap::new();
                for (name, value) in headers {
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_bytes(&value),
                    ) {
                        map.append(name, value);
                    }
                }
                map
            });
            (headers, proptest::collection::vec(any::<u8>(), 0..200))
        }

        fn request_of(headers: &HeaderMap, body: &[u8]) -> BindingRequest {
            let mut headers = crate::http::message_headers(headers);
            let metadata = KafkaMetadata::extract(&mut headers);
            BindingRequest {
                value: body.to_vec(),
                metadata,
                headers,
                respond: oneshot::channel().0,
                received: quanta::Instant::now(),
            }
        }

        fn text(headers: &HeaderMap, name: &str) -> Option<String> {
            let value = headers.get_all(name).iter().next_back()?;
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 2_000,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn a_batch_of_requests_holds_what_they_sent(
                requests in proptest::collection::vec(request(), 1..4),
            ) {
                let bound: Vec<_> = requests
                    .iter()
                    .map(|(headers, body)| request_of(headers, body))
                    .collect();
                let batch = encode("payments", &bound, Some(7));
                let view = BatchView::parse(batch.bytes()).expect("the batch decodes");
                prop_assert_eq!(view.len(), requests.len());
                for ((headers, body), message) in requests.iter().zip(view.messages()) {
                    prop_assert_eq!(message.value(), body.as_slice());
                    let topic = text(headers, "__topic").unwrap_or_else(|| "payments".into());
                    prop_assert_eq!(message.topic(), topic.as_str());
                    let number = |name| text(headers, name).and_then(|v| v.parse::<i64>().ok());
                    let partition = text(headers, "__partition").and_then(|v| v.parse().ok());
                    prop_assert_eq!(message.partition(), partition.unwrap_or(-1));
                    prop_assert_eq!(message.offset(), number("__offset").unwrap_or(-1));
                    let timestamp = number("__timestamp").filter(|ms| *ms >= 0);
                    prop_assert_eq!(message.timestamp(), Some(timestamp.unwrap_or(7)));
                    let key = headers.get_all("__key").iter().next_back().map(HeaderValue::as_bytes);
                    prop_assert_eq!(message.key(), key);
                    let expected: Vec<(&str, &[u8])> = headers
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_bytes()))
                        .filter(|(name, _)| !NAMES[..5].contains(name))
                        .filter(|(name, _)| !crate::http::TRANSPORT_HEADERS.contains(name))
                        .collect();
                    prop_assert_eq!(message.headers().collect::<Vec<_>>(), expected);
                }
            }
        }
    }
}
