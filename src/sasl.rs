//! SASL (opcode 102) with the DIGEST-MD5 mechanism (RFC 2831), as ZooKeeper
//! offers it through its JAAS `DigestLoginModule`: users and passwords come
//! from the configuration (a TOML table and/or the `user_<name>="password"`
//! options of a JAAS file's `Server` section), the realm is `zk-sasl-md5`,
//! and only `qop=auth` (authentication, no integrity or privacy layer) is
//! offered. A client that completes the exchange gets the identity
//! `sasl:<username>`, as ZooKeeper's SASLAuthenticationProvider gives it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use md5::{Digest, Md5};
use serde::Deserialize;

/// The realm ZooKeeper's server and clients use for DIGEST-MD5.
pub const REALM: &str = "zk-sasl-md5";
/// The service name a client puts first in its digest-uri.
const SERVICE: &str = "zookeeper";

/// `[sasl]` in the config file.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaslSettings {
    /// A JAAS file whose section (below) lists `user_<name>="password"`.
    pub jaas_file: Option<PathBuf>,
    /// The JAAS section to read (ZooKeeper's zookeeper.sasl.serverconfig).
    #[serde(default = "default_section")]
    pub jaas_section: String,
    /// Users given directly: name = password.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// This user is also `super` once authenticated (ZooKeeper's
    /// zookeeper.superUser).
    pub super_user: Option<String>,
}

fn default_section() -> String {
    "Server".to_string()
}

// Passwords stay out of `--print-config` and logs.
impl std::fmt::Debug for SaslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSettings")
            .field("jaas_file", &self.jaas_file)
            .field("jaas_section", &self.jaas_section)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("super_user", &self.super_user)
            .finish()
    }
}

impl SaslSettings {
    /// The users of the TOML table plus those of the JAAS file (the table
    /// wins for a name given in both).
    pub fn load_users(&self) -> Result<BTreeMap<String, String>, String> {
        let mut users = match &self.jaas_file {
            Some(path) => jaas_users(path, &self.jaas_section)?,
            None => BTreeMap::new(),
        };
        users.extend(self.users.clone());
        Ok(users)
    }
}

/// The `user_<name>="password"` options of one section of a JAAS file.
pub fn jaas_users(path: &Path, section: &str) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read JAAS file {}: {e}", path.display()))?;
    parse_jaas_users(&text, section).map_err(|e| format!("JAAS file {}: {e}", path.display()))
}

/// Parses JAAS syntax: `Name { module flag key="value" ...; ... };`, with
/// `//` and `/* */` comments.
pub fn parse_jaas_users(text: &str, section: &str) -> Result<BTreeMap<String, String>, String> {
    let tokens = jaas_tokens(text)?;
    let mut i = 0;
    while i < tokens.len() {
        let name = &tokens[i];
        if tokens.get(i + 1).map(String::as_str) != Some("{") {
            return Err(format!("expected `{{` after {name:?}"));
        }
        let close = tokens[i + 2..]
            .iter()
            .position(|t| t == "}")
            .map(|p| p + i + 2)
            .ok_or_else(|| format!("section {name:?} is not closed"))?;
        if name == section {
            let mut users = BTreeMap::new();
            let body = &tokens[i + 2..close];
            for (k, token) in body.iter().enumerate() {
                if token == "=" {
                    let (Some(key), Some(value)) =
                        (k.checked_sub(1).map(|p| &body[p]), body.get(k + 1))
                    else {
                        return Err("`=` without a key or a value".into());
                    };
                    if let Some(user) = key.strip_prefix("user_") {
                        users.insert(user.to_string(), value.clone());
                    }
                }
            }
            return Ok(users);
        }
        // Skip `}` and the `;` after it.
        i = close + 1;
        if tokens.get(i).map(String::as_str) == Some(";") {
            i += 1;
        }
    }
    Err(format!("no section {section:?}"))
}

/// Words, quoted strings (unquoted), and the punctuation `{ } ; =`.
fn jaas_tokens(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = ' ';
                loop {
                    match chars.next() {
                        Some('/') if previous == '*' => break,
                        Some(c) => previous = c,
                        None => return Err("unclosed comment".into()),
                    }
                }
            }
            '{' | '}' | ';' | '=' => tokens.push(c.to_string()),
            '"' => {
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => word.extend(chars.next()),
                        Some(c) => word.push(c),
                        None => return Err("unclosed quote".into()),
                    }
                }
                tokens.push(word);
            }
            c => {
                let mut word = c.to_string();
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "{};=\"".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(word);
            }
        }
    }
    Ok(tokens)
}

/// What one SASL token from the client leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this token and wait for the client's next one.
    Continue(Vec<u8>),
    /// The client is authenticated as `user`; send this last token.
    Complete { token: Vec<u8>, user: String },
}

/// The server side of one DIGEST-MD5 exchange (one per connection).
#[derive(Debug, Default)]
pub struct DigestMd5Server {
    /// The nonce of the challenge sent, once sent.
    nonce: Option<String>,
    done: bool,
}

impl DigestMd5Server {
    /// Takes the client's next token. The first (empty, DIGEST-MD5 has no
    /// initial response) gets the challenge; the second is checked against
    /// `users` and gets `rspauth`. Anything wrong ends the exchange.
    pub fn step(&mut self, token: &[u8], users: &BTreeMap<String, String>) -> Result<Step, String> {
        if self.done {
            return Err("SASL exchange already complete".into());
        }
        let Some(nonce) = self.nonce.clone() else {
            if !token.is_empty() {
                // Another mechanism's initial response (PLAIN, GSSAPI...).
                self.done = true;
                return Err(
                    "DIGEST-MD5 has no initial response; only DIGEST-MD5 is offered".into(),
                );
            }
            let nonce =
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 30]>());
            let challenge = format!(
                "realm=\"{REALM}\",nonce=\"{nonce}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess"
            );
            self.nonce = Some(nonce);
            return Ok(Step::Continue(challenge.into_bytes()));
        };
        // Whatever happens now, this exchange is over: no second guess.
        self.done = true;
        let response = parse_directives(token)?;
        let get = |key: &str| response.get(key).map(String::as_str);
        let require = |key: &str| get(key).ok_or_else(|| format!("no {key} in the response"));
        if require("nonce")? != nonce {
            return Err("nonce does not match the challenge".into());
        }
        if require("nc")? != "00000001" {
            return Err("unexpected nonce count".into());
        }
        let qop = get("qop").unwrap_or("auth");
        if qop != "auth" {
            return Err(format!("qop {qop:?} not offered"));
        }
        let digest_uri = require("digest-uri")?;
        if digest_uri.split('/').next() != Some(SERVICE) {
            return Err(format!("digest-uri {digest_uri:?} is not for {SERVICE}"));
        }
        let realm = get("realm").unwrap_or("");
        if !realm.is_empty() && realm != REALM {
            return Err(format!("unknown realm {realm:?}"));
        }
        let utf8 = get("charset") == Some("utf-8");
        let username = require("username")?;
        let password = users
            .get(username)
            .ok_or_else(|| format!("unknown user {username:?}"))?;
        let secrets = Secrets {
            username,
            realm,
            password,
            nonce: &nonce,
            cnonce: require("cnonce")?,
            nc: "00000001",
            qop,
            digest_uri,
            authzid: get("authzid"),
            utf8,
        };
        let expected = secrets.response_value("AUTHENTICATE");
        let given = require("response")?.to_ascii_lowercase();
        if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return Err(format!("wrong password for user {username:?}"));
        }
        let rspauth = format!("rspauth={}", secrets.response_value(""));
        Ok(Step::Complete {
            token: rspauth.into_bytes(),
            user: username.to_string(),
        })
    }
}

/// Everything the digest of RFC 2831 section 2.1.2.1 is computed from.
struct Secrets<'a> {
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    nonce: &'a str,
    cnonce: &'a str,
    nc: &'a str,
    qop: &'a str,
    digest_uri: &'a str,
    authzid: Option<&'a str>,
    utf8: bool,
}

impl Secrets<'_> {
    /// `response-value`: with method `AUTHENTICATE` it is what the client
    /// sends; with an empty method it is the server's `rspauth`.
    fn response_value(&self, method: &str) -> String {
        let mut key = Md5::new();
        key.update(wire_text(self.username, self.utf8));
        key.update(b":");
        key.update(wire_text(self.realm, self.utf8));
        key.update(b":");
        key.update(wire_text(self.password, self.utf8));
        let mut a1 = key.finalize().to_vec();
        a1.extend_from_slice(format!(":{}:{}", self.nonce, self.cnonce).as_bytes());
        if let Some(authzid) = self.authzid {
            a1.push(b':');
            a1.extend_from_slice(authzid.as_bytes());
        }
        let a2 = format!("{method}:{}", self.digest_uri);
        let kd = format!(
            "{}:{}:{}:{}:{}:{}",
            hex(&Md5::digest(&a1)),
            self.nonce,
            self.nc,
            self.cnonce,
            self.qop,
            hex(&Md5::digest(a2.as_bytes()))
        );
        hex(&Md5::digest(kd.as_bytes()))
    }
}

/// RFC 2831: with charset=utf-8, text that fits ISO 8859-1 is hashed as
/// ISO 8859-1, anything else as UTF-8 (Java's client and server do the same).
fn wire_text(text: &str, utf8: bool) -> Vec<u8> {
    if !utf8 || text.chars().all(|c| (c as u32) < 0x100) {
        text.chars().map(|c| c as u32 as u8).collect()
    } else {
        text.as_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `key=value, key="quoted \" value", ...` (RFC 2831's digest-response).
fn parse_directives(token: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let text = std::str::from_utf8(token).map_err(|_| "response is not UTF-8".to_string())?;
    let mut directives = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(directives);
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        let key = key.trim().to_ascii_lowercase();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err("unclosed quote in the response".into()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        if key.is_empty() {
            return Err("empty directive name".into());
        }
        if directives.insert(key.clone(), value).is_some() {
            return Err(format!("{key} given twice"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2831_example_response() {
        // The IMAP example of RFC 2831 section 4 (chris / secret).
        let secrets = Secrets {
            username: "chris",
            realm: "elwood.innosoft.com",
            password: "secret",
            nonce: "OA6MG9tEQGm2hh",
            cnonce: "OA6MHXh6VqTrRk",
            nc: "00000001",
            qop: "auth",
            digest_uri: "imap/elwood.innosoft.com",
            authzid: None,
            utf8: true,
        };
        assert_eq!(
            secrets.response_value("AUTHENTICATE"),
            "d388dad90d4bbd760a152321f2143af7"
        );
        assert_eq!(
            secrets.response_value(""),
            "ea40f60335c427b5527b84dbabcdfffd"
        );
    }

    /// Plays the client side of the exchange by the RFC.
    fn client_response(challenge: &[u8], user: &str, password: &str) -> Vec<u8> {
        let challenge = parse_directives(challenge).unwrap();
        assert_eq!(challenge["realm"], REALM);
        assert_eq!(challenge["qop"], "auth");
        let secrets = Secrets {
            username: user,
            realm: REALM,
            password,
            nonce: &challenge["nonce"],
            cnonce: "abc\"def",
            nc: "00000001",
            qop: "auth",
            digest_uri: "zookeeper/zk-sasl-md5",
            authzid: Some(user),
            utf8: true,
        };
        format!(
            "charset=utf-8,username=\"{user}\",realm=\"{REALM}\",nonce=\"{}\",nc=00000001,\
             cnonce=\"abc\\\"def\",digest-uri=\"zookeeper/zk-sasl-md5\",maxbuf=65536,\
             response={},qop=auth,authzid=\"{user}\"",
            challenge["nonce"],
            secrets.response_value("AUTHENTICATE")
        )
        .into_bytes()
    }

    fn users() -> BTreeMap<String, String> {
        BTreeMap::from([("app-a".to_string(), "s3cret".to_string())])
    }

    #[test]
    fn a_full_exchange_authenticates_the_user() {
        let mut server = DigestMd5Server::default();
        let Step::Continue(challenge) = server.step(b"", &users()).unwrap() else {
            panic!("expected a challenge");
        };
        let response = client_response(&challenge, "app-a", "s3cret");
        match server.step(&response, &users()).unwrap() {
            Step::Complete { token, user } => {
                assert_eq!(user, "app-a");
                assert!(token.starts_with(b"rspauth="));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(server.step(b"", &users()).is_err());
    }

    #[test]
    fn another_mechanism_is_refused() {
        let mut server = DigestMd5Server::default();
        assert!(server.step(b"\0app-a\0s3cret", &users()).is_err());
        assert!(server.step(b"", &users()).is_err(), "no second try");
    }

    #[test]
    fn wrong_password_unknown_user_and_replayed_nonce_fail() {
        for (user, password) in [("app-a", "wrong"), ("nobody", "s3cret")] {
            let mut server = DigestMd5Server::default();
            let Step::Continue(challenge) = server.step(b"", &users()).unwrap() else {
                panic!("expected a challenge");
            };
            let response = client_response(&challenge, user, password);
            assert!(server.step(&response, &users()).is_err());
        }
        // A response computed for another server's nonce.
        let mut first = DigestMd5Server::default();
        let Step::Continue(challenge) = first.step(b"", &users()).unwrap() else {
            panic!("expected a challenge");
        };
        let response = client_response(&challenge, "app-a", "s3cret");
        let mut second = DigestMd5Server::default();
        second.step(b"", &users()).unwrap();
        assert!(second.step(&response, &users()).is_err());
    }

    #[test]
    fn jaas_server_section_gives_users() {
        let jaas = r#"
            // ZooKeeper's example
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_super="adminsecret"
                /* two applications */
                user_app-a="a pass"
                user_bob=bobsecret;
            };
            Client {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                username="bob"
                password="bobsecret";
            };
        "#;
        let users = parse_jaas_users(jaas, "Server").unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(users["super"], "adminsecret");
        assert_eq!(users["app-a"], "a pass");
        assert_eq!(users["bob"], "bobsecret");
        assert!(parse_jaas_users(jaas, "Client").unwrap().is_empty());
        assert!(parse_jaas_users(jaas, "Nope").is_err());
        assert!(parse_jaas_users("Server { x=\"y\"", "Server").is_err());
    }
}
