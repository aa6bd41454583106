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
use crate::pipeline::{MessageFailure, Pipeline};
use crate::runtime::{BatchBuilder, InputMessage};

/// One request waiting for its outcome.
struct BindingRequest {
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    respond: oneshot::Sender<Result<usize, MessageFailure>>,
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
        headers: Vec<(String, Vec<u8>)>,
    ) -> Result<usize, MessageFailure> {
        let (respond, outcome) = oneshot::channel();
        let shutting_down = || MessageFailure {
            kind: "transient",
            message: "the host is shutting down".into(),
            attempts: 0,
        };
        self.requests
            .send(BindingRequest {
                value,
                headers,
                respond,
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
    pipeline.stats.set_running(true);
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
    pipeline.stats.set_running(false);
}

async fn process(binding: String, pipeline: Arc<Pipeline>, requests: Vec<BindingRequest>) {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .ok();
    let mut builder = BatchBuilder::new(&binding);
    for request in &requests {
        let message = InputMessage {
            topic: &binding,
            partition: -1,
            offset: -1,
            timestamp,
            key: None,
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
    for (request, result) in requests.into_iter().zip(results) {
        // A dead-lettered message is handled: Dapr must not redeliver it.
        let outcome = match result.failure {
            Some(failure) if !result.dead_lettered => Err(failure),
            _ => confirm_all(&pipeline, result.deliveries).await,
        };
        let _ = request.respond.send(outcome);
    }
}

async fn confirm_all(
    pipeline: &Pipeline,
    deliveries: Vec<crate::sink::PendingDelivery>,
) -> Result<usize, MessageFailure> {
    let count = deliveries.len();
    for delivery in deliveries {
        pipeline
            .producer
            .confirm(delivery)
            .await
            .map_err(|error| MessageFailure {
                kind: "transient",
                message: error.to_string(),
                attempts: 1,
            })?;
    }
    Ok(count)
}
