//! How nodes are printed: Stat in zkCli's layout, data as text, pretty JSON
//! or a hex dump, ACLs in zkCli's two styles, and the JSON forms of each for
//! `--output json`.

use base64::Engine as _;
use canopy_client::{perms, Acl, Id, Stat};
pub use canopy_protocol::NodeKind;
use serde_json::{json, Value};

/// A time as `java.util.Date.toString()` prints it (in UTC).
pub fn java_date(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%a %b %d %H:%M:%S UTC %Y").to_string(),
        None => ms.to_string(),
    }
}

/// A time as ISO 8601 with milliseconds, UTC.
pub fn iso_time(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

/// A duration as `3d4h`, `5m12s`, `41s`.
pub fn short_age(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The Stat as zkCli prints it (`cZxid = 0x...`, one field a line).
pub fn stat_text(stat: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        stat.czxid as u64,
        java_date(stat.ctime),
        stat.mzxid as u64,
        java_date(stat.mtime),
        stat.pzxid as u64,
        stat.cversion,
        stat.version,
        stat.aversion,
        stat.ephemeral_owner as u64,
        stat.data_length,
        stat.num_children
    )
}

pub fn stat_json(stat: &Stat) -> Value {
    json!({
        "czxid": stat.czxid,
        "mzxid": stat.mzxid,
        "pzxid": stat.pzxid,
        "ctime": stat.ctime,
        "mtime": stat.mtime,
        "version": stat.version,
        "cversion": stat.cversion,
        "aversion": stat.aversion,
        "ephemeralOwner": stat.ephemeral_owner,
        "dataLength": stat.data_length,
        "numChildren": stat.num_children,
        "kind": stat.kind().name(),
    })
}

/// How data bytes are best shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataView {
    Empty,
    Json(String),
    Text(String),
    Binary,
}

pub fn classify(data: &[u8]) -> DataView {
    if data.is_empty() {
        return DataView::Empty;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return DataView::Binary;
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            return DataView::Json(serde_json::to_string_pretty(&value).unwrap_or_default());
        }
    }
    let printable = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    if printable {
        DataView::Text(text.to_string())
    } else {
        DataView::Binary
    }
}

/// Data for a person: UTF-8 text as is, JSON pretty-printed, anything else
/// as a hex dump. No trailing newline.
pub fn data_text(data: &[u8]) -> String {
    match classify(data) {
        DataView::Empty => String::new(),
        DataView::Json(pretty) => pretty,
        DataView::Text(text) => text.trim_end_matches('\n').to_string(),
        DataView::Binary => hex_dump(data),
    }
}

/// `xxd`-style: offset, 16 bytes in hex, the printable ones as text.
pub fn hex_dump(data: &[u8]) -> String {
    let mut lines = Vec::new();
    for (row, chunk) in data.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        lines.push(format!("{:08x}  {:<47}  {}", row * 16, hex.join(" "), text));
    }
    lines.join("\n")
}

/// One line of data for tables and previews.
pub fn data_preview(data: &[u8], max: usize) -> String {
    let text = match std::str::from_utf8(data) {
        Ok(text) if classify(data) != DataView::Binary => text.replace(['\n', '\r', '\t'], " "),
        _ => {
            let hex: String = data
                .iter()
                .take(max / 2)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("0x{hex}")
        }
    };
    if text.chars().count() > max {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Data in JSON output: text when it is UTF-8, base64 otherwise.
pub fn data_json(data: &[u8]) -> Value {
    match std::str::from_utf8(data) {
        Ok(text) => json!({"encoding": "utf8", "data": text}),
        Err(_) => json!({
            "encoding": "base64",
            "data": base64::engine::general_purpose::STANDARD.encode(data),
        }),
    }
}

/// ZooKeeper's permission letters in its order, `cdrwa`.
pub fn perm_letters(bits: i32) -> String {
    let mut out = String::new();
    for (bit, letter) in [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ] {
        if bits & bit != 0 {
            out.push(letter);
        }
    }
    out
}

pub fn parse_perms(letters: &str) -> Option<i32> {
    let mut bits = 0;
    for letter in letters.chars() {
        bits |= match letter {
            'c' => perms::CREATE,
            'd' => perms::DELETE,
            'r' => perms::READ,
            'w' => perms::WRITE,
            'a' => perms::ADMIN,
            _ => return None,
        };
    }
    Some(bits)
}

/// `scheme:id:perms`, the form zkCli's setAcl reads.
pub fn acl_spec(acl: &Acl) -> String {
    format!(
        "{}:{}:{}",
        acl.id.scheme,
        acl.id.id,
        perm_letters(acl.perms)
    )
}

/// Parses zkCli's ACL list: `scheme:id:perms[,scheme:id:perms...]`. The id
/// may itself hold colons (`digest:user:hash:cdrwa`), so the permissions are
/// after the last colon and the scheme before the first.
pub fn parse_acl_list(text: &str) -> Result<Vec<Acl>, String> {
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad =
            || format!("invalid ACL {entry:?}: expected scheme:id:perms, e.g. world:anyone:cdrwa");
        let (scheme, rest) = entry.split_once(':').ok_or_else(bad)?;
        let (id, letters) = rest.rsplit_once(':').ok_or_else(bad)?;
        let perms = parse_perms(letters).ok_or_else(bad)?;
        out.push(Acl {
            perms,
            id: Id::new(scheme, id),
        });
    }
    if out.is_empty() {
        return Err("an empty ACL list".into());
    }
    Ok(out)
}

/// getAcl's text: `'scheme,'id` then `: perms`, per entry.
pub fn acl_text(acls: &[Acl]) -> String {
    let mut out = String::new();
    for acl in acls {
        out.push_str(&format!(
            "'{},'{}\n: {}\n",
            acl.id.scheme,
            acl.id.id,
            perm_letters(acl.perms)
        ));
    }
    out
}

pub fn acl_json(acls: &[Acl]) -> Value {
    Value::Array(
        acls.iter()
            .map(|a| json!({"scheme": a.id.scheme, "id": a.id.id, "perms": perm_letters(a.perms)}))
            .collect(),
    )
}

/// A list as Java's `List.toString()` prints it: `[a, b]`.
pub fn java_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_shown_as_text_json_or_hex() {
        assert_eq!(data_text(b"hello"), "hello");
        assert_eq!(data_text(br#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(
            data_text(&[0, 1, 0xff]),
            format!("00000000  {:<47}  ...", "00 01 ff")
        );
        assert_eq!(data_json(&[0xff])["encoding"], "base64");
    }

    #[test]
    fn acls_parse_with_colons_in_the_id() {
        let acl = parse_acl_list("digest:bob:abc=:cdr,world:anyone:r").unwrap();
        assert_eq!(acl[0].id.id, "bob:abc=");
        assert_eq!(acl[0].perms, perms::CREATE | perms::DELETE | perms::READ);
        assert_eq!(acl_spec(&acl[1]), "world:anyone:r");
        assert!(parse_acl_list("world:anyone:x").is_err());
        assert_eq!(perm_letters(perms::ALL), "cdrwa");
    }

    #[test]
    fn kinds_follow_zookeepers_owner_markers() {
        let mut stat = Stat::default();
        assert_eq!(stat.kind(), NodeKind::Persistent);
        stat.ephemeral_owner = i64::MIN;
        assert_eq!(stat.kind(), NodeKind::Container);
        stat.ephemeral_owner = (0xFF00_0000_0000_0000u64 | 5000) as i64;
        assert_eq!(stat.kind(), NodeKind::Ttl(5000));
        stat.ephemeral_owner = 0x1000_0000_0000_0001;
        assert!(stat.kind().is_ephemeral());
    }
}
