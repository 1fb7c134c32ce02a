//! Four-letter words (`four srvr`) and the server-side session list built on
//! `cons` and `dump`, which ZooKeeper answers too (when its whitelist allows).

use std::collections::BTreeMap;
use std::time::Duration;

use canopy_client::connect_string::ConnectString;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::args::*;
use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::{emit_json, say};

/// Sends `word` to the first server of the connect string and returns the
/// whole answer.
pub async fn send_word(server: &str, word: &str, timeout: Duration) -> CliResult<String> {
    if word.len() != 4 || !word.chars().all(|c| c.is_ascii_lowercase()) {
        return Err(CliError::new(format!(
            "BadArguments: {word:?} is not a four-letter word"
        )));
    }
    let parsed =
        ConnectString::parse(server).map_err(|e| CliError::new(format!("BadArguments: {e}")))?;
    let (host, port) = &parsed.hosts[0];
    let addr = format!("{host}:{port}");
    let exchange = async {
        let mut stream = TcpStream::connect(&addr).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => Ok(String::from_utf8_lossy(&answer).to_string()),
        Ok(Err(e)) => Err(CliError::new(format!("ConnectionLoss: {addr}: {e}"))),
        Err(_) => Err(CliError::new(format!(
            "ConnectionLoss: {addr}: no answer to {word}"
        ))),
    }
}

pub async fn four(ctx: &mut Ctx, a: &FourArgs) -> CliResult<()> {
    let answer = send_word(&ctx.server, &a.word, ctx.connect_timeout).await?;
    if a.common.output == Output::Json {
        emit_json(&json!({"word": a.word, "answer": answer}));
    } else {
        say!("{}", answer.trim_end());
    }
    Ok(())
}

/// One session as the server reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    /// `ip:port` of its connection, if it has one on this server.
    pub client: Option<String>,
    pub timeout_ms: Option<u64>,
    pub last_op: Option<String>,
    pub ephemerals: Vec<String>,
}

/// The `key=value` pairs of one `cons` line and the client address.
fn parse_cons_line(line: &str) -> Option<(String, BTreeMap<String, String>)> {
    let line = line.trim();
    let addr = line.strip_prefix('/')?;
    let addr_end = addr.find('[')?;
    let client = addr[..addr_end].to_string();
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let fields = line[open + 1..close]
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((client, fields))
}

/// Merges `cons` (connections, with their session ids) and `dump` (every
/// session, and the ephemeral nodes of each) into one list.
pub fn parse_sessions(cons: &str, dump: &str) -> Vec<SessionInfo> {
    let mut sessions: BTreeMap<String, SessionInfo> = BTreeMap::new();
    let entry = |id: &str| -> SessionInfo {
        SessionInfo {
            id: id.to_string(),
            ..SessionInfo::default()
        }
    };
    for line in cons.lines() {
        let Some((client, fields)) = parse_cons_line(line) else {
            continue;
        };
        // The connection asking has no session: it is not listed.
        let Some(sid) = fields.get("sid") else {
            continue;
        };
        let info = sessions.entry(sid.clone()).or_insert_with(|| entry(sid));
        info.client = Some(client);
        info.timeout_ms = fields.get("to").and_then(|t| t.parse().ok());
        info.last_op = fields.get("lop").cloned();
    }
    let mut section = "";
    let mut owner: Option<String> = None;
    for line in dump.lines() {
        if line.starts_with("Session Sets") {
            section = "sets";
            continue;
        }
        if line.starts_with("ephemeral nodes dump") || line.starts_with("Sessions with Ephemerals")
        {
            section = "ephemerals";
            continue;
        }
        if line.starts_with("Connections dump") {
            section = "";
            continue;
        }
        match section {
            "sets" => {
                let id = line.trim();
                if id.starts_with("0x") {
                    sessions.entry(id.to_string()).or_insert_with(|| entry(id));
                }
            }
            "ephemerals" => {
                if let Some(id) = line.strip_suffix(':').filter(|l| l.starts_with("0x")) {
                    owner = Some(id.to_string());
                    sessions.entry(id.to_string()).or_insert_with(|| entry(id));
                } else if let (Some(id), true) = (&owner, line.trim_start().starts_with('/')) {
                    if let Some(info) = sessions.get_mut(id) {
                        info.ephemerals.push(line.trim().to_string());
                    }
                }
            }
            _ => {}
        }
    }
    sessions.into_values().collect()
}

pub async fn sessions(ctx: &mut Ctx, a: &SessionsArgs) -> CliResult<()> {
    let cons = send_word(&ctx.server, "cons", ctx.connect_timeout).await?;
    let dump = send_word(&ctx.server, "dump", ctx.connect_timeout).await?;
    for (word, answer) in [("cons", &cons), ("dump", &dump)] {
        if answer.contains("not executed because it is not in the whitelist") {
            return Err(CliError::new(format!(
                "NotAllowed: the server does not answer `{word}` (4lw.commands.whitelist)"
            )));
        }
    }
    let list = parse_sessions(&cons, &dump);
    if a.common.output == Output::Json {
        let items: Vec<_> = list
            .iter()
            .map(|s| {
                json!({
                    "session": s.id, "client": s.client, "timeout_ms": s.timeout_ms,
                    "last_op": s.last_op, "ephemerals": s.ephemerals,
                })
            })
            .collect();
        emit_json(&json!(items));
        return Ok(());
    }
    say!(
        "{:<20} {:<22} {:>9} {:<8} EPHEMERALS",
        "SESSION",
        "CLIENT",
        "TIMEOUT",
        "LAST_OP"
    );
    for s in &list {
        say!(
            "{:<20} {:<22} {:>9} {:<8} {}",
            s.id,
            s.client.as_deref().unwrap_or("-"),
            s.timeout_ms.map_or("-".to_string(), |t| format!("{t}ms")),
            s.last_op.as_deref().unwrap_or("-"),
            s.ephemerals.len()
        );
        for path in &s.ephemerals {
            say!("    {path}");
        }
    }
    say!("{} sessions", list.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cons_and_dump_merge_into_sessions() {
        let cons = " /127.0.0.1:5000[1](queued=0,recved=3,sent=3,sid=0x100a,lop=GETD,est=1,to=30000,lcxid=0x1)\n \
                    /127.0.0.1:5001[0](queued=0,recved=1,sent=0)\n";
        let dump = "SessionTracker dump:\nSession Sets (2)/(2):\n1 expire at Sun:\n\t0x100a\n1 expire at Sun:\n\t0x100b\n\
                    ephemeral nodes dump:\nSessions with Ephemerals (1):\n0x100b:\n\t/e/one\n\t/e/two\n";
        let list = parse_sessions(cons, dump);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].id, "0x100a");
        assert_eq!(list[0].client.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(list[0].timeout_ms, Some(30000));
        assert_eq!(list[1].ephemerals, vec!["/e/one", "/e/two"]);
        assert_eq!(list[1].client, None);
    }
}
