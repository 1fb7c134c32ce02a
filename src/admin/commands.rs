//! ZooKeeper's AdminServer commands under `/commands/<name>`: the same names
//! (and the four-letter aliases ZooKeeper accepts), the same JSON keys, and
//! `"command"` and `"error"` in every answer. Session ids are JSON numbers,
//! as ZooKeeper prints them there. Reference answers from ZooKeeper 3.8 are
//! in tests/reference/admin/commands.txt.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::AdminState;
use crate::core::{wall_clock_ms, Core};
use crate::fourlw::{millis_since_epoch, short_op_name, version_string};
use crate::monitor;
use crate::storage::files;

/// Every command: its name, then the aliases it also answers to.
pub const COMMANDS: &[(&str, &[&str])] = &[
    ("configuration", &["conf", "config"]),
    ("connection_stat_reset", &["crst"]),
    ("connections", &["cons"]),
    ("dirs", &[]),
    ("dump", &[]),
    ("environment", &["envi", "envinfo"]),
    ("hash", &[]),
    ("is_read_only", &["isro"]),
    ("last_snapshot", &["lsnp"]),
    ("monitor", &["mntr"]),
    ("ruok", &[]),
    ("server_stats", &["srvr"]),
    ("stat_reset", &["srst"]),
    ("stats", &["stat"]),
    ("watch_summary", &["wchs"]),
    ("watches", &["wchc"]),
    ("watches_by_path", &["wchp"]),
];

/// The primary name of a command or alias.
pub fn resolve(name: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|(primary, aliases)| *primary == name || aliases.contains(&name))
        .map(|(primary, _)| *primary)
}

/// Commands that change state, and so pass the write guard.
fn changes_state(command: &str) -> bool {
    matches!(command, "connection_stat_reset" | "stat_reset")
}

/// `GET /commands`: links to every command, as ZooKeeper's index page.
pub async fn index() -> Html<String> {
    let mut page = String::new();
    for (name, _) in COMMANDS {
        page.push_str(&format!("<a href=\"/commands/{name}\">{name}</a>\n<br/>\n"));
    }
    Html(page)
}

/// `GET /commands/<name>`.
pub async fn run(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(command) = resolve(&name) else {
        // ZooKeeper answers an unknown command with 200 and the error inside.
        return Json(json!({ "command": name, "error": format!("Unknown command: {name}") }))
            .into_response();
    };
    if changes_state(command) {
        if let Err(err) = state.guard.check(&headers) {
            return err.into_response();
        }
    }
    let mut core = state.core.lock();
    let mut body = match execute(&mut core, command) {
        Some(body) => body,
        None => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "command": command, "error": "not available" })),
            )
                .into_response()
        }
    };
    body.insert("command".into(), command.into());
    body.insert("error".into(), Value::Null);
    Json(Value::Object(body)).into_response()
}

/// The body of a command, without `command` and `error`.
pub fn execute(core: &mut Core, command: &str) -> Option<Map<String, Value>> {
    let value = match command {
        "ruok" => json!({}),
        "configuration" => configuration(core),
        "connections" => json!({
            "connections": connections(core, true),
            "secure_connections": [],
        }),
        "connection_stat_reset" => {
            for conn in core.conns.values_mut() {
                conn.stats.reset();
            }
            json!({})
        }
        "stat_reset" => {
            core.stats.reset();
            json!({})
        }
        "dirs" => {
            let size = monitor::data_dir_size(&core.config.data_dir);
            json!({ "datadir_size": size, "logdir_size": size })
        }
        "dump" => dump(core),
        "environment" => environment(core),
        "hash" => json!({ "digests": [] }),
        "is_read_only" => json!({ "read_only": false }),
        "last_snapshot" => last_snapshot(core),
        "monitor" => {
            let mut map = Map::new();
            for (key, value) in monitor::figures(core) {
                map.insert(key, value.to_json());
            }
            Value::Object(map)
        }
        "server_stats" => server_stats(core, false),
        "stats" => server_stats(core, true),
        "watch_summary" => {
            let (conns, paths, total) = core.watches.data_summary();
            json!({ "num_connections": conns, "num_paths": paths, "num_total_watches": total })
        }
        "watches" => {
            let mut by_session: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (conn_id, paths) in core.watches.data_paths_by_watcher() {
                let session = core.conns.get(&conn_id).map_or(0, |c| c.session_id);
                by_session
                    .entry(session.to_string())
                    .or_default()
                    .extend(paths);
            }
            json!({ "session_id_to_watched_paths": by_session })
        }
        "watches_by_path" => {
            let mut by_path: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            for (path, watchers) in core.watches.data_watchers_by_path() {
                let mut sessions: Vec<i64> = watchers
                    .iter()
                    .map(|w| core.conns.get(w).map_or(0, |c| c.session_id))
                    .collect();
                sessions.sort();
                by_path.insert(path, sessions);
            }
            json!({ "path_to_session_ids": by_path })
        }
        _ => return None,
    };
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn configuration(core: &Core) -> Value {
    let c = &core.config;
    json!({
        "client_port": c.port,
        "data_dir": c.data_dir.display().to_string(),
        "data_log_dir": c.data_dir.display().to_string(),
        "tick_time": c.tick_time_ms,
        "max_client_cnxns": c.max_client_cnxns,
        "min_session_timeout": c.min_session_timeout_ms,
        "max_session_timeout": c.max_session_timeout_ms,
        "server_id": c.server_id,
        "client_port_listen_backlog": -1,
    })
}

/// One object per connection; `full` adds the session fields (`connections`)
/// that `stats` leaves out.
fn connections(core: &Core, full: bool) -> Vec<Value> {
    core.conns_in_order()
        .into_iter()
        .map(|conn| {
            let s = &conn.stats;
            let mut object = json!({
                "remote_socket_address": conn.addr.to_string(),
                "interest_ops": 1,
                "outstanding_requests": 0,
                "packets_received": s.received,
                "packets_sent": s.sent,
            });
            if full && conn.session_id != 0 {
                let (min, avg, max) = s.latency.millis();
                let extra = json!({
                    "session_id": conn.session_id,
                    "last_operation": s.last_op.map_or("NA", short_op_name),
                    "established": millis_since_epoch(s.established) as u64,
                    "session_timeout": conn.timeout_ms,
                    "last_cxid": s.last_cxid,
                    "last_zxid": s.last_zxid,
                    "last_response_time": s.last_response.map_or(0, |t| millis_since_epoch(t) as u64),
                    "last_latency": s.latency.last_micros / 1000,
                    "min_latency": min as u64,
                    "avg_latency": avg as u64,
                    "max_latency": max.ceil() as u64,
                });
                if let (Value::Object(object), Value::Object(extra)) = (&mut object, extra) {
                    object.extend(extra);
                }
            }
            object
        })
        .collect()
}

fn dump(core: &Core) -> Value {
    let mut expiry: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    // Buckets are on the monotonic clock; shown as wall-clock milliseconds.
    let offset = wall_clock_ms() - core.now_ms() as i64;
    for session in core.sessions.iter() {
        expiry
            .entry((session.expires_at as i64 + offset).to_string())
            .or_default()
            .push(session.id);
    }
    for ids in expiry.values_mut() {
        ids.sort();
    }
    let mut ephemerals: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, paths) in core.tree.all_ephemerals() {
        ephemerals.insert(id.to_string(), paths);
    }
    json!({
        "expiry_time_to_session_ids": expiry,
        "session_id_to_ephemeral_paths": ephemerals,
    })
}

fn environment(core: &Core) -> Value {
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    json!({
        "zookeeper.version": version_string(),
        "host.name": std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
        "canopy.version": env!("CARGO_PKG_VERSION"),
        "os.name": std::env::consts::OS,
        "os.arch": std::env::consts::ARCH,
        "user.dir": cwd,
        "data.dir": core.config.data_dir.display().to_string(),
    })
}

fn last_snapshot(core: &Core) -> Value {
    let newest = files::snapshots(&core.config.data_dir)
        .ok()
        .and_then(|list| list.into_iter().last());
    match newest {
        Some(file) => {
            let timestamp = std::fs::metadata(&file.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            json!({ "zxid": format!("{:x}", file.zxid), "timestamp": timestamp })
        }
        None => json!({ "zxid": "0", "timestamp": 0 }),
    }
}

fn server_stats(core: &Core, with_connections: bool) -> Value {
    let (min, avg, max) = core.stats.latency.millis();
    let size = monitor::data_dir_size(&core.config.data_dir);
    let fsync = core.metrics.fsync();
    // ZooKeeper's fsync.warningthresholdms is 1 s: count fsyncs above it.
    let slow_fsyncs: u64 = fsync
        .buckets
        .iter()
        .zip(
            crate::metrics::BUCKETS_MICROS
                .iter()
                .copied()
                .chain([u64::MAX]),
        )
        .filter(|(_, bound)| *bound > 1_000_000)
        .map(|(count, _)| *count)
        .sum();
    let (last_size, min_size, max_size) = core.metrics.response_sizes();
    let response_stats = json!({
        "last_buffer_size": last_size,
        "min_buffer_size": min_size,
        "max_buffer_size": max_size,
    });
    let mut value = json!({
        "version": version_string(),
        "read_only": false,
        "server_stats": {
            "packets_sent": core.stats.packets_sent,
            "packets_received": core.stats.packets_received,
            "fsync_threshold_exceed_count": slow_fsyncs,
            "client_response_stats": response_stats,
            "data_dir_size": size,
            "log_dir_size": size,
            "provider_null": false,
            "server_state": "standalone",
            "last_processed_zxid": core.last_zxid,
            "outstanding_requests": 0,
            "avg_latency": avg,
            "max_latency": max.ceil() as u64,
            "min_latency": min as u64,
            "num_alive_client_connections": core.conns.len(),
            "uptime": core.now_ms(),
            "auth_failed_count": core.metrics.auth_failed.load(std::sync::atomic::Ordering::Relaxed),
        },
        "client_response": response_stats,
        "node_count": core.tree.node_count(),
    });
    if with_connections {
        value["connections"] = Value::Array(connections(core, false));
        value["secure_connections"] = json!([]);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_the_primary_name() {
        assert_eq!(resolve("mntr"), Some("monitor"));
        assert_eq!(resolve("monitor"), Some("monitor"));
        assert_eq!(resolve("wchp"), Some("watches_by_path"));
        assert_eq!(resolve("nosuch"), None);
    }
}
