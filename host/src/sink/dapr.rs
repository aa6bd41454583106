//! Outputs to a Dapr output binding, through the sidecar's HTTP API.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DaprOutputError {
    #[error("dapr output binding {binding}: request failed: {source}")]
    Request {
        binding: String,
        source: reqwest::Error,
    },
    #[error("dapr output binding {binding} answered {status}: {body}")]
    Status {
        binding: String,
        status: u16,
        body: String,
    },
}

/// Posts outputs to `POST {sidecar}/v1.0/bindings/{binding}`; a 2xx answer
/// is the acknowledgement.
#[derive(Clone)]
pub struct DaprOutput {
    client: reqwest::Client,
    url: String,
    binding: String,
}

impl DaprOutput {
    pub fn new(sidecar: &str, binding: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: format!("{}/v1.0/bindings/{binding}", sidecar.trim_end_matches('/')),
            binding: binding.to_owned(),
        }
    }

    pub async fn send<'h>(
        &self,
        key: Option<&[u8]>,
        value: &[u8],
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<(), DaprOutputError> {
        let mut metadata = BTreeMap::new();
        for (name, header_value) in headers {
            metadata.insert(
                name.to_owned(),
                String::from_utf8_lossy(header_value).into_owned(),
            );
        }
        if let Some(key) = key {
            // Dapr's Kafka binding keys the record by `partitionKey`.
            metadata.insert(
                "partitionKey".to_owned(),
                String::from_utf8_lossy(key).into_owned(),
            );
        }
        // JSON values travel as JSON; anything else as a string.
        let data = serde_json::from_slice::<Value>(value)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(value).into_owned()));
        let body = json!({ "operation": "create", "data": data, "metadata": metadata });
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|source| DaprOutputError::Request {
                binding: self.binding.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(DaprOutputError::Status {
            binding: self.binding.clone(),
            status: status.as_u16(),
            body: response.text().await.unwrap_or_default(),
        })
    }
}
