//! Access control as ZooKeeper does it: the `world`, `auth`, `digest`, `ip` and
//! `super` schemes, permission checks, and the "fixup" that validates an ACL
//! list given at create/setACL time and expands the `auth` scheme.

use std::net::IpAddr;

use base64::Engine;
use canopy_protocol::{Acl, ErrorCode, Id};
use sha1::{Digest, Sha1};

/// `user:base64(sha1("user:password"))`: the id a digest ACL names, from the
/// `user:password` a client gives to `addauth digest`.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Whether an identity of this scheme was proven by the client (so `auth` ACLs
/// may expand to it). An `ip` identity is only observed, not proven.
fn is_authenticated_scheme(scheme: &str) -> bool {
    matches!(scheme, "digest" | "x509" | "sasl")
}

/// Whether `id` is well-formed for its scheme (ZooKeeper's `isValid`).
fn is_valid_id(id: &Id) -> bool {
    match id.scheme.as_str() {
        "world" => id.id == "anyone",
        "digest" => id.id.split(':').count() == 2,
        "ip" => parse_cidr(&id.id).is_some(),
        "x509" | "sasl" => !id.id.is_empty(),
        _ => false,
    }
}

/// `10.0.0.1`, `10.0.0.0/8` or an IPv6 form, as (address, prefix bits).
fn parse_cidr(text: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match text.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits.parse::<u32>().ok()?)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((addr, bits))
}

/// Whether a client address matches an `ip` ACL id (address or CIDR range).
fn ip_matches(client: &str, acl_id: &str) -> bool {
    let (Ok(client), Some((net, bits))) = (client.parse::<IpAddr>(), parse_cidr(acl_id)) else {
        return false;
    };
    let client = match (client, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        _ => client,
    };
    match (client, net) {
        (IpAddr::V4(c), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(c) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(c), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(c) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Whether the identities of a connection grant `perm` on a node with `acl`.
pub fn allows(acl: &[Acl], perm: i32, identities: &[Id]) -> bool {
    if acl.is_empty() || identities.iter().any(|id| id.scheme == "super") {
        return true;
    }
    acl.iter()
        .filter(|entry| entry.perms & perm != 0)
        .any(|entry| {
            let wanted = &entry.id;
            if wanted.scheme == "world" && wanted.id == "anyone" {
                return true;
            }
            identities
                .iter()
                .filter(|have| have.scheme == wanted.scheme)
                .any(|have| match wanted.scheme.as_str() {
                    "ip" => ip_matches(&have.id, &wanted.id),
                    _ => have.id == wanted.id,
                })
        })
}

/// Checks `perm`, giving NoAuth as ZooKeeper does.
pub fn check(acl: &[Acl], perm: i32, identities: &[Id]) -> Result<(), ErrorCode> {
    if allows(acl, perm, identities) {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

/// Validates the ACL of a create or setACL: duplicates dropped, `auth`
/// expanded to the caller's proven identities, anything malformed → InvalidACL.
pub fn fixup(acl: &[Acl], identities: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut fixed: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut push = |entry: Acl| {
        if !fixed.contains(&entry) {
            fixed.push(entry);
        }
    };
    for entry in acl {
        if entry.id.scheme == "auth" {
            let mut expanded = false;
            for id in identities
                .iter()
                .filter(|id| is_authenticated_scheme(&id.scheme))
            {
                expanded = true;
                push(Acl {
                    perms: entry.perms,
                    id: id.clone(),
                });
            }
            if !expanded {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if is_valid_id(&entry.id) {
            push(entry.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(fixed)
}

/// The ACL as a client without ADMIN permission sees it: digest hashes are
/// replaced by `x` (ZooKeeper hides them since 3.4.7).
pub fn redact_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|entry| {
            if entry.id.scheme == "digest" {
                let user = entry.id.id.split(':').next().unwrap_or("");
                Acl {
                    perms: entry.perms,
                    id: Id::new("digest", format!("{user}:x")),
                }
            } else {
                entry.clone()
            }
        })
        .collect()
}

/// The identities an `addauth` adds, or AuthFailed for an unknown scheme.
/// `super_digest` is the configured `super:<hash>` id, if any.
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    super_digest: Option<&str>,
) -> Result<Vec<Id>, ErrorCode> {
    match scheme {
        "digest" => {
            let text = String::from_utf8_lossy(auth);
            let id = digest_id(&text);
            let mut ids = Vec::with_capacity(2);
            if super_digest == Some(id.as_str()) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id::new("digest", id));
            Ok(ids)
        }
        _ => Err(ErrorCode::AuthFailed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_protocol::perms;

    #[test]
    fn digest_matches_zookeeper() {
        // ZooKeeper's DigestAuthenticationProvider gives this for super:test.
        assert_eq!(
            digest_id("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }

    #[test]
    fn ip_acls_match_addresses_and_ranges() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(ip_matches("10.1.2.3", "10.0.0.0/8"));
        assert!(!ip_matches("11.1.2.3", "10.0.0.0/8"));
        assert!(ip_matches("::ffff:10.1.2.3", "10.0.0.0/8"));
        assert!(ip_matches("::1", "::1/128"));
    }

    #[test]
    fn world_anyone_and_super_pass() {
        let ip = [Id::new("ip", "127.0.0.1")];
        assert!(allows(&Acl::open_unsafe(), perms::WRITE, &ip));
        assert!(!allows(&Acl::read_unsafe(), perms::WRITE, &ip));
        assert!(allows(
            &Acl::read_unsafe(),
            perms::WRITE,
            &[Id::new("super", "")]
        ));
    }

    #[test]
    fn auth_expands_to_proven_identities_only() {
        let acl = [Acl {
            perms: perms::ALL,
            id: Id::new("auth", ""),
        }];
        assert_eq!(
            fixup(&acl, &[Id::new("ip", "127.0.0.1")]),
            Err(ErrorCode::InvalidAcl)
        );
        let ids = [Id::new("ip", "127.0.0.1"), Id::new("digest", "u:h")];
        assert_eq!(
            fixup(&acl, &ids).unwrap(),
            vec![Acl {
                perms: perms::ALL,
                id: Id::new("digest", "u:h")
            }]
        );
    }

    #[test]
    fn malformed_acls_are_invalid() {
        assert_eq!(fixup(&[], &[]), Err(ErrorCode::InvalidAcl));
        for id in [
            Id::new("world", "someone"),
            Id::new("digest", "nocolon"),
            Id::new("ip", "300.0.0.1"),
            Id::new("nosuch", "x"),
        ] {
            assert_eq!(
                fixup(&[Acl { perms: 31, id }], &[]),
                Err(ErrorCode::InvalidAcl)
            );
        }
    }
}
