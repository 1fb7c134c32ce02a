//! Four-letter words on the client port (`echo ruok | nc host 2181`), with
//! ZooKeeper's output formats so existing scripts and monitors parse them.

use std::fmt::Write;
use std::time::SystemTime;

use canopy_protocol::OpCode;
use parking_lot::Mutex;

use crate::core::Core;
use crate::monitor::{self, java_double};

/// The ZooKeeper version whose protocol Canopy speaks; clients read it from
/// `srvr`/`envi` to choose their code paths, so it comes first.
pub const ZOOKEEPER_VERSION: &str = "3.9.3";

/// The version string reported: ZooKeeper's, then Canopy's own.
pub fn version_string() -> String {
    format!(
        "{ZOOKEEPER_VERSION}-canopy-{}, built on canopy {}",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION")
    )
}

/// The words Canopy answers.
pub const WORDS: [&str; 15] = [
    "ruok", "srvr", "stat", "conf", "cons", "crst", "envi", "mntr", "srst", "wchs", "wchc", "wchp",
    "dump", "isro", "dirs",
];

/// The word, if the first four bytes of a connection spell one.
pub fn detect(first: &[u8]) -> Option<&'static str> {
    WORDS.iter().copied().find(|w| w.as_bytes() == first)
}

/// The full answer to a word (the connection is closed after it).
pub fn answer(core: &Mutex<Core>, word: &str) -> String {
    let mut core = core.lock();
    // ZooKeeper always answers srvr, whatever the allow-list says.
    if word != "srvr" && !core.config.allows_word(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => "imok".to_string(),
        "srvr" => server_summary(&core, false),
        "stat" => server_summary(&core, true),
        "conf" => conf(&core),
        "cons" => {
            let mut out = String::new();
            for line in connection_lines(&core, true) {
                let _ = writeln!(out, "{line}");
            }
            out.push('\n');
            out
        }
        "crst" => {
            for conn in core.conns.values_mut() {
                conn.stats.reset();
            }
            "Connection stats reset.\n".to_string()
        }
        "srst" => {
            core.stats.reset();
            "Server stats reset.\n".to_string()
        }
        "envi" => environment(&core),
        "mntr" => monitor(&core),
        "wchs" => {
            let (conns, paths, total) = core.watches.data_summary();
            format!("{conns} connections watching {paths} paths\nTotal watches:{total}\n")
        }
        "wchc" => {
            let mut out = String::new();
            let mut by_watcher: Vec<_> = core.watches.data_paths_by_watcher().into_iter().collect();
            by_watcher.sort();
            for (conn_id, paths) in by_watcher {
                let session = core.conns.get(&conn_id).map_or(0, |c| c.session_id);
                let _ = writeln!(out, "0x{session:x}");
                for path in paths {
                    let _ = writeln!(out, "\t{path}");
                }
            }
            out.push('\n');
            out
        }
        "wchp" => {
            let mut out = String::new();
            let mut by_path: Vec<_> = core.watches.data_watchers_by_path().into_iter().collect();
            by_path.sort();
            for (path, watchers) in by_path {
                let _ = writeln!(out, "{path}");
                for conn_id in watchers {
                    let session = core.conns.get(&conn_id).map_or(0, |c| c.session_id);
                    let _ = writeln!(out, "\t0x{session:x}");
                }
            }
            out.push('\n');
            out
        }
        "dump" => dump(&core),
        "isro" => "rw".to_string(),
        "dirs" => {
            // One folder holds snapshots and log, as when ZooKeeper's
            // dataLogDir is its dataDir: both figures are its size.
            let size = monitor::data_dir_size(&core.config.data_dir);
            format!("datadir_size: {size}\nlogdir_size: {size}\n")
        }
        _ => String::new(),
    }
}

fn latency_line(core: &Core) -> String {
    let (min, avg, max) = core.stats.latency.millis();
    format!(
        "Latency min/avg/max: {}/{}/{}",
        min as u64,
        java_double(avg),
        max.ceil() as u64
    )
}

/// The abbreviations ZooKeeper shows as a connection's last operation.
pub fn short_op_name(op: OpCode) -> &'static str {
    match op {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => "CREA",
        OpCode::Delete | OpCode::DeleteContainer => "DELE",
        OpCode::Exists => "EXIS",
        OpCode::GetData => "GETD",
        OpCode::SetData => "SETD",
        OpCode::GetAcl => "GETA",
        OpCode::SetAcl => "SETA",
        OpCode::GetChildren | OpCode::GetChildren2 => "GETC",
        OpCode::Sync => "SYNC",
        OpCode::Ping => "PING",
        OpCode::Check => "CHEC",
        OpCode::Multi => "MULT",
        OpCode::MultiRead => "MLTR",
        OpCode::Reconfig => "RECO",
        OpCode::CheckWatches => "CHKW",
        OpCode::RemoveWatches => "REMW",
        OpCode::AddWatch => "ADDW",
        OpCode::SetWatches => "SETW",
        OpCode::SetWatches2 => "STW2",
        OpCode::WhoAmI => "HOMI",
        OpCode::GetEphemerals => "GETE",
        OpCode::GetAllChildrenNumber => "GETACN",
        OpCode::CloseSession => "CLOS",
        OpCode::CreateSession => "SESS",
        OpCode::Auth => "AUTH",
        OpCode::Sasl => "SASL",
        OpCode::Error | OpCode::Notification => "NA",
    }
}

fn server_summary(core: &Core, with_clients: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {}", version_string());
    if with_clients {
        let _ = writeln!(out, "Clients:");
        for line in connection_lines(core, false) {
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", latency_line(core));
    let _ = writeln!(out, "Received: {}", core.stats.packets_received);
    let _ = writeln!(out, "Sent: {}", core.stats.packets_sent);
    let _ = writeln!(out, "Connections: {}", core.conns.len());
    let _ = writeln!(out, "Outstanding: 0");
    let _ = writeln!(out, "Zxid: 0x{:x}", core.last_zxid);
    let _ = writeln!(out, "Mode: standalone");
    let _ = writeln!(out, "Node count: {}", core.tree.node_count());
    out
}

pub fn millis_since_epoch(time: SystemTime) -> u128 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// One line per connection, as `stat` (brief) and `cons` (full) print them.
fn connection_lines(core: &Core, full: bool) -> Vec<String> {
    core.conns_in_order()
        .into_iter()
        .map(|conn| {
            let s = &conn.stats;
            let mut line = format!(
                " /{}:{}[1](queued=0,recved={},sent={}",
                conn.addr.ip(),
                conn.addr.port(),
                s.received,
                s.sent
            );
            if full {
                let (min, avg, max) = s.latency.millis();
                let _ = write!(
                    line,
                    ",sid=0x{:x},lop={},est={},to={}",
                    conn.session_id,
                    s.last_op.map_or("NA", short_op_name),
                    millis_since_epoch(s.established),
                    conn.timeout_ms
                );
                if s.last_zxid >= 0 {
                    let _ = write!(line, ",lcxid=0x{:x},lzxid=0x{:x}", s.last_cxid, s.last_zxid);
                }
                if let Some(last) = s.last_response {
                    let _ = write!(
                        line,
                        ",lresp={},llat={},minlat={},avglat={},maxlat={}",
                        millis_since_epoch(last),
                        s.latency.last_micros / 1000,
                        min as u64,
                        avg as u64,
                        max.ceil() as u64
                    );
                }
            }
            line.push(')');
            line
        })
        .collect()
}

fn conf(core: &Core) -> String {
    let c = &core.config;
    let mut out = String::new();
    let _ = writeln!(out, "clientPort={}", c.port);
    let _ = writeln!(out, "secureClientPort=-1");
    let _ = writeln!(out, "dataDir={}", c.data_dir.display());
    let size = monitor::data_dir_size(&c.data_dir);
    let _ = writeln!(out, "dataDirSize={size}");
    let _ = writeln!(out, "dataLogDir={}", c.data_dir.display());
    let _ = writeln!(out, "dataLogSize={size}");
    let _ = writeln!(out, "tickTime={}", c.tick_time_ms);
    let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
    let _ = writeln!(out, "minSessionTimeout={}", c.min_session_timeout_ms);
    let _ = writeln!(out, "maxSessionTimeout={}", c.max_session_timeout_ms);
    let _ = writeln!(out, "clientPortListenBacklog=-1");
    let _ = writeln!(out, "serverId={}", c.server_id);
    out
}

fn environment(core: &Core) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let mut out = String::from("Environment:\n");
    let _ = writeln!(out, "zookeeper.version={}", version_string());
    let _ = writeln!(out, "host.name={host}");
    let _ = writeln!(out, "canopy.version={}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "os.name={}", std::env::consts::OS);
    let _ = writeln!(out, "os.arch={}", std::env::consts::ARCH);
    let _ = writeln!(out, "user.dir={cwd}");
    let _ = writeln!(out, "data.dir={}", core.config.data_dir.display());
    out
}

fn monitor(core: &Core) -> String {
    let mut out = String::new();
    for (key, value) in monitor::figures(core) {
        let _ = writeln!(out, "zk_{key}\t{value}");
    }
    out
}

fn dump(core: &Core) -> String {
    let mut out = String::from("SessionTracker dump:\n");
    let mut buckets: std::collections::BTreeMap<u64, Vec<i64>> = Default::default();
    for session in core.sessions.iter() {
        buckets
            .entry(session.expires_at)
            .or_default()
            .push(session.id);
    }
    let _ = writeln!(
        out,
        "Session Sets ({})/({}):",
        buckets.len(),
        core.sessions.len()
    );
    // Buckets are on the monotonic clock; print them as wall-clock dates.
    let wall_now = crate::core::wall_clock_ms();
    let mono_now = core.now_ms() as i64;
    for (expires_at, mut ids) in buckets {
        ids.sort();
        let when = wall_now + (expires_at as i64 - mono_now);
        let _ = writeln!(out, "{} expire at {}:", ids.len(), java_date(when));
        for id in ids {
            let _ = writeln!(out, "\t0x{id:x}");
        }
    }
    let _ = writeln!(out, "ephemeral nodes dump:");
    let owners = core.tree.all_ephemerals();
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", owners.len());
    for (id, paths) in owners {
        let _ = writeln!(out, "0x{id:x}:");
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    // Connections by when they expire: with their session's deadline, or
    // (not yet attached) the handshake deadline.
    let mut by_expiry: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    let handshake_ms = core.config.max_session_timeout_ms.max(1000) as i64;
    let mut conns: Vec<_> = core.conns.values().collect();
    conns.sort_by_key(|c| c.addr);
    for conn in conns {
        let expires = match core.sessions.get(conn.session_id) {
            Some(session) => wall_now + (session.expires_at as i64 - mono_now),
            None => millis_since_epoch(conn.stats.established) as i64 + handshake_ms,
        };
        by_expiry.entry(expires).or_default().push(format!(
            "\tip: /{}:{} sessionId: 0x{:x}",
            conn.addr.ip(),
            conn.addr.port(),
            conn.session_id
        ));
    }
    let _ = writeln!(out, "Connections dump:");
    let _ = writeln!(
        out,
        "Connections Sets ({})/({}):",
        by_expiry.len(),
        core.conns.len()
    );
    for (when, lines) in by_expiry {
        let _ = writeln!(out, "{} expire at {}:", lines.len(), java_date(when));
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// Milliseconds since the epoch as Java's `Date.toString()` prints them in
/// UTC: `Sun Nov 22 00:09:59 UTC 2026`.
fn java_date(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_only_known_words() {
        assert_eq!(detect(b"ruok"), Some("ruok"));
        assert_eq!(detect(b"abcd"), None);
        assert_eq!(detect(&[0, 0, 0, 44]), None);
    }

    #[test]
    fn dates_print_like_java() {
        // 2026-11-22 00:09:59 UTC was a Sunday.
        assert_eq!(java_date(1_795_306_199_000), "Sun Nov 22 00:09:59 UTC 2026");
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
    }

    #[test]
    fn version_leads_with_the_zookeeper_version() {
        assert!(version_string().starts_with("3.9."));
    }
}
