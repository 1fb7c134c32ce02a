//! Server settings: embedded defaults (no file needed), overridden by a TOML
//! file, overridden by command-line flags.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sasl::SaslSettings;
use crate::tls::TlsSettings;

/// The effective settings of a server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address the client port listens on (all interfaces by default).
    pub bind: IpAddr,
    /// The client port (ZooKeeper's clientPort); 0 picks a free one.
    pub port: u16,
    /// Where the server keeps its data.
    pub data_dir: PathBuf,
    /// ZooKeeper's tickTime: the unit of session timeouts and expiry checks.
    pub tick_time_ms: u64,
    /// Negotiated session timeouts are clamped into [min, max].
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// Largest accepted request frame (ZooKeeper's jute.maxbuffer).
    pub max_frame_bytes: usize,
    /// Whether TTL nodes may be created (ZooKeeper's extendedTypesEnabled).
    pub ttl_enabled: bool,
    /// How often empty containers and expired TTL nodes are looked for.
    pub container_check_interval_ms: u64,
    /// `super:<base64 sha1>`: whoever authenticates as this digest is super.
    pub super_digest: Option<String>,
    /// Four-letter words answered on the client port; `*` means all.
    pub four_letter_words: Vec<String>,
    /// This server's id, the high byte of the session ids it issues.
    pub server_id: u8,
    /// Whether the write-ahead log is fsync'd before writes are acknowledged
    /// (ZooKeeper's forceSync). Off only for benchmarks: a crash then loses
    /// acknowledged writes.
    pub fsync: bool,
    /// A snapshot is taken after this many change records...
    pub snapshot_every_txns: u64,
    /// ...or this many bytes of log, whichever comes first.
    pub snapshot_every_log_bytes: u64,
    /// A log segment is closed and a new one started past this size.
    pub log_segment_bytes: u64,
    /// Snapshots kept (with the log needed to replay from the oldest); older
    /// ones are purged, as ZooKeeper's autopurge.snapRetainCount does.
    pub snapshots_retained: usize,
    /// ZooKeeper's secureClientPort: a TLS client port, open beside the
    /// plain one (0 picks a free one). Needs `tls`.
    pub secure_port: Option<u16>,
    /// Certificates for the secure port.
    pub tls: Option<TlsSettings>,
    /// DIGEST-MD5 users for SASL.
    pub sasl: SaslSettings,
    /// ZooKeeper's enforce.auth.enabled: a connection must hold an identity
    /// of one of `enforce_auth_schemes` before any request but auth and sasl.
    pub enforce_auth_enabled: bool,
    /// ZooKeeper's enforce.auth.schemes (digest, sasl, x509, ip).
    pub enforce_auth_schemes: Vec<String>,
    /// HTTP admin server port (ZooKeeper's admin.serverPort); 0 switches it off.
    pub admin_port: u16,
    /// Address the admin server listens on: loopback unless chosen otherwise.
    pub admin_bind: IpAddr,
    /// Bearer token that state-changing admin calls must carry when the admin
    /// server is bound to a non-loopback address (they are refused without one).
    pub admin_token: Option<String>,
    /// Connections one client address may hold (ZooKeeper's maxClientCnxns); 0 = no limit.
    pub max_client_cnxns: u32,
    /// Connections the server holds at once; 0 = no limit.
    pub max_connections: u32,
    /// Addresses or CIDR ranges allowed to connect; empty = everyone.
    pub allow: Vec<String>,
    /// Addresses or CIDR ranges refused; deny wins over allow.
    pub deny: Vec<String>,
    /// `text` or `json`.
    pub log_format: String,
    /// A tracing filter: `info`, `debug`, `canopy=debug,info`, ...
    pub log_level: String,
    /// On SIGTERM, close every session (their ephemeral nodes go) instead of
    /// letting them survive the restart as ZooKeeper does.
    pub close_sessions_on_shutdown: bool,
    /// How long a graceful shutdown waits for connections to flush.
    pub shutdown_grace_ms: u64,
    /// Bytes a connection may have queued and not yet written (replies and
    /// watch events) before it is cut off as a client that does not read.
    pub max_outbound_bytes: usize,
    /// A connection must complete its handshake (a whole ConnectRequest)
    /// within this many milliseconds, or it is closed.
    pub handshake_timeout_ms: u64,
    /// Refuse creates and setData that would pass a hard quota under
    /// `/zookeeper/quota` (ZooKeeper's `zookeeper.enforceQuota`).
    pub enforce_quota: bool,
    /// Largest number of children a node may have; a create past it is
    /// refused with QuotaExceeded. 0 means no limit.
    pub max_children_per_node: usize,
}

impl Default for Config {
    fn default() -> Self {
        let tick_time_ms = 2000;
        Config {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 2181,
            data_dir: PathBuf::from("./canopy-data"),
            tick_time_ms,
            min_session_timeout_ms: 2 * tick_time_ms as i32,
            max_session_timeout_ms: 20 * tick_time_ms as i32,
            max_frame_bytes: canopy_protocol::DEFAULT_MAX_FRAME,
            ttl_enabled: true,
            container_check_interval_ms: 60_000,
            super_digest: None,
            four_letter_words: vec!["*".to_string()],
            server_id: 0,
            fsync: true,
            snapshot_every_txns: 100_000,
            snapshot_every_log_bytes: 64 * 1024 * 1024,
            log_segment_bytes: 64 * 1024 * 1024,
            snapshots_retained: 3,
            secure_port: None,
            tls: None,
            sasl: SaslSettings::default(),
            enforce_auth_enabled: false,
            enforce_auth_schemes: Vec::new(),
            admin_port: 8080,
            admin_bind: IpAddr::from([127, 0, 0, 1]),
            admin_token: None,
            max_client_cnxns: 60,
            max_connections: 0,
            allow: Vec::new(),
            deny: Vec::new(),
            log_format: "text".to_string(),
            log_level: "info".to_string(),
            close_sessions_on_shutdown: false,
            shutdown_grace_ms: 10_000,
            max_outbound_bytes: 8 * 1024 * 1024,
            handshake_timeout_ms: 10_000,
            enforce_quota: false,
            max_children_per_node: 1_000_000,
        }
    }
}

/// Settings as a TOML file or the command line may give them; anything left
/// out keeps the default.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub tick_time_ms: Option<u64>,
    pub min_session_timeout_ms: Option<i32>,
    pub max_session_timeout_ms: Option<i32>,
    pub max_frame_bytes: Option<usize>,
    pub ttl_enabled: Option<bool>,
    pub container_check_interval_ms: Option<u64>,
    pub super_digest: Option<String>,
    pub four_letter_words: Option<Vec<String>>,
    pub server_id: Option<u8>,
    pub fsync: Option<bool>,
    pub snapshot_every_txns: Option<u64>,
    pub snapshot_every_log_bytes: Option<u64>,
    pub log_segment_bytes: Option<u64>,
    pub snapshots_retained: Option<usize>,
    pub secure_port: Option<u16>,
    pub tls: Option<TlsSettings>,
    pub sasl: Option<SaslSettings>,
    pub enforce_auth_enabled: Option<bool>,
    pub enforce_auth_schemes: Option<Vec<String>>,
    pub admin_port: Option<u16>,
    pub admin_bind: Option<IpAddr>,
    pub admin_token: Option<String>,
    pub max_client_cnxns: Option<u32>,
    pub max_connections: Option<u32>,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub close_sessions_on_shutdown: Option<bool>,
    pub shutdown_grace_ms: Option<u64>,
    pub max_outbound_bytes: Option<usize>,
    pub handshake_timeout_ms: Option<u64>,
    pub enforce_quota: Option<bool>,
    pub max_children_per_node: Option<usize>,
}

impl Overrides {
    pub fn from_file(path: &Path) -> Result<Overrides, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("bad config file {}: {e}", path.display()))
    }
}

impl Config {
    /// Defaults, then each set of overrides in turn (later ones win). Session
    /// timeout bounds not given follow the tick time, as in ZooKeeper.
    pub fn resolve(layers: &[&Overrides]) -> Config {
        let mut config = Config::default();
        let mut min_timeout = None;
        let mut max_timeout = None;
        for layer in layers {
            macro_rules! take {
                ($($field:ident),*) => {
                    $( if let Some(value) = layer.$field.clone() { config.$field = value; } )*
                };
            }
            take!(
                bind,
                port,
                data_dir,
                tick_time_ms,
                max_frame_bytes,
                ttl_enabled,
                container_check_interval_ms,
                four_letter_words,
                server_id,
                fsync,
                snapshot_every_txns,
                snapshot_every_log_bytes,
                log_segment_bytes,
                snapshots_retained,
                sasl,
                enforce_auth_enabled,
                enforce_auth_schemes,
                admin_port,
                admin_bind,
                max_client_cnxns,
                max_connections,
                allow,
                deny,
                log_format,
                log_level,
                close_sessions_on_shutdown,
                shutdown_grace_ms,
                max_outbound_bytes,
                handshake_timeout_ms,
                enforce_quota,
                max_children_per_node
            );
            if layer.secure_port.is_some() {
                config.secure_port = layer.secure_port;
            }
            if layer.tls.is_some() {
                config.tls = layer.tls.clone();
            }
            if layer.super_digest.is_some() {
                config.super_digest = layer.super_digest.clone();
            }
            if layer.admin_token.is_some() {
                config.admin_token = layer.admin_token.clone();
            }
            min_timeout = layer.min_session_timeout_ms.or(min_timeout);
            max_timeout = layer.max_session_timeout_ms.or(max_timeout);
        }
        let tick = config.tick_time_ms as i32;
        config.min_session_timeout_ms = min_timeout.unwrap_or(2 * tick);
        config.max_session_timeout_ms = max_timeout.unwrap_or(20 * tick);
        config
    }

    /// Checks what the types cannot: address lists, the log format.
    pub fn validate(&self) -> Result<(), String> {
        crate::access::parse_list(&self.allow).map_err(|e| format!("allow: {e}"))?;
        crate::access::parse_list(&self.deny).map_err(|e| format!("deny: {e}"))?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(format!(
                "log_format must be \"text\" or \"json\", not {:?}",
                self.log_format
            ));
        }
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return Err(format!(
                "min_session_timeout_ms ({}) is above max_session_timeout_ms ({})",
                self.min_session_timeout_ms, self.max_session_timeout_ms
            ));
        }
        Ok(())
    }

    /// Whether a four-letter word is allowed by the allow-list.
    pub fn allows_word(&self, word: &str) -> bool {
        self.four_letter_words
            .iter()
            .any(|allowed| allowed == "*" || allowed == word)
    }

    /// Clamps a requested session timeout into the configured bounds.
    pub fn negotiate_timeout(&self, requested: i32) -> i32 {
        requested
            .max(self.min_session_timeout_ms)
            .min(self.max_session_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let config = Config::resolve(&[]);
        assert_eq!(config.port, 2181);
        assert_eq!(config.data_dir, PathBuf::from("./canopy-data"));
        assert_eq!(
            (config.min_session_timeout_ms, config.max_session_timeout_ms),
            (4000, 40000)
        );
        assert_eq!(config.max_outbound_bytes, 8 * 1024 * 1024);
        assert_eq!(config.handshake_timeout_ms, 10_000);
        assert!(!config.enforce_quota);
        assert_eq!(config.max_children_per_node, 1_000_000);
    }

    #[test]
    fn limits_come_from_the_file() {
        let file: Overrides = toml::from_str(
            "max_outbound_bytes = 65536\nhandshake_timeout_ms = 500\nenforce_quota = true\nmax_children_per_node = 0\n",
        )
        .unwrap();
        let config = Config::resolve(&[&file]);
        assert_eq!(config.max_outbound_bytes, 65536);
        assert_eq!(config.handshake_timeout_ms, 500);
        assert!(config.enforce_quota);
        assert_eq!(config.max_children_per_node, 0);
    }

    #[test]
    fn flags_override_the_file_and_bounds_follow_the_tick() {
        let file: Overrides = toml::from_str("port = 3000\ntick_time_ms = 100\n").unwrap();
        let flags = Overrides {
            port: Some(4000),
            ..Default::default()
        };
        let config = Config::resolve(&[&file, &flags]);
        assert_eq!(config.port, 4000);
        assert_eq!(config.min_session_timeout_ms, 200);
        assert_eq!(config.negotiate_timeout(10), 200);
        assert_eq!(config.negotiate_timeout(1_000_000), 2000);
    }

    #[test]
    fn security_settings_from_the_file() {
        let file: Overrides = toml::from_str(
            r#"
            secure_port = 2281
            enforce_auth_enabled = true
            enforce_auth_schemes = ["digest", "x509"]
            [tls]
            cert_file = "server.pem"
            key_file = "server.key"
            ca_file = "ca.pem"
            client_auth = "want"
            [sasl]
            jaas_file = "jaas.conf"
            users = { app-a = "pw" }
            "#,
        )
        .unwrap();
        let config = Config::resolve(&[&file]);
        assert_eq!(config.secure_port, Some(2281));
        let tls = config.tls.unwrap();
        assert_eq!(tls.client_auth, crate::tls::ClientAuth::Want);
        assert_eq!(tls.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(config.sasl.jaas_section, "Server");
        assert_eq!(config.sasl.users["app-a"], "pw");
        assert!(config.enforce_auth_enabled);
        assert_eq!(config.enforce_auth_schemes, ["digest", "x509"]);
        // Passwords are not printed.
        assert!(!format!("{:?}", config.sasl).contains("pw\""));
    }

    #[test]
    fn the_example_file_documents_every_setting_with_its_default() {
        let text = include_str!("../canopy.toml.example");
        let example: Overrides = toml::from_str(text).expect("the example parses");
        assert_eq!(Config::resolve(&[&example]), Config::default());
        // Every field of Config (read off its Debug form) is in the file.
        let debug = format!("{:#?}", Config::default());
        for line in debug.lines().skip(1) {
            if let Some((name, _)) = line.trim().split_once(": ") {
                assert!(
                    text.contains(&format!("{name} = ")),
                    "{name} is not in canopy.toml.example"
                );
            }
        }
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(toml::from_str::<Overrides>("prot = 1").is_err());
    }
}
