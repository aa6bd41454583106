//! Who may use which endpoint. The admin endpoints (and, when configured,
//! metrics and stats) want the admin token as a bearer token; the Dapr
//! binding endpoints want Dapr's app API token in `dapr-api-token`. Health
//! is always open. A refused request changes nothing: the guard answers
//! before the endpoint runs.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error;
use crate::client_events::LogLimiter;
use crate::config::{ADMIN_TOKEN_ENV, HttpTokens, Token};

/// The header daprd sends its app API token in.
pub const DAPR_API_TOKEN_HEADER: &str = "dapr-api-token";

/// What the HTTP server asks of each kind of request.
#[derive(Debug)]
pub struct HttpAccess {
    admin: AdminAccess,
    dapr_app_token: Option<Token>,
    /// `http.metrics_require_admin_token`: metrics and stats are admin
    /// endpoints too.
    pub metrics_require_admin_token: bool,
}

/// How the admin endpoints are guarded.
#[derive(Debug)]
pub enum AdminAccess {
    /// Requests carry `Authorization: Bearer <token>`.
    Token(Token),
    /// No token, and the server listens on loopback only: whoever reaches
    /// it runs on this machine.
    Loopback,
    /// No token, and the server listens beyond loopback: every request is
    /// refused, so that an open network never reaches an unauthenticated
    /// reload.
    Refused { listen: SocketAddr },
}

impl HttpAccess {
    /// The access rules for a server on `listen` with `tokens`.
    pub fn new(tokens: HttpTokens, listen: SocketAddr, metrics_require_admin_token: bool) -> Self {
        let admin = match tokens.admin {
            Some(token) => AdminAccess::Token(token),
            None if listen.ip().is_loopback() => AdminAccess::Loopback,
            None => AdminAccess::Refused { listen },
        };
        Self {
            admin,
            dapr_app_token: tokens.dapr_app,
            metrics_require_admin_token,
        }
    }

    /// Says at start what is guarded and how; warns when the admin
    /// endpoints are refused for want of a token.
    pub fn log(&self) {
        let dapr = self.dapr_app_token.as_ref().map(Token::origin);
        match &self.admin {
            AdminAccess::Token(token) => tracing::info!(
                admin_token = token.origin(),
                dapr_app_token = dapr,
                metrics_require_admin_token = self.metrics_require_admin_token,
                "admin endpoints need the admin token"
            ),
            AdminAccess::Loopback => tracing::info!(
                dapr_app_token = dapr,
                "admin endpoints open to this machine only: no admin token, listening on loopback"
            ),
            AdminAccess::Refused { listen } => tracing::warn!(
                %listen,
                dapr_app_token = dapr,
                "admin endpoints refused (403): no admin token and the listen address is not \
                 loopback; set http.admin_token_file or {ADMIN_TOKEN_ENV}"
            ),
        }
    }
}

/// Guards an admin endpoint: 401 without the admin token or with another,
/// 403 when no token is configured and the server is not on loopback.
pub async fn require_admin(
    State(access): State<Arc<HttpAccess>>,
    request: Request,
    next: Next,
) -> Response {
    let token = match &access.admin {
        AdminAccess::Loopback => return next.run(request).await,
        AdminAccess::Refused { listen } => {
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "admin endpoints are off: this host listens on {listen}, which is not \
                     loopback, and has no admin token; set `[http] admin_token_file` or the \
                     environment variable {ADMIN_TOKEN_ENV}, then send `Authorization: Bearer \
                     <token>`"
                ),
            );
        }
        AdminAccess::Token(token) => token,
    };
    match bearer_token(request.headers()) {
        Some(presented) if token.matches(presented) => next.run(request).await,
        Some(_) => {
            refused("admin", request.uri().path());
            unauthorized(
                "the admin token does not match",
                r#"Bearer realm="runnel", error="invalid_token""#,
            )
        }
        None => {
            refused("admin", request.uri().path());
            unauthorized(
                "this endpoint needs the admin token: send `Authorization: Bearer <token>`",
                r#"Bearer realm="runnel""#,
            )
        }
    }
}

/// Guards a Dapr binding endpoint when an app API token is configured: 401
/// unless `dapr-api-token` carries it. The message is neither processed
/// nor counted.
pub async fn require_dapr_app_token(
    State(access): State<Arc<HttpAccess>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &access.dapr_app_token else {
        return next.run(request).await;
    };
    let presented = request.headers().get(DAPR_API_TOKEN_HEADER);
    if presented.is_some_and(|value| token.matches(value.as_bytes())) {
        return next.run(request).await;
    }
    refused("dapr", request.uri().path());
    // No WWW-Authenticate: `dapr-api-token` is no registered scheme, and
    // daprd does not answer challenges.
    let message = if presented.is_some() {
        "the dapr-api-token header does not match Dapr's app API token"
    } else {
        "this endpoint needs Dapr's app API token in the dapr-api-token header"
    };
    error(StatusCode::UNAUTHORIZED, message)
}

/// The token of an `Authorization: Bearer <token>` header; the scheme's
/// case does not matter (RFC 9110, 11.1).
fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(b"bearer ".len())?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
}

fn unauthorized(message: &str, challenge: &'static str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// Logs a refused request, at most once per log summary interval for each
/// kind of token, with how many were held back.
fn refused(kind: &'static str, path: &str) {
    if let Some(held_back) = LogLimiter::global().admit(&format!("refused-{kind}-token")) {
        tracing::warn!(
            token = kind,
            path,
            held_back,
            "request refused: missing or wrong token"
        );
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// An endpoint that says it ran, behind `guard`.
    fn guarded<F, Fut>(access: HttpAccess, guard: F) -> Router
    where
        F: Fn(State<Arc<HttpAccess>>, Request, Next) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        Router::new()
            .route("/guarded", get(async || "ran"))
            .route_layer(axum::middleware::from_fn_with_state(
                Arc::new(access),
                guard,
            ))
    }

    /// `GET /guarded` with `headers`: the status, the WWW-Authenticate
    /// header and the body.
    async fn call(router: Router, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let mut request = axum::http::Request::get("/guarded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|value| value.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, challenge, String::from_utf8(body.to_vec()).unwrap())
    }

    fn tokens(admin: Option<&str>, dapr_app: Option<&str>) -> HttpTokens {
        HttpTokens {
            admin: admin.map(|secret| Token::new(secret, "test")),
            dapr_app: dapr_app.map(|secret| Token::new(secret, "test")),
        }
    }

    #[tokio::test]
    async fn off_loopback_without_a_token_the_admin_endpoints_answer_403_saying_how_to_fix_it() {
        let access = HttpAccess::new(tokens(None, None), "0.0.0.0:3000".parse().unwrap(), false);
        let (status, challenge, body) = call(guarded(access, require_admin), &[]).await;
        assert_eq!((status, challenge), (403, None));
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("listens on 0.0.0.0:3000"), "{message}");
        assert!(
            message.contains("`[http] admin_token_file`") && message.contains("RUNNEL_ADMIN_TOKEN"),
            "{message}"
        );

        let access = HttpAccess::new(tokens(None, None), "127.0.0.1:3000".parse().unwrap(), false);
        let (status, _, body) = call(guarded(access, require_admin), &[]).await;
        assert_eq!((status, body.as_str()), (200, "ran"));
    }

    #[tokio::test]
    async fn the_admin_guard_wants_the_bearer_token_and_challenges_without_it() {
        let router = || {
            let access = HttpAccess::new(
                tokens(Some("admin-secret"), None),
                "0.0.0.0:3000".parse().unwrap(),
                false,
            );
            guarded(access, require_admin)
        };
        let (status, challenge, body) = call(router(), &[]).await;
        assert_eq!(status, 401);
        assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="runnel""#));
        assert!(body.contains("\"error\""), "{body}");
        let (status, challenge, _) =
            call(router(), &[("authorization", "Bearer admin-secreT")]).await;
        assert_eq!(status, 401);
        assert!(challenge.unwrap().contains("invalid_token"));
        let (status, _, body) = call(router(), &[("authorization", "Bearer admin-secret")]).await;
        assert_eq!((status, body.as_str()), (200, "ran"));
    }

    #[tokio::test]
    async fn the_dapr_guard_wants_the_app_api_token_only_when_one_is_configured() {
        let listen: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let open = HttpAccess::new(tokens(None, None), listen, false);
        let (status, _, _) = call(guarded(open, require_dapr_app_token), &[]).await;
        assert_eq!(status, 200);
        let router = || {
            let access = HttpAccess::new(tokens(None, Some("app-secret")), listen, false);
            guarded(access, require_dapr_app_token)
        };
        let (status, _, body) = call(router(), &[]).await;
        assert_eq!(status, 401);
        assert!(body.contains("dapr-api-token"), "{body}");
        let (status, _, _) = call(router(), &[("dapr-api-token", "app-secre")]).await;
        assert_eq!(status, 401);
        let (status, _, _) = call(router(), &[("authorization", "Bearer app-secret")]).await;
        assert_eq!(status, 401, "only the dapr-api-token header counts");
        let (status, _, _) = call(router(), &[("dapr-api-token", "app-secret")]).await;
        assert_eq!(status, 200);
    }

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn a_bearer_token_is_read_whatever_the_scheme_s_case() {
        assert_eq!(
            bearer_token(&headers("Bearer abc")),
            Some(b"abc".as_slice())
        );
        assert_eq!(
            bearer_token(&headers("bearer  abc ")),
            Some(b"abc".as_slice())
        );
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn without_a_token_only_loopback_serves_the_admin_endpoints() {
        let access = |listen: &str| {
            HttpAccess::new(HttpTokens::default(), listen.parse().unwrap(), false).admin
        };
        assert!(matches!(access("127.0.0.1:3000"), AdminAccess::Loopback));
        assert!(matches!(access("[::1]:3000"), AdminAccess::Loopback));
        assert!(matches!(
            access("0.0.0.0:3000"),
            AdminAccess::Refused { .. }
        ));
        assert!(matches!(
            access("10.1.2.3:3000"),
            AdminAccess::Refused { .. }
        ));
        let tokens = HttpTokens {
            admin: Some(Token::new("t", "test")),
            dapr_app: None,
        };
        let with_token = HttpAccess::new(tokens, "0.0.0.0:3000".parse().unwrap(), false);
        assert!(matches!(with_token.admin, AdminAccess::Token(_)));
    }
}
