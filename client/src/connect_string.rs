//! Connect strings (`host1:2181,host2:2181/app`), the chroot they may carry,
//! and ZooKeeper's client-side path rules.
//!
//! A chroot makes the client see the subtree under it as the whole tree:
//! every path is prefixed before it is sent and the prefix is stripped from
//! every path that comes back (created paths, watch events).

use crate::error::{Error, Result};

/// ZooKeeper's default client port, used for hosts given without one.
pub const DEFAULT_PORT: u16 = 2181;

/// A parsed connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// `(host, port)` pairs in the order given; the session shuffles them.
    pub hosts: Vec<(String, u16)>,
    /// The chroot, without a trailing slash; `None` for the real root.
    pub chroot: Option<String>,
}

impl ConnectString {
    /// Parses `host[:port][,host[:port]...][/chroot]`. IPv6 hosts go in
    /// brackets (`[::1]:2181`).
    pub fn parse(input: &str) -> Result<ConnectString> {
        let bad = |why: &str| Error::BadArguments(format!("connect string {input:?}: {why}"));
        let (hosts_part, chroot) = match input.find('/') {
            Some(at) => (&input[..at], Some(&input[at..])),
            None => (input, None),
        };
        let chroot = match chroot {
            None | Some("/") => None,
            Some(path) => {
                validate_path(path, false).map_err(|_| bad("invalid chroot"))?;
                Some(path.to_string())
            }
        };
        let mut hosts = Vec::new();
        for entry in hosts_part
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            hosts.push(parse_host(entry).ok_or_else(|| bad("invalid host"))?);
        }
        if hosts.is_empty() {
            return Err(bad("no hosts"));
        }
        Ok(ConnectString { hosts, chroot })
    }
}

fn parse_host(entry: &str) -> Option<(String, u16)> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => DEFAULT_PORT,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            Some((host.to_string(), port.parse().ok()?))
        }
        Some(_) => None,
        None => Some((entry.to_string(), DEFAULT_PORT)),
    }
}

/// Checks a path as ZooKeeper's `PathUtils.validatePath` does, so a bad
/// path fails here instead of costing a round trip. A sequential create may
/// end with `/` (the server appends the counter).
pub fn validate_path(path: &str, sequential: bool) -> Result<()> {
    let bad = |why: &str| Err(Error::BadArguments(format!("path {path:?}: {why}")));
    if !path.starts_with('/') {
        return bad("must start with /");
    }
    if path.len() == 1 {
        return Ok(());
    }
    let body = if sequential && path.ends_with('/') {
        &path[1..path.len() - 1]
    } else {
        if path.ends_with('/') {
            return bad("must not end with /");
        }
        &path[1..]
    };
    if body.is_empty() {
        return Ok(());
    }
    for component in body.split('/') {
        if component.is_empty() {
            return bad("empty component");
        }
        if component == "." || component == ".." {
            return bad("relative component");
        }
    }
    if path.chars().any(|c| {
        c == '\0'
            || ('\u{1}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c)
    }) {
        return bad("invalid character");
    }
    Ok(())
}

/// Maps client paths to server paths and back for a chroot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chroot(Option<String>);

impl Chroot {
    pub fn new(chroot: Option<String>) -> Chroot {
        Chroot(chroot)
    }

    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The server path for a client path: `/x` under `/app` is `/app/x`, and
    /// `/` is `/app` itself.
    pub fn to_server(&self, path: &str) -> String {
        match &self.0 {
            None => path.to_string(),
            Some(root) if path == "/" => root.clone(),
            Some(root) => format!("{root}{path}"),
        }
    }

    /// The client path for a server path; paths outside the chroot (which a
    /// server should never send) are returned unchanged.
    pub fn to_client(&self, path: &str) -> String {
        match &self.0 {
            None => path.to_string(),
            Some(root) => match path.strip_prefix(root.as_str()) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                _ => path.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_chroot() {
        let cs = ConnectString::parse("a:1,b:2/app/x").unwrap();
        assert_eq!(cs.hosts, vec![("a".into(), 1), ("b".into(), 2)]);
        assert_eq!(cs.chroot.as_deref(), Some("/app/x"));

        let cs = ConnectString::parse("zk1, zk2:2182").unwrap();
        assert_eq!(cs.hosts, vec![("zk1".into(), 2181), ("zk2".into(), 2182)]);
        assert_eq!(cs.chroot, None);

        let cs = ConnectString::parse("[::1]:2185,[fe80::1]/").unwrap();
        assert_eq!(
            cs.hosts,
            vec![("::1".into(), 2185), ("fe80::1".into(), 2181)]
        );
        assert_eq!(cs.chroot, None);
    }

    #[test]
    fn refuses_bad_connect_strings() {
        for bad in [
            "",
            "/app",
            "a:notaport",
            "a:1/app/",
            "a:1//x",
            "a:99999",
            "::1:2",
        ] {
            assert!(ConnectString::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn chroot_maps_both_ways() {
        let chroot = Chroot::new(Some("/app".into()));
        assert_eq!(chroot.to_server("/"), "/app");
        assert_eq!(chroot.to_server("/x/y"), "/app/x/y");
        assert_eq!(chroot.to_client("/app"), "/");
        assert_eq!(chroot.to_client("/app/x/y"), "/x/y");
        assert_eq!(chroot.to_client("/apple"), "/apple");
        let none = Chroot::default();
        assert_eq!(none.to_server("/x"), "/x");
        assert_eq!(none.to_client("/x"), "/x");
    }

    #[test]
    fn validates_paths_like_zookeeper() {
        for good in ["/", "/a", "/a/b", "/a.b/c..d", "/zookeeper"] {
            assert!(validate_path(good, false).is_ok(), "{good}");
        }
        for bad in [
            "", "a", "/a/", "//a", "/a//b", "/a/./b", "/..", "/a\0b", "/a\u{1}",
        ] {
            assert!(validate_path(bad, false).is_err(), "{bad:?}");
        }
        assert!(validate_path("/seq-", true).is_ok());
        assert!(validate_path("/dir/", true).is_ok());
        assert!(validate_path("/dir//", true).is_err());
    }
}
