//! `GET /plugins` and `POST /plugins/{name}/reload`: every plugin this host
//! runs, and a way to load a plugin of the directory again now.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{HttpState, error};
use crate::plugin_dir::ReloadError;

/// Every plugin, loaded from a file or from the directory: name, source,
/// component, version, SHA-256, state, pipelines, last error, load time.
pub(super) async fn list(State(state): State<HttpState>) -> Response {
    let plugins = &state.inner.plugins;
    let dir = plugins
        .directory()
        .map(|registry| registry.dir().display().to_string());
    Json(json!({ "dir": dir, "plugins": plugins.statuses() })).into_response()
}

/// Reads the plugin's files again and swaps the result in, even if they did
/// not change. Answers once the new version serves (200, the plugin's
/// status), or with why it was rejected (422) while the old one serves on.
pub(super) async fn reload(State(state): State<HttpState>, Path(name): Path<String>) -> Response {
    let Some(registry) = state.inner.plugins.directory() else {
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
