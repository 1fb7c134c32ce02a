//! Dubbo provider and consumer URLs, and the znode-name encoding Dubbo uses for them.
//!
//! A Dubbo provider registers itself as the ephemeral znode
//! `/dubbo/<interface>/providers/<encoded URL>`, where the child name is
//! `URLEncoder.encode(url.toFullString(), "UTF-8")` in Java. Reading a provider back is
//! therefore two steps: [`decode_component`] (Java's `URLDecoder`) and [`DubboUrl::parse`]
//! (Dubbo's `URL.valueOf`). [`DubboUrl::from_node_name`] and [`DubboUrl::to_node_name`] do
//! both at once.
//!
//! Parsing follows `URL.valueOf`: `protocol://user:password@host:port/path?k=v&k2=v2`, every
//! part but the host optional. Two deliberate differences:
//! * IPv6 hosts are written in brackets (`dubbo://[::1]:20880/x`) and stored *without* them,
//!   so `host` parses as an `IpAddr`; [`DubboUrl::address`] puts them back.
//! * Components are percent-decoded, and [`Display`](fmt::Display) percent-encodes the few
//!   characters that would otherwise change the structure (`%`, `&`, `=` in keys, `?`,
//!   `@`, …), so `parse(url.to_string()) == url` for every URL. Real Dubbo URLs never contain
//!   escapes inside the URL itself, so they read the same as in Java.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// Why a URL or an encoded component could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The input was empty (or only whitespace).
    #[error("empty URL")]
    Empty,
    /// `://` or `:/` at the very start: a scheme separator without a scheme.
    #[error("URL {0:?} has a scheme separator but no protocol")]
    MissingProtocol(String),
    /// The text after the last `:` of the authority is not a port number.
    #[error("invalid port {0:?}")]
    InvalidPort(String),
    /// An IPv6 host opened with `[` and never closed.
    #[error("unterminated IPv6 host in {0:?}")]
    UnterminatedIpv6(String),
    /// `%` not followed by two hexadecimal digits (only [`decode_component`] is strict here).
    #[error("malformed percent escape at byte {0}")]
    BadEscape(usize),
    /// The decoded bytes are not UTF-8.
    #[error("percent-decoded text is not valid UTF-8")]
    InvalidUtf8,
}

/// A Dubbo URL such as
/// `dubbo://192.168.1.5:20880/com.foo.DemoService?application=demo&weight=200`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DubboUrl {
    /// `dubbo`, `tri`, `consumer`, `override`, …; empty if the URL had no scheme.
    pub protocol: String,
    /// User of the authority part; `None` when absent or empty.
    pub username: Option<String>,
    /// Password of the authority part (may be present with an empty user).
    pub password: Option<String>,
    /// Host name or address; IPv6 without brackets. May be empty (`file:///x`).
    pub host: String,
    /// Port; 0 when the URL has none, as in Dubbo.
    pub port: u16,
    /// Path *without* the leading `/` (Dubbo's `getPath()`), usually the interface name.
    pub path: String,
    /// Query parameters. A `BTreeMap` so [`Display`](fmt::Display) writes them sorted, as
    /// Dubbo's `toFullString()` does.
    pub params: BTreeMap<String, String>,
}

/// Dubbo's default provider weight.
pub const DEFAULT_WEIGHT: u32 = 100;
/// Dubbo's default warm-up period: ten minutes.
pub const DEFAULT_WARMUP_MS: u64 = 10 * 60 * 1000;
/// Dubbo's default category when the URL names none.
pub const DEFAULT_CATEGORY: &str = "providers";

impl DubboUrl {
    /// Parses a URL the way Dubbo's `URL.valueOf` does (see the module docs for the two
    /// differences). Leading and trailing control characters and spaces are ignored.
    pub fn parse(input: &str) -> Result<DubboUrl, UrlError> {
        // Java's String.trim(): everything up to and including ' '.
        let mut rest = input.trim_matches(|c: char| c <= ' ');
        if rest.is_empty() {
            return Err(UrlError::Empty);
        }
        let mut url = DubboUrl::default();

        if let Some(q) = rest.find('?') {
            url.params = parse_query(&rest[q + 1..])?;
            rest = &rest[..q];
        }

        // The scheme separator must contain the first '/', otherwise the "://" we found is
        // inside the path (e.g. a path that is itself a URL) and there is no scheme.
        let first_slash = rest.find('/');
        if let Some(i) = rest.find("://").filter(|&i| Some(i + 1) == first_slash) {
            if i == 0 {
                return Err(UrlError::MissingProtocol(input.to_owned()));
            }
            url.protocol = rest[..i].to_owned();
            rest = &rest[i + 3..];
        } else if let Some(i) = rest.find(":/").filter(|&i| Some(i + 1) == first_slash) {
            if i == 0 {
                return Err(UrlError::MissingProtocol(input.to_owned()));
            }
            url.protocol = rest[..i].to_owned();
            rest = &rest[i + 1..];
        }

        if let Some(i) = rest.find('/') {
            url.path = percent_decode_lenient(&rest[i + 1..])?;
            rest = &rest[..i];
        }

        if let Some(i) = rest.rfind('@') {
            let userinfo = &rest[..i];
            let user = match userinfo.find(':') {
                Some(j) => {
                    url.password = Some(percent_decode_lenient(&userinfo[j + 1..])?);
                    &userinfo[..j]
                }
                None => userinfo,
            };
            if !user.is_empty() {
                url.username = Some(percent_decode_lenient(user)?);
            }
            rest = &rest[i + 1..];
        }

        let (host, port) = split_host_port(rest)?;
        url.host = host.to_owned();
        url.port = port;
        Ok(url)
    }

    /// Reads a znode child name under `/dubbo/<interface>/providers` (or `consumers`, …):
    /// URL-decodes it and parses the result.
    pub fn from_node_name(name: &str) -> Result<DubboUrl, UrlError> {
        DubboUrl::parse(&decode_component(name)?)
    }

    /// The znode child name Dubbo registers for this URL: the full URL, URL-encoded.
    pub fn to_node_name(&self) -> String {
        encode_component(&self.to_string())
    }

    /// A query parameter, if present.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// The service interface: parameter `interface`, or else the path (as in Dubbo's
    /// `getServiceInterface`).
    pub fn interface(&self) -> &str {
        self.param("interface").unwrap_or(&self.path)
    }

    /// Parameter `version`, if present and non-empty.
    pub fn version(&self) -> Option<&str> {
        self.param("version").filter(|v| !v.is_empty())
    }

    /// Parameter `group`, if present and non-empty.
    pub fn group(&self) -> Option<&str> {
        self.param("group").filter(|g| !g.is_empty())
    }

    /// Parameter `category`, default `providers`.
    pub fn category(&self) -> &str {
        self.param("category")
            .filter(|c| !c.is_empty())
            .unwrap_or(DEFAULT_CATEGORY)
    }

    /// Parameter `weight`, default 100. Negative weights read as 0 (Dubbo clamps them the
    /// same way); an unparsable weight falls back to the default, as Dubbo's `getParameter`
    /// does.
    pub fn weight(&self) -> u32 {
        match self.param("weight").map(|w| w.trim().parse::<i64>()) {
            Some(Ok(w)) => w.clamp(0, i64::from(u32::MAX)) as u32,
            _ => DEFAULT_WEIGHT,
        }
    }

    /// Parameter `warmup` in milliseconds, default ten minutes.
    pub fn warmup_ms(&self) -> u64 {
        match self.param("warmup").map(|w| w.trim().parse::<i64>()) {
            Some(Ok(w)) => w.max(0) as u64,
            _ => DEFAULT_WARMUP_MS,
        }
    }

    /// When the provider started, in ms since the Unix epoch. Dubbo's consumer side copies
    /// the provider's `timestamp` into `remote.timestamp` and prefers that one for warm-up,
    /// so this does too. Unparsable values count as absent.
    pub fn timestamp_ms(&self) -> Option<i64> {
        let parse = |k: &str| self.param(k).and_then(|t| t.trim().parse::<i64>().ok());
        parse("remote.timestamp").or_else(|| parse("timestamp"))
    }

    /// `host:port`, with brackets around an IPv6 host, ready for `TcpStream::connect`.
    pub fn address(&self) -> String {
        let mut out = String::with_capacity(self.host.len() + 8);
        // Writing to a String cannot fail.
        let _ = write_address(&mut out, &self.host, self.port);
        out
    }

    /// Dubbo's service key: `group/interface:version`, the group and version omitted when
    /// absent.
    pub fn service_key(&self) -> String {
        let mut key = String::new();
        if let Some(g) = self.group() {
            key.push_str(g);
            key.push('/');
        }
        key.push_str(self.interface());
        if let Some(v) = self.version() {
            key.push(':');
            key.push_str(v);
        }
        key
    }
}

/// Writes `host:port` (IPv6 in brackets) into `out`; shared by [`DubboUrl::address`] and the
/// selectors, which build the key into a reused buffer instead of allocating per provider.
pub(crate) fn write_address(out: &mut impl fmt::Write, host: &str, port: u16) -> fmt::Result {
    if host.contains(':') {
        write!(out, "[{host}]:{port}")
    } else {
        write!(out, "{host}:{port}")
    }
}

impl fmt::Display for DubboUrl {
    /// The full URL, parameters sorted by key; parses back to an equal `DubboUrl`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.protocol.is_empty() {
            write!(f, "{}://", self.protocol)?;
        }
        if self.username.is_some() || self.password.is_some() {
            if let Some(u) = &self.username {
                write_escaped(f, u, b"%:@/?")?;
            }
            if let Some(p) = &self.password {
                f.write_char(':')?;
                write_escaped(f, p, b"%@/?")?;
            }
            f.write_char('@')?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if self.port != 0 {
            write!(f, ":{}", self.port)?;
        }
        if !self.path.is_empty() {
            f.write_char('/')?;
            write_escaped(f, &self.path, b"%?")?;
        }
        for (i, (k, v)) in self.params.iter().enumerate() {
            f.write_char(if i == 0 { '?' } else { '&' })?;
            write_escaped(f, k, b"%&=")?;
            f.write_char('=')?;
            write_escaped(f, v, b"%&")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for DubboUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DubboUrl::parse(s)
    }
}

/// Splits the authority (without user info) into host and port. Accepts `[v6]:port`,
/// `[v6]`, `host:port`, `host`, and a bare IPv6 address without brackets (more than one
/// `:`), which then has no port.
fn split_host_port(authority: &str) -> Result<(&str, u16), UrlError> {
    if let Some(inner) = authority.strip_prefix('[') {
        let close = inner
            .find(']')
            .ok_or_else(|| UrlError::UnterminatedIpv6(authority.to_owned()))?;
        let host = &inner[..close];
        let after = &inner[close + 1..];
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, parse_port(p)?)),
            None if after.is_empty() => Ok((host, 0)),
            None => Err(UrlError::InvalidPort(after.to_owned())),
        };
    }
    match authority.rfind(':') {
        // Two or more colons and no brackets: an IPv6 literal, no port.
        Some(_) if authority.matches(':').count() > 1 => Ok((authority, 0)),
        // "host:" has an empty port, which Dubbo ignores.
        Some(i) if i + 1 == authority.len() => Ok((&authority[..i], 0)),
        Some(i) => Ok((&authority[..i], parse_port(&authority[i + 1..])?)),
        None => Ok((authority, 0)),
    }
}

fn parse_port(p: &str) -> Result<u16, UrlError> {
    if p.is_empty() {
        return Ok(0);
    }
    p.parse::<u16>()
        .map_err(|_| UrlError::InvalidPort(p.to_owned()))
}

/// `a=1&b=2` into a map. Like Dubbo, a part without `=` maps the key to itself and empty
/// parts are skipped; a repeated key keeps the last value.
fn parse_query(query: &str) -> Result<BTreeMap<String, String>, UrlError> {
    let mut params = BTreeMap::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = match part.find('=') {
            Some(i) => (
                percent_decode_lenient(&part[..i])?,
                percent_decode_lenient(&part[i + 1..])?,
            ),
            None => {
                let k = percent_decode_lenient(part)?;
                (k.clone(), k)
            }
        };
        params.insert(k, v);
    }
    Ok(params)
}

/// Writes `s`, percent-encoding `%`, the given structural ASCII characters, and ASCII
/// control characters and space (which parsing would otherwise trim at the ends).
fn write_escaped(f: &mut impl fmt::Write, s: &str, special: &[u8]) -> fmt::Result {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        if b <= b' ' || b == 0x7f || special.contains(&b) {
            f.write_str(&s[start..i])?;
            write!(f, "%{b:02X}")?;
            start = i + 1;
        }
    }
    f.write_str(&s[start..])
}

/// Percent-decodes inside a URL. `%` not followed by two hex digits is kept literally (real
/// Dubbo URLs are never escaped inside, and may contain a bare `%`); `+` is *not* a space
/// here, unlike in [`decode_component`].
fn percent_decode_lenient(s: &str) -> Result<String, UrlError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(b) = hex_pair(bytes, i + 1) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| UrlError::InvalidUtf8)
}

fn hex_pair(bytes: &[u8], at: usize) -> Option<u8> {
    let hi = (*bytes.get(at)? as char).to_digit(16)?;
    let lo = (*bytes.get(at + 1)? as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// Java's `URLEncoder.encode(s, "UTF-8")`: ASCII letters, digits and `.-*_` are kept, a space
/// becomes `+`, every other byte of the UTF-8 encoding becomes `%XX` (upper-case hex). This is
/// how Dubbo turns a URL into a znode name.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 2);
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Java's `URLDecoder.decode(s, "UTF-8")`: `+` is a space, `%XX` a byte (either case), other
/// characters stand for themselves. Errors on a truncated or non-hex escape and on bytes that
/// are not UTF-8 (Java throws on the first and substitutes U+FFFD for the second; refusing is
/// safer for names we then parse).
pub fn decode_component(s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                out.push(hex_pair(bytes, i + 1).ok_or(UrlError::BadEscape(i))?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEMO: &str = "dubbo://192.168.1.5:20880/com.foo.DemoService?anyhost=true&application=demo&interface=com.foo.DemoService&methods=sayHello&side=provider&timestamp=1700000000000&version=1.0.0&weight=200&warmup=60000";

    #[test]
    fn parses_a_provider_url() {
        let u = DubboUrl::parse(DEMO).expect("parse");
        assert_eq!(u.protocol, "dubbo");
        assert_eq!(u.host, "192.168.1.5");
        assert_eq!(u.port, 20880);
        assert_eq!(u.path, "com.foo.DemoService");
        assert_eq!(u.username, None);
        assert_eq!(u.interface(), "com.foo.DemoService");
        assert_eq!(u.version(), Some("1.0.0"));
        assert_eq!(u.group(), None);
        assert_eq!(u.category(), "providers");
        assert_eq!(u.weight(), 200);
        assert_eq!(u.warmup_ms(), 60_000);
        assert_eq!(u.timestamp_ms(), Some(1_700_000_000_000));
        assert_eq!(u.param("side"), Some("provider"));
        assert_eq!(u.address(), "192.168.1.5:20880");
        assert_eq!(u.service_key(), "com.foo.DemoService:1.0.0");
        // Parameters are already sorted except `warmup`/`weight`: Display sorts them.
        let shown = u.to_string();
        assert!(
            shown.ends_with("&version=1.0.0&warmup=60000&weight=200"),
            "{shown}"
        );
        assert_eq!(DubboUrl::parse(&shown), Ok(u));
    }

    #[test]
    fn defaults_when_params_are_missing() {
        let u = DubboUrl::parse("tri://10.0.0.2:50051/org.example.Greeter").expect("parse");
        assert!(u.params.is_empty());
        assert_eq!(u.interface(), "org.example.Greeter");
        assert_eq!(u.version(), None);
        assert_eq!(u.category(), "providers");
        assert_eq!(u.weight(), DEFAULT_WEIGHT);
        assert_eq!(u.warmup_ms(), DEFAULT_WARMUP_MS);
        assert_eq!(u.timestamp_ms(), None);
        assert_eq!(u.to_string(), "tri://10.0.0.2:50051/org.example.Greeter");
    }

    #[test]
    fn remote_timestamp_wins_and_bad_numbers_fall_back() {
        let u =
            DubboUrl::parse("dubbo://h:1/x?timestamp=5&remote.timestamp=7&weight=abc&warmup=-3")
                .expect("parse");
        assert_eq!(u.timestamp_ms(), Some(7));
        assert_eq!(u.weight(), DEFAULT_WEIGHT);
        assert_eq!(u.warmup_ms(), 0);
        let u = DubboUrl::parse("dubbo://h:1/x?weight=-5&timestamp=zz").expect("parse");
        assert_eq!(u.weight(), 0);
        assert_eq!(u.timestamp_ms(), None);
    }

    #[test]
    fn ipv6_hosts() {
        let u = DubboUrl::parse("dubbo://[fe80::1:2]:20880/a.B?side=provider").expect("parse");
        assert_eq!(u.host, "fe80::1:2");
        assert_eq!(u.port, 20880);
        assert_eq!(u.address(), "[fe80::1:2]:20880");
        assert_eq!(u.to_string(), "dubbo://[fe80::1:2]:20880/a.B?side=provider");
        let u = DubboUrl::parse("dubbo://[::1]/a.B").expect("parse");
        assert_eq!((u.host.as_str(), u.port), ("::1", 0));
        let u = DubboUrl::parse("dubbo://::1/a.B").expect("parse");
        assert_eq!((u.host.as_str(), u.port), ("::1", 0));
        assert!(matches!(
            DubboUrl::parse("dubbo://[::1:20880/a"),
            Err(UrlError::UnterminatedIpv6(_))
        ));
    }

    #[test]
    fn user_info_no_port_and_errors() {
        let u = DubboUrl::parse(
            "zookeeper://admin:s3cret@zk1:2181/org.apache.dubbo.registry.RegistryService",
        )
        .expect("parse");
        assert_eq!(u.username.as_deref(), Some("admin"));
        assert_eq!(u.password.as_deref(), Some("s3cret"));
        assert_eq!(u.address(), "zk1:2181");
        let u = DubboUrl::parse("consumer://192.168.1.6/com.foo.DemoService?category=consumers")
            .expect("parse");
        assert_eq!(u.port, 0);
        assert_eq!(u.category(), "consumers");
        assert_eq!(DubboUrl::parse("  "), Err(UrlError::Empty));
        assert!(matches!(
            DubboUrl::parse("://h:1/x"),
            Err(UrlError::MissingProtocol(_))
        ));
        assert!(matches!(
            DubboUrl::parse("dubbo://h:99999/x"),
            Err(UrlError::InvalidPort(_))
        ));
        assert!(matches!(
            DubboUrl::parse("dubbo://h:8o/x"),
            Err(UrlError::InvalidPort(_))
        ));
        // A flag parameter without '=' maps to itself, as in Dubbo.
        let u = DubboUrl::parse("dubbo://h:1/x?anyhost&&a=").expect("parse");
        assert_eq!(u.param("anyhost"), Some("anyhost"));
        assert_eq!(u.param("a"), Some(""));
    }

    #[test]
    fn real_dubbo_node_names() {
        // The example from the mission document.
        let name = "dubbo%3A%2F%2F10.0.0.1%3A20880%2Forg.apache.dubbo.demo.DemoService%3Fapplication%3Ddemo-provider%26weight%3D100%26version%3D1.0.0";
        let u = DubboUrl::from_node_name(name).expect("decode");
        assert_eq!(u.address(), "10.0.0.1:20880");
        assert_eq!(u.interface(), "org.apache.dubbo.demo.DemoService");
        assert_eq!(u.param("application"), Some("demo-provider"));
        assert_eq!(u.weight(), 100);
        assert_eq!(u.version(), Some("1.0.0"));
        // Params come back sorted, so the name is the canonical (sorted) one.
        assert_eq!(
            u.to_node_name(),
            "dubbo%3A%2F%2F10.0.0.1%3A20880%2Forg.apache.dubbo.demo.DemoService%3Fapplication%3Ddemo-provider%26version%3D1.0.0%26weight%3D100"
        );

        // A Dubbo 2.7 provider as the Java registry writes it (already sorted, so it
        // re-encodes byte for byte).
        let name = "dubbo%3A%2F%2F192.168.1.5%3A20880%2Forg.apache.dubbo.demo.DemoService%3Fanyhost%3Dtrue%26application%3Ddemo-provider%26deprecated%3Dfalse%26dubbo%3D2.0.2%26dynamic%3Dtrue%26generic%3Dfalse%26interface%3Dorg.apache.dubbo.demo.DemoService%26methods%3DsayHello%2CsayHelloAsync%26pid%3D12345%26release%3D2.7.8%26side%3Dprovider%26timestamp%3D1600000000000";
        let u = DubboUrl::from_node_name(name).expect("decode");
        assert_eq!(u.param("methods"), Some("sayHello,sayHelloAsync"));
        assert_eq!(u.timestamp_ms(), Some(1_600_000_000_000));
        assert_eq!(u.to_node_name(), name);

        // A consumer node: no port, category=consumers.
        let name = "consumer%3A%2F%2F192.168.1.6%2Forg.apache.dubbo.demo.DemoService%3Fapplication%3Ddemo-consumer%26category%3Dconsumers%26check%3Dfalse%26dubbo%3D2.0.2%26interface%3Dorg.apache.dubbo.demo.DemoService%26methods%3DsayHello%26side%3Dconsumer%26timestamp%3D1600000000001";
        let u = DubboUrl::from_node_name(name).expect("decode");
        assert_eq!((u.protocol.as_str(), u.port), ("consumer", 0));
        assert_eq!(u.category(), "consumers");
        assert_eq!(u.to_node_name(), name);
    }

    #[test]
    fn java_url_encoder_compatibility() {
        assert_eq!(encode_component("a b*c-d_e.f~g"), "a+b*c-d_e.f%7Eg");
        assert_eq!(encode_component("é/"), "%C3%A9%2F");
        assert_eq!(decode_component("a+b%2fc%2F").as_deref(), Ok("a b/c/"));
        assert_eq!(decode_component("%C3%A9").as_deref(), Ok("é"));
        assert_eq!(decode_component("ab%2"), Err(UrlError::BadEscape(2)));
        assert_eq!(decode_component("%zz"), Err(UrlError::BadEscape(0)));
        assert_eq!(decode_component("%FF"), Err(UrlError::InvalidUtf8));
    }

    #[test]
    fn escapes_structure_characters_inside_values() {
        let mut u = DubboUrl::parse("dubbo://h:1/x").expect("parse");
        u.params.insert("rule".into(), "a=b&c=100%".into());
        u.params.insert("k=y".into(), " padded ".into());
        let s = u.to_string();
        assert_eq!(s, "dubbo://h:1/x?k%3Dy=%20padded%20&rule=a=b%26c=100%25");
        assert_eq!(DubboUrl::parse(&s), Ok(u));
        // A bare '%' in an unescaped Dubbo URL is kept literally.
        let u = DubboUrl::parse("dubbo://h:1/x?ratio=50%").expect("parse");
        assert_eq!(u.param("ratio"), Some("50%"));
    }

    fn host_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.-]{0,20}",
            (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
                .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
            any::<[u16; 8]>().prop_map(|a| std::net::Ipv6Addr::from(a).to_string()),
        ]
    }

    prop_compose! {
        fn url_strategy()(
            protocol in "[a-z][a-z0-9+.-]{0,8}",
            username in proptest::option::of(".{1,8}"),
            password in proptest::option::of(".{0,8}"),
            host in host_strategy(),
            port in any::<u16>(),
            path in ".{0,24}",
            params in proptest::collection::btree_map(".{0,8}", ".{0,12}", 0..6),
        ) -> DubboUrl {
            DubboUrl { protocol, username, password, host, port, path, params }
        }
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(url in url_strategy()) {
            let shown = url.to_string();
            prop_assert_eq!(DubboUrl::parse(&shown), Ok(url.clone()));
            // And through a znode name.
            prop_assert_eq!(DubboUrl::from_node_name(&url.to_node_name()), Ok(url));
        }

        #[test]
        fn encode_then_decode_round_trips(s in any::<String>()) {
            let enc = encode_component(&s);
            prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b".-*_+%".contains(&b)));
            prop_assert_eq!(decode_component(&enc), Ok(s));
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = DubboUrl::parse(&s);
            let _ = decode_component(&s);
        }
    }
}
