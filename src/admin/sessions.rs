//! `/v1/sessions`: who is connected, and forcing a session off.
//!
//! Ids are shown as ZooKeeper shows them (`0x` hex) and accepted in that form
//! or in decimal. `DELETE` ends the session exactly as an expiry does: one
//! close-session change removes its ephemeral nodes and fires the watches,
//! its connection is closed, and the client, on reconnecting, is told its
//! session has expired.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::{parse_session_id, AdminState, ApiError};
use crate::core::{wall_clock_ms, Core};
use crate::session::Session;

/// A session as the API shows it.
#[derive(Debug, Serialize)]
pub struct SessionView {
    /// `0x` hex, as ZooKeeper's tools show it.
    pub id: String,
    /// Where its client connects from, if it is connected now.
    pub client_address: Option<String>,
    pub connected: bool,
    pub timeout_ms: i32,
    /// When the server last heard from its client (wall clock, ms since the
    /// epoch), to within the expiry resolution.
    pub last_seen_ms: i64,
    /// How long until it expires if its client stays silent.
    pub expires_in_ms: i64,
    pub ephemeral_count: usize,
    /// Only in the single-session view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemerals: Option<Vec<String>>,
}

fn view(
    core: &Core,
    session: &Session,
    addresses: &HashMap<i64, String>,
    detail: bool,
) -> SessionView {
    let now = core.now_ms() as i64;
    // The tracker keeps the deadline (last touch + timeout, rounded up to a
    // bucket); the last touch is that minus the timeout.
    let deadline = session.expires_at as i64;
    let last_seen_mono = (deadline - session.timeout_ms as i64).min(now);
    let mut ephemerals = core.tree.ephemerals_of(session.id);
    ephemerals.sort();
    SessionView {
        id: format!("0x{:x}", session.id),
        client_address: addresses.get(&session.id).cloned(),
        connected: addresses.contains_key(&session.id),
        timeout_ms: session.timeout_ms,
        last_seen_ms: wall_clock_ms() - (now - last_seen_mono),
        expires_in_ms: (deadline - now).max(0),
        ephemeral_count: ephemerals.len(),
        ephemerals: detail.then_some(ephemerals),
    }
}

/// Client address per attached session.
fn addresses(core: &Core) -> HashMap<i64, String> {
    core.conns
        .values()
        .filter(|c| c.session_id != 0)
        .map(|c| (c.session_id, c.addr.to_string()))
        .collect()
}

/// `GET /v1/sessions`.
pub async fn list(State(state): State<AdminState>) -> Json<Value> {
    let core = state.core.lock();
    let addresses = addresses(&core);
    let mut sessions: Vec<&Session> = core.sessions.iter().collect();
    sessions.sort_by_key(|s| s.id);
    let views: Vec<SessionView> = sessions
        .into_iter()
        .map(|s| view(&core, s, &addresses, false))
        .collect();
    Json(json!({ "count": views.len(), "sessions": views }))
}

fn lookup(text: &str) -> Result<i64, ApiError> {
    parse_session_id(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{text:?} is not a session id (0x-prefixed hex or decimal)"
        ))
    })
}

/// `GET /v1/sessions/{id}`.
pub async fn show(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let id = lookup(&id)?;
    let core = state.core.lock();
    let session = core
        .sessions
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no session 0x{id:x}")))?;
    Ok(Json(view(&core, session, &addresses(&core), true)))
}

/// `DELETE /v1/sessions/{id}`: expire the session now.
pub async fn remove(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.guard.check(&headers)?;
    let id = lookup(&id)?;
    let mut core = state.core.lock();
    if core.sessions.get(id).is_none() {
        return Err(ApiError::not_found(format!("no session 0x{id:x}")));
    }
    let ephemerals = core.tree.ephemerals_of(id).len();
    tracing::info!(
        session = format!("0x{id:x}"),
        ephemerals,
        "session expired by the admin API"
    );
    // The very path an expiry takes.
    let header = core.close_session(id, "session expired");
    Ok(Json(json!({
        "id": format!("0x{id:x}"),
        "expired": true,
        "ephemerals_removed": ephemerals,
        "zxid": format!("0x{:x}", header.zxid),
    })))
}
