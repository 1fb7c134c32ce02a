//! Authentication beyond `addauth`: SASL exchanges (opcode 102) and
//! enforced authentication (ZooKeeper's enforce.auth.enabled and
//! enforce.auth.schemes), and the start-up checks of their settings.
//!
//! Under enforcement a connection may send `auth` and `sasl` requests; its
//! first other request, unless it holds an identity of an accepted scheme by
//! then, is answered as ZooKeeper 3.7+ answers it (a reply header with the
//! request's xid, zxid 0 and SessionClosedRequireSaslAuth, no body) and the
//! connection is closed.

use std::collections::BTreeMap;

use bytes::BufMut;
use canopy_protocol::{build_frame, ErrorCode, Id, Jute, ReplyHeader, Response, SetSaslResponse};

use crate::config::Config;
use crate::core::{Action, ConnId, Core, Outbound};
use crate::sasl::{DigestMd5Server, Step};

/// Schemes a connection can hold an identity of.
pub const SCHEMES: [&str; 4] = ["digest", "ip", "sasl", "x509"];

/// What the server's authentication settings resolve to at start.
#[derive(Debug, Default)]
pub struct AuthSetup {
    /// DIGEST-MD5 users (from the TOML table and the JAAS file).
    pub sasl_users: BTreeMap<String, String>,
}

/// Checks the settings and loads the SASL users, or says what is wrong.
pub fn setup(config: &Config) -> Result<AuthSetup, String> {
    if config.enforce_auth_enabled {
        if config.enforce_auth_schemes.is_empty() {
            return Err(
                "enforce_auth_enabled needs at least one scheme in enforce_auth_schemes".into(),
            );
        }
        for scheme in &config.enforce_auth_schemes {
            if !SCHEMES.contains(&scheme.as_str()) {
                return Err(format!(
                    "enforce_auth_schemes: unknown scheme {scheme:?} (known: {})",
                    SCHEMES.join(", ")
                ));
            }
        }
    }
    if config.secure_port.is_some() && config.tls.is_none() {
        return Err("secure_port needs a [tls] section with cert_file and key_file".into());
    }
    Ok(AuthSetup {
        sasl_users: config.sasl.load_users()?,
    })
}

/// Whether a connection's identities satisfy enforcement.
pub fn is_authenticated(identities: &[Id], schemes: &[String]) -> bool {
    identities.iter().any(|id| schemes.contains(&id.scheme))
}

/// A connection's SASL exchange, started by its first SASL request.
#[derive(Debug, Default)]
pub struct SaslState {
    digest: DigestMd5Server,
}

/// The outcome of one SASL request.
pub enum SaslOutcome {
    /// Reply with this token; `identity` is set when the exchange completed.
    Reply {
        token: Vec<u8>,
        identity: Option<Id>,
    },
    /// The exchange failed: answer with an error and close.
    Failed(String),
    /// No SASL users are configured.
    NotConfigured,
}

impl SaslState {
    pub fn step(&mut self, token: &[u8], users: &BTreeMap<String, String>) -> SaslOutcome {
        if users.is_empty() {
            return SaslOutcome::NotConfigured;
        }
        match self.digest.step(token, users) {
            Ok(Step::Continue(token)) => SaslOutcome::Reply {
                token,
                identity: None,
            },
            Ok(Step::Complete { token, user }) => SaslOutcome::Reply {
                token,
                identity: Some(Id::new("sasl", user)),
            },
            Err(reason) => SaslOutcome::Failed(reason),
        }
    }
}

impl Core {
    /// Under enforcement, answers and closes a connection that is not yet
    /// authenticated (`None` lets the request through).
    pub(crate) fn enforce_auth(&mut self, conn_id: ConnId, xid: i32) -> Option<Action> {
        if !self.config.enforce_auth_enabled {
            return None;
        }
        let conn = self.conns.get(&conn_id)?;
        if is_authenticated(&conn.identities, &self.config.enforce_auth_schemes) {
            return None;
        }
        let schemes: Vec<&str> = conn
            .identities
            .iter()
            .map(|id| id.scheme.as_str())
            .collect();
        let reason = format!(
            "authentication required: the connection's scheme(s) {schemes:?} match none of {:?}",
            self.config.enforce_auth_schemes
        );
        self.send_raw_reply(conn_id, xid, ErrorCode::SessionClosedRequireSaslAuth, None);
        Some(Action::Close(reason))
    }

    /// One SASL token from the client: the next token back, the `sasl`
    /// identity once the exchange completes, or an error and a close.
    pub(crate) fn sasl_request(&mut self, conn_id: ConnId, xid: i32, token: &[u8]) -> Action {
        let users = &self.config.sasl.users;
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Action::Close("connection already closed".into());
        };
        let outcome = conn
            .sasl
            .get_or_insert_with(Default::default)
            .step(token, users);
        match outcome {
            SaslOutcome::Reply { token, identity } => {
                if let Some(id) = identity {
                    tracing::info!(
                        session = format!("0x{:x}", conn.session_id),
                        user = %id.id,
                        "SASL DIGEST-MD5 authentication succeeded"
                    );
                    let is_super = self.config.sasl.super_user.as_deref() == Some(id.id.as_str());
                    if is_super && !conn.identities.iter().any(|i| i.scheme == "super") {
                        conn.identities.push(Id::new("super", ""));
                    }
                    if !conn.identities.contains(&id) {
                        conn.identities.push(id);
                    }
                }
                // ZooKeeper answers SASL with zxid 0.
                let body = Response::Sasl(SetSaslResponse {
                    token: token.into(),
                });
                self.send_raw_reply(conn_id, xid, ErrorCode::Ok, Some(&body));
                Action::Continue
            }
            SaslOutcome::NotConfigured => {
                // ZooKeeper without a JAAS Server section logs an error and
                // answers OK with a null token, leaving the connection open.
                tracing::warn!("SASL request, but no SASL users are configured");
                self.send_raw_reply(conn_id, xid, ErrorCode::Ok, Some(&Response::Empty));
                Action::Continue
            }
            SaslOutcome::Failed(reason) => {
                // As ZooKeeper: SessionClosedRequireSaslAuth when enforcement
                // requires SASL, AuthFailed otherwise; a null token; close.
                let code = if self.config.enforce_auth_enabled
                    && self.config.enforce_auth_schemes.iter().any(|s| s == "sasl")
                {
                    ErrorCode::SessionClosedRequireSaslAuth
                } else {
                    ErrorCode::AuthFailed
                };
                self.send_raw_reply(conn_id, xid, code, Some(&Response::Empty));
                Action::Close(format!("SASL authentication failed: {reason}"))
            }
        }
    }

    /// A reply with zxid 0. `Some(Response::Empty)` writes a null buffer
    /// (length -1), as ZooKeeper's `SetSASLResponse(null)`.
    fn send_raw_reply(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        err: ErrorCode,
        body: Option<&Response>,
    ) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let frame = build_frame(|out| {
            ReplyHeader {
                xid,
                zxid: 0,
                err: err.code(),
            }
            .encode(out);
            match body {
                Some(Response::Empty) => out.put_i32(-1),
                Some(body) => body.encode(out),
                None => {}
            }
        });
        conn.stats.sent += 1;
        let _ = conn.out.send(Outbound::Frame {
            frame,
            after: self.last_zxid,
        });
        self.stats.packets_sent += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforcement_needs_known_schemes() {
        let mut config = Config::resolve(&[]);
        assert!(setup(&config).is_ok());
        config.enforce_auth_enabled = true;
        assert!(setup(&config).is_err());
        config.enforce_auth_schemes = vec!["kerberos".into()];
        assert!(setup(&config).is_err());
        config.enforce_auth_schemes = vec!["digest".into(), "x509".into()];
        assert!(setup(&config).is_ok());
        config.secure_port = Some(0);
        assert!(setup(&config).is_err());
    }

    #[test]
    fn only_an_accepted_scheme_counts() {
        let schemes = vec!["digest".to_string(), "sasl".to_string()];
        let ip = Id::new("ip", "127.0.0.1");
        assert!(!is_authenticated(std::slice::from_ref(&ip), &schemes));
        assert!(is_authenticated(
            &[ip.clone(), Id::new("sasl", "app-a")],
            &schemes
        ));
        assert!(is_authenticated(&[ip], &["ip".to_string()]));
    }
}
