//! Run-time controls: the connection access rules (`/v1/access`) and the
//! log level (`/v1/log/level`). Changing either needs the write guard.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AdminState, ApiError};
use crate::access::{parse_list, AccessView};
use crate::logging;

/// `GET /v1/access`.
pub async fn access(State(state): State<AdminState>) -> Json<AccessView> {
    let access = state.core.lock().access.clone();
    Json(access.view())
}

/// A change to the rules: what is left out stays as it is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessChange {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub max_client_cnxns: Option<u32>,
    pub max_connections: Option<u32>,
}

/// `PUT /v1/access`: takes effect for the next connection; open ones stay.
pub async fn set_access(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Json(change): Json<AccessChange>,
) -> Result<Json<AccessView>, ApiError> {
    state.guard.check(&headers)?;
    let access = state.core.lock().access.clone();
    let mut rules = access.rules();
    if let Some(allow) = &change.allow {
        rules.allow = parse_list(allow).map_err(ApiError::bad_request)?;
    }
    if let Some(deny) = &change.deny {
        rules.deny = parse_list(deny).map_err(ApiError::bad_request)?;
    }
    if let Some(max) = change.max_client_cnxns {
        rules.max_per_address = max;
    }
    if let Some(max) = change.max_connections {
        rules.max_total = max;
    }
    tracing::info!(?rules, "access rules changed by the admin API");
    access.replace(rules);
    Ok(Json(access.view()))
}

fn log_control() -> Result<&'static logging::LogControl, ApiError> {
    logging::control().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "this process's logger was not installed by canopy",
        )
    })
}

/// `GET /v1/log/level`.
pub async fn log_level() -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "level": log_control()?.level() })))
}

#[derive(Debug, Deserialize)]
pub struct LevelChange {
    pub level: String,
}

/// `PUT /v1/log/level` with `{"level": "debug"}` (any tracing filter).
pub async fn set_log_level(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Json(change): Json<LevelChange>,
) -> Result<Json<Value>, ApiError> {
    state.guard.check(&headers)?;
    let control = log_control()?;
    control
        .set_level(&change.level)
        .map_err(ApiError::bad_request)?;
    Ok(Json(json!({ "level": control.level() })))
}
