//! Who may connect to the client port: allow and deny lists of addresses and
//! CIDR ranges (deny wins), a per-address connection limit (ZooKeeper's
//! maxClientCnxns) and a global one. Checked once per connection, at accept,
//! before a byte is read; a refused connection is closed at once and counted.
//!
//! The rules sit behind a lock of their own so they can be replaced while the
//! server runs (SIGHUP reload, the admin API) without touching the core.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::config::Config;

/// An address range: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(
                u32::from(net) as u128,
                u32::from(ip) as u128,
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (net >> shift) == (ip >> shift)
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `fd00::/8`, or a single address (`127.0.0.2`, `::1`).
    fn from_str(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR range"))?;
        let network = network.to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => return Err(format!("{text:?}: the prefix length must be 0..={bits}")),
            },
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parses a list of ranges, naming the first bad one.
pub fn parse_list(entries: &[String]) -> Result<Vec<Cidr>, String> {
    entries.iter().map(|e| e.parse()).collect()
}

/// The rules in force.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessRules {
    /// Empty: everyone not denied may connect.
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    /// Connections one address may hold at once; 0 = no limit.
    pub max_per_address: u32,
    /// Connections the server holds at once; 0 = no limit.
    pub max_total: u32,
}

impl AccessRules {
    pub fn from_config(config: &Config) -> Result<AccessRules, String> {
        Ok(AccessRules {
            allow: parse_list(&config.allow)?,
            deny: parse_list(&config.deny)?,
            max_per_address: config.max_client_cnxns,
            max_total: config.max_connections,
        })
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Denied,
    NotAllowed,
    PerAddressLimit,
    GlobalLimit,
}

impl Refusal {
    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Denied => "denied",
            Refusal::NotAllowed => "not_allowed",
            Refusal::PerAddressLimit => "per_address_limit",
            Refusal::GlobalLimit => "global_limit",
        }
    }

    pub const ALL: [Refusal; 4] = [
        Refusal::Denied,
        Refusal::NotAllowed,
        Refusal::PerAddressLimit,
        Refusal::GlobalLimit,
    ];
}

/// Counts of refused connections, by reason.
#[derive(Debug, Default)]
pub struct RefusedCounts([AtomicU64; 4]);

impl RefusedCounts {
    pub fn get(&self, reason: Refusal) -> u64 {
        self.0[reason as usize].load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        Refusal::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// The access rules plus the count of open connections per address.
#[derive(Debug)]
pub struct AccessControl {
    rules: RwLock<AccessRules>,
    open: Mutex<OpenConnections>,
    pub refused: RefusedCounts,
    pub accepted: AtomicU64,
}

#[derive(Debug, Default)]
struct OpenConnections {
    by_address: HashMap<IpAddr, u32>,
    total: u32,
}

/// Holds a connection's place in the limits; dropping it gives the place back.
#[derive(Debug)]
pub struct Admission {
    control: Arc<AccessControl>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.control.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_address.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&self.ip);
            }
        }
    }
}

/// The rules and counts, as the admin API shows them.
#[derive(Debug, Serialize)]
pub struct AccessView {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub max_client_cnxns: u32,
    pub max_connections: u32,
    pub open_connections: u32,
    pub refused: HashMap<&'static str, u64>,
}

impl AccessControl {
    pub fn new(rules: AccessRules) -> Arc<AccessControl> {
        Arc::new(AccessControl {
            rules: RwLock::new(rules),
            open: Mutex::new(OpenConnections::default()),
            refused: RefusedCounts::default(),
            accepted: AtomicU64::new(0),
        })
    }

    pub fn rules(&self) -> AccessRules {
        self.rules.read().clone()
    }

    /// Replaces the rules; connections already open stay.
    pub fn replace(&self, rules: AccessRules) {
        *self.rules.write() = rules;
    }

    /// Decides on a new connection from `ip`: an [`Admission`] to hold for
    /// the life of the connection, or why it is refused (counted).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let ip = ip.to_canonical();
        let decision = self.decide(ip);
        match decision {
            Ok(()) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                Ok(Admission {
                    control: self.clone(),
                    ip,
                })
            }
            Err(reason) => {
                self.refused.0[reason as usize].fetch_add(1, Ordering::Relaxed);
                Err(reason)
            }
        }
    }

    fn decide(&self, ip: IpAddr) -> Result<(), Refusal> {
        let rules = self.rules.read();
        if rules.deny.iter().any(|c| c.contains(ip)) {
            return Err(Refusal::Denied);
        }
        if !rules.allow.is_empty() && !rules.allow.iter().any(|c| c.contains(ip)) {
            return Err(Refusal::NotAllowed);
        }
        let mut open = self.open.lock();
        if rules.max_total > 0 && open.total >= rules.max_total {
            return Err(Refusal::GlobalLimit);
        }
        let count = open.by_address.entry(ip).or_insert(0);
        if rules.max_per_address > 0 && *count >= rules.max_per_address {
            return Err(Refusal::PerAddressLimit);
        }
        *count += 1;
        open.total += 1;
        Ok(())
    }

    pub fn open_connections(&self) -> u32 {
        self.open.lock().total
    }

    pub fn view(&self) -> AccessView {
        let rules = self.rules();
        AccessView {
            allow: rules.allow.iter().map(|c| c.to_string()).collect(),
            deny: rules.deny.iter().map(|c| c.to_string()).collect(),
            max_client_cnxns: rules.max_per_address,
            max_connections: rules.max_total,
            open_connections: self.open_connections(),
            refused: Refusal::ALL
                .iter()
                .map(|r| (r.label(), self.refused.get(*r)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn rules(allow: &[&str], deny: &[&str], per: u32, total: u32) -> AccessRules {
        let list = |l: &[&str]| l.iter().map(|s| s.parse().unwrap()).collect();
        AccessRules {
            allow: list(allow),
            deny: list(deny),
            max_per_address: per,
            max_total: total,
        }
    }

    #[test]
    fn cidr_ranges_match_by_prefix() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        let one: Cidr = "127.0.0.2".parse().unwrap();
        assert!(one.contains(ip("127.0.0.2")));
        assert!(!one.contains(ip("127.0.0.1")));
        // An IPv4 client seen on a dual-stack socket is still IPv4.
        assert!(one.contains(ip("::ffff:127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn deny_wins_over_allow() {
        let control = AccessControl::new(rules(&["127.0.0.0/8"], &["127.0.0.2"], 0, 0));
        assert!(control.admit(ip("127.0.0.1")).is_ok());
        assert_eq!(control.admit(ip("127.0.0.2")).err(), Some(Refusal::Denied));
        assert_eq!(
            control.admit(ip("10.0.0.1")).err(),
            Some(Refusal::NotAllowed)
        );
        assert_eq!(control.refused.total(), 2);
    }

    #[test]
    fn limits_count_open_connections_and_free_on_drop() {
        let control = AccessControl::new(rules(&[], &[], 2, 3));
        let a = control.admit(ip("127.0.0.1")).unwrap();
        let _b = control.admit(ip("127.0.0.1")).unwrap();
        assert_eq!(
            control.admit(ip("127.0.0.1")).err(),
            Some(Refusal::PerAddressLimit)
        );
        let _c = control.admit(ip("127.0.0.3")).unwrap();
        assert_eq!(
            control.admit(ip("127.0.0.4")).err(),
            Some(Refusal::GlobalLimit)
        );
        drop(a);
        assert!(control.admit(ip("127.0.0.1")).is_ok());
    }
}
