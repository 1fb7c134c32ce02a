//! The HTTP admin server (axum), on its own port: 8080 by default, bound to
//! loopback, off with `admin_port = 0`.
//!
//! - `/commands/<name>`: ZooKeeper's AdminServer commands, JSON shaped like
//!   ZooKeeper's ([`commands`]).
//! - `/v1/sessions`, `/v1/sessions/{id}`: list, show, force off ([`sessions`]).
//! - `/v1/services`: the Dubbo registry view ([`services`]).
//! - `/metrics`: Prometheus text ([`prometheus`]).
//! - `/v1/access`, `/v1/log/level`: read and change the connection rules and
//!   the log level ([`controls`]).
//!
//! Calls that change state need `Authorization: Bearer <admin_token>` when a
//! token is configured, and are refused outright when the server is bound
//! beyond loopback without one.

pub mod commands;
pub mod controls;
pub mod prometheus;
pub mod services;
pub mod sessions;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::core::Core;

/// What every handler gets.
#[derive(Clone)]
pub struct AdminState {
    pub core: Arc<Mutex<Core>>,
    pub guard: WriteGuard,
}

/// Who may call what changes state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteGuard {
    /// Loopback without a token: anyone who can reach the port.
    Open,
    /// The bearer token must match.
    Token(String),
    /// Bound beyond loopback with no token configured: every change refused.
    Refused,
}

impl WriteGuard {
    pub fn for_config(bind: IpAddr, token: Option<&str>) -> WriteGuard {
        match token {
            Some(token) if !token.is_empty() => WriteGuard::Token(token.to_string()),
            _ if bind.is_loopback() => WriteGuard::Open,
            _ => WriteGuard::Refused,
        }
    }

    /// Whether a state-changing request with these headers may proceed.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self {
            WriteGuard::Open => Ok(()),
            WriteGuard::Refused => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the admin server is not on loopback and no admin_token is set: changes are refused",
            )),
            WriteGuard::Token(token) => {
                let given = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                    Ok(())
                } else {
                    Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "this call changes state: send Authorization: Bearer <admin_token>",
                    ))
                }
            }
        }
    }
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error answered as `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The routes, over a state.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/commands", get(commands::index))
        .route("/commands/", get(commands::index))
        .route("/commands/{name}", get(commands::run).post(commands::run))
        .route("/metrics", get(prometheus::scrape))
        .route("/v1/sessions", get(sessions::list))
        .route(
            "/v1/sessions/{id}",
            get(sessions::show).delete(sessions::remove),
        )
        .route("/v1/services", get(services::view))
        .route(
            "/v1/access",
            get(controls::access).put(controls::set_access),
        )
        .route(
            "/v1/log/level",
            get(controls::log_level).put(controls::set_log_level),
        )
        .with_state(state)
}

/// Starts the admin server if it is on. A port that cannot be bound is
/// logged and the server runs without it, as ZooKeeper does.
pub async fn start(
    config: &Config,
    core: Arc<Mutex<Core>>,
    shutdown: CancellationToken,
) -> Option<SocketAddr> {
    if config.admin_port == 0 {
        return None;
    }
    let guard = WriteGuard::for_config(config.admin_bind, config.admin_token.as_deref());
    if guard == WriteGuard::Refused {
        tracing::warn!(
            bind = %config.admin_bind,
            "the admin server is not on loopback and no admin_token is set: \
             it will refuse every call that changes state"
        );
    }
    let listener = match tokio::net::TcpListener::bind((config.admin_bind, config.admin_port)).await
    {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(
                port = config.admin_port,
                bind = %config.admin_bind,
                %err,
                "cannot start the admin server; serving clients without it"
            );
            return None;
        }
    };
    let addr = listener.local_addr().ok()?;
    let app = router(AdminState { core, guard });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(err) = served {
            tracing::error!(%err, "the admin server stopped");
        }
    });
    tracing::info!("admin server on http://{addr}");
    Some(addr)
}

/// A session id as the API accepts it: `0x`-prefixed hex, as ZooKeeper shows
/// ids, or decimal.
pub fn parse_session_id(text: &str) -> Option<i64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as i64),
        None => text.parse::<i64>().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_in_hex_or_decimal() {
        assert_eq!(parse_session_id("0x100000abc"), Some(0x1_0000_0abc));
        assert_eq!(
            parse_session_id("72058394762870784"),
            Some(72058394762870784)
        );
        assert_eq!(
            parse_session_id("0xff00000000000001"),
            Some(0xff00_0000_0000_0001_u64 as i64)
        );
        assert_eq!(parse_session_id("zz"), None);
    }

    #[test]
    fn writes_need_the_token_or_loopback() {
        let loopback: IpAddr = [127, 0, 0, 1].into();
        let any: IpAddr = [0, 0, 0, 0].into();
        assert_eq!(WriteGuard::for_config(loopback, None), WriteGuard::Open);
        assert_eq!(WriteGuard::for_config(any, None), WriteGuard::Refused);
        let guard = WriteGuard::for_config(any, Some("s3cret"));
        let mut headers = HeaderMap::new();
        assert_eq!(
            guard.check(&headers).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        headers.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(guard.check(&headers).is_ok());
        headers.insert("authorization", "Bearer s3creT".parse().unwrap());
        assert!(guard.check(&headers).is_err());
        assert!(WriteGuard::Refused.check(&HeaderMap::new()).is_err());
    }
}
