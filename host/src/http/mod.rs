//! The HTTP surface: Dapr input bindings, stats, Prometheus metrics,
//! health, and the plugins the host runs. Every error is a JSON body `{"error": ...}` with a status that
//! says what went wrong. Who may call what is `access.rs`'s business.

mod access;
mod plugins;
mod tls;

pub use access::{AdminAccess, DAPR_API_TOKEN_HEADER, HttpAccess};
pub use tls::{TlsError, server_config as tls_server_config};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router, middleware};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::app::Health;
use crate::launcher::LivePipelines;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::plugins::HostPlugins;

/// Request headers that describe the HTTP transport or carry a credential,
/// not the message; the rest (Dapr's metadata among them) become message
/// headers. A credential must never travel on into Kafka.
pub(crate) const TRANSPORT_HEADERS: &[&str] = &[
    "authorization",
    DAPR_API_TOKEN_HEADER,
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "te",
    "upgrade",
    "expect",
    "accept",
    "accept-encoding",
    "user-agent",
];

#[derive(Clone)]
pub struct HttpState {
    inner: Arc<HttpInner>,
}

struct HttpInner {
    live: Arc<LivePipelines>,
    plugins: Arc<HostPlugins>,
    metrics: Metrics,
    health: Arc<Health>,
}

impl HttpState {
    pub fn new(
        live: Arc<LivePipelines>,
        plugins: Arc<HostPlugins>,
        metrics: Metrics,
        health: Arc<Health>,
    ) -> Self {
        Self {
            inner: Arc::new(HttpInner {
                live,
                plugins,
                metrics,
                health,
            }),
        }
    }
}

/// The largest request body the host reads (`http.max_body_bytes`), for the
/// answer to a larger one.
#[derive(Debug, Clone, Copy)]
struct BodyLimit(usize);

/// Every endpoint, each behind the guard `access` puts it under: the admin
/// token for the plugins (and for metrics and stats when configured),
/// Dapr's app API token for the bindings, nothing for health.
pub fn router(state: HttpState, max_body_bytes: usize, access: HttpAccess) -> Router {
    let access = Arc::new(access);
    let mut admin = Router::new().route("/plugins", get(plugins::list)).route(
        "/plugins/{name}/reload",
        axum::routing::post(plugins::reload),
    );
    let mut open = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let observe = Router::new()
        .route("/metrics", get(metrics))
        .route("/messages/v1/stats", get(all_stats))
        .route("/messages/v1/stats/{name}", get(one_stats));
    if access.metrics_require_admin_token {
        admin = admin.merge(observe);
    } else {
        open = open.merge(observe);
    }
    let admin = admin.route_layer(middleware::from_fn_with_state(
        access.clone(),
        access::require_admin,
    ));
    let bindings = Router::new()
        .route(
            "/{binding}",
            axum::routing::post(binding_message).options(binding_options),
        )
        .route_layer(middleware::from_fn_with_state(
            access,
            access::require_dapr_app_token,
        ));
    open.merge(admin)
        .merge(bindings)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(Extension(BodyLimit(max_body_bytes)))
        .with_state(state)
}

/// Binds `listen` and serves until `shutdown`, then finishes the requests
/// in flight; over TLS with `tls`. Returns the bound address (useful with
/// port 0) and the server task.
pub async fn serve(
    listen: SocketAddr,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let Some(tls) = tls else {
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "http server failed");
            }
        });
        return Ok((address, server));
    };
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        // No deadline here: the host's drain timeout bounds the whole stop.
        stopper.graceful_shutdown(None);
    });
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    let listener = listener.into_std()?;
    let server = tokio::spawn(async move {
        let result = axum_server::from_tcp_rustls(listener, config)
            .handle(handle)
            .serve(router.into_make_service())
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "https server failed");
        }
    });
    Ok((address, server))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A binding request's headers as its message's: all but those of the
/// HTTP exchange itself, in the order `headers` holds them.
pub(crate) fn message_headers(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(name, _)| !TRANSPORT_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn healthz() -> Response {
    Json(json!({ "status": "alive" })).into_response()
}

/// Ready when start-up has loaded the plugins, every pipeline the host is
/// configured to run has a plugin version serving it, and a broker answers.
async fn readyz(State(state): State<HttpState>) -> Response {
    let health = &state.inner.health;
    let unserved = state.inner.plugins.unserved();
    let reasons = health.not_ready_reasons(&unserved);
    let ready = reasons.is_empty();
    let body = json!({
        "ready": ready,
        "broker_reachable": health.broker_reachable(),
        "plugins_loaded": health.plugins_loaded() && unserved.is_empty(),
        "reason": (!ready).then(|| reasons.join("; ")),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<HttpState>) -> Response {
    let metrics = &state.inner.metrics;
    for (name, pipeline) in state.inner.live.pipelines() {
        let tenant = &pipeline.tenant;
        metrics.record_tenant(&name, tenant.sample());
        metrics.record_plugin_memory_limit(tenant.host_memory_limit());
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.inner.metrics.render(),
    )
        .into_response()
}

/// Stats are found by pipeline name or by the name of a Dapr binding that
/// feeds a pipeline.
fn find_pipeline(state: &HttpState, name: &str) -> Option<Arc<Pipeline>> {
    let live = &state.inner.live;
    live.binding(name)
        .map(|binding| binding.pipeline.clone())
        .or_else(|| live.pipeline(name))
}

async fn one_stats(State(state): State<HttpState>, Path(name): Path<String>) -> Response {
    match find_pipeline(&state, &name) {
        Some(pipeline) => Json(pipeline.recorder.stats().snapshot()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("unknown pipeline or binding {name}"),
        ),
    }
}

async fn all_stats(State(state): State<HttpState>) -> Response {
    let pipelines: BTreeMap<String, _> = state
        .inner
        .live
        .pipelines()
        .into_iter()
        .map(|(name, pipeline)| (name, pipeline.recorder.stats().snapshot()))
        .collect();
    Json(json!({ "pipelines": pipelines })).into_response()
}

/// Dapr asks this once at start-up for each binding it delivers.
async fn binding_options(State(state): State<HttpState>, Path(binding): Path<String>) -> Response {
    if state.inner.live.binding(&binding).is_some() {
        StatusCode::OK.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("unknown binding {binding}"))
    }
}

async fn binding_message(
    State(state): State<HttpState>,
    Path(binding): Path<String>,
    Extension(BodyLimit(limit)): Extension<BodyLimit>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(input) = state.inner.live.binding(&binding) else {
        return error(StatusCode::NOT_FOUND, format!("unknown binding {binding}"));
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            state
                .inner
                .metrics
                .record_binding_request(&binding, false, 0.0);
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the request body is larger than the limit of {limit} bytes \
                     (http.max_body_bytes)"
                )
            } else {
                rejection.body_text()
            };
            return error(status, message);
        }
    };
    let started = Instant::now();
    let outcome = input.handle(body.to_vec(), message_headers(&headers)).await;
    let seconds = started.elapsed().as_secs_f64();
    state
        .inner
        .metrics
        .record_binding_request(&binding, outcome.is_ok(), seconds);
    match outcome {
        Ok(outputs) => Json(json!({ "status": "ok", "outputs": outputs })).into_response(),
        Err(failure) => {
            // Dapr redelivers on any error status; 503 says a retry may
            // well succeed, 500 that the message itself failed.
            let status = if failure.kind.may_pass_later() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (
                status,
                Json(json!({
                    "error": failure.message,
                    "kind": failure.kind.as_str(),
                    "binding": binding,
                })),
            )
                .into_response()
        }
    }
}
