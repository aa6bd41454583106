//! `GET /plugins` and `POST /plugins/{name}/reload`: what the plugin
//! directory serves on this host, and a way to load a plugin again now.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{HttpState, error};
use crate::plugin_dir::ReloadError;

/// Every plugin of the directory: name, version, state, pipelines, last
/// error, load time.
pub(super) async fn list(State(state): State<HttpState>) -> Response {
    match &state.inner.plugins {
        Some(registry) => Json(json!({
            "dir": registry.dir().display().to_string(),
            "plugins": registry.statuses(),
        }))
        .into_response(),
        None => Json(json!({ "dir": null, "plugins": [] })).into_response(),
    }
}

/// Reads the plugin's files again and swaps the result in, even if they did
/// not change. Answers once the new version serves (200, the plugin's
/// status), or with why it was rejected (422) while the old one serves on.
pub(super) async fn reload(State(state): State<HttpState>, Path(name): Path<String>) -> Response {
    let Some(registry) = &state.inner.plugins else {
        return error(
            StatusCode::NOT_FOUND,
            "this host has no plugin directory (`[plugins] dir`)",
        );
    };
    match registry.reload(&name).await {
        Ok(status) => Json(status).into_response(),
        Err(unknown @ ReloadError::Unknown { .. }) => {
            error(StatusCode::NOT_FOUND, unknown.to_string())
        }
        Err(ReloadError::Rejected(reason)) => error(StatusCode::UNPROCESSABLE_ENTITY, reason),
    }
}
