//! The `x509` scheme's identity: a client certificate's subject DN, written
//! as ZooKeeper's X509AuthenticationProvider gets it from Java's
//! `X500Principal.getName()` (RFC 2253: last RDN first, `CN=app,O=org`).
//!
//! Only the subject is needed, so this is a small DER walker rather than a
//! certificate parser; the chain itself is verified by rustls beforehand.

/// The RFC 2253 form of the certificate's subject, or `None` if the DER is
/// not a certificate this walker understands.
pub fn subject_dn(cert_der: &[u8]) -> Option<String> {
    let (certificate, _) = Tlv::read(cert_der)?;
    let (tbs, _) = Tlv::read(certificate.expect(SEQUENCE)?)?;
    let mut rest = tbs.expect(SEQUENCE)?;
    // [0] EXPLICIT version, present from v2 on.
    let (first, after) = Tlv::read(rest)?;
    if first.tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = Tlv::read(rest)?.1;
    }
    let (subject, _) = Tlv::read(rest)?;
    format_name(subject.expect(SEQUENCE)?)
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// One DER element: its tag, its content, and its whole encoding.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    encoded: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Reads one element, returning it and what follows it.
    fn read(input: &'a [u8]) -> Option<(Tlv<'a>, &'a [u8])> {
        let tag = *input.first()?;
        // Multi-byte tags never occur in the parts of a certificate read here.
        if tag & 0x1f == 0x1f {
            return None;
        }
        let first_len = *input.get(1)?;
        let (len, header) = if first_len < 0x80 {
            (first_len as usize, 2)
        } else {
            let count = (first_len & 0x7f) as usize;
            if count == 0 || count > 4 {
                return None;
            }
            let bytes = input.get(2..2 + count)?;
            let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + count)
        };
        let end = header.checked_add(len)?;
        let encoded = input.get(..end)?;
        Some((
            Tlv {
                tag,
                content: &encoded[header..],
                encoded,
            },
            &input[end..],
        ))
    }

    fn expect(&self, tag: u8) -> Option<&'a [u8]> {
        (self.tag == tag).then_some(self.content)
    }
}

/// Name ::= SEQUENCE OF SET OF { type OID, value ANY }, printed in reverse.
fn format_name(mut rdns: &[u8]) -> Option<String> {
    let mut printed = Vec::new();
    while !rdns.is_empty() {
        let (rdn, rest) = Tlv::read(rdns)?;
        rdns = rest;
        let mut avas = rdn.expect(SET)?;
        let mut parts = Vec::new();
        while !avas.is_empty() {
            let (ava, rest) = Tlv::read(avas)?;
            avas = rest;
            let (oid, value) = Tlv::read(ava.expect(SEQUENCE)?)?;
            let (value, _) = Tlv::read(value)?;
            parts.push(format_ava(&oid_text(oid.expect(OID)?)?, &value));
        }
        printed.push(parts.join("+"));
    }
    printed.reverse();
    Some(printed.join(","))
}

/// The keywords Java's RFC 2253 output uses; any other type is printed as
/// its dotted OID.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// `TYPE=value`. A string value under a keyword is escaped as RFC 2253 says;
/// anything else is `#` and the hex of its DER encoding, as Java prints it.
fn format_ava(oid: &str, value: &Tlv) -> String {
    match (keyword(oid), decode_string(value)) {
        (Some(name), Some(text)) => format!("{name}={}", escape(&text)),
        (name, _) => {
            let hex: String = value.encoded.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}=#{hex}", name.unwrap_or(oid))
        }
    }
}

/// The text of the DER string types a DN uses.
fn decode_string(value: &Tlv) -> Option<String> {
    match value.tag {
        // UTF8String, PrintableString, IA5String
        0x0c | 0x13 | 0x16 => String::from_utf8(value.content.to_vec()).ok(),
        // TeletexString: taken as Latin-1, as Java does.
        0x14 => Some(value.content.iter().map(|&b| b as char).collect()),
        // BMPString: UTF-16BE.
        0x1e => {
            let units: Vec<u16> = value
                .content
                .chunks(2)
                .map(|pair| u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16(&units).ok()
        }
        // UniversalString: UTF-32BE.
        0x1c => value
            .content
            .chunks(4)
            .map(|quad| {
                let mut word = [0u8; 4];
                word[..quad.len()].copy_from_slice(quad);
                char::from_u32(u32::from_be_bytes(word))
            })
            .collect(),
        _ => None,
    }
}

/// RFC 2253 section 2.4 escaping.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut utf8 = [0u8; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Dotted-decimal text of an OID's content bytes.
fn oid_text(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for (i, &b) in content.iter().enumerate() {
        value = value.checked_mul(128)? | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        } else if i == content.len() - 1 {
            return None;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join("."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(content.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(content);
        out
    }

    fn ava(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut inner = tlv(OID, oid);
        inner.extend(tlv(tag, value));
        tlv(SET, &tlv(SEQUENCE, &inner))
    }

    /// A certificate skeleton: only the fields before the subject matter.
    fn certificate(subject_rdns: &[Vec<u8>]) -> Vec<u8> {
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[0x01, 0x23]));
        tbs.extend(tlv(SEQUENCE, &tlv(OID, &[0x2a, 0x86, 0x48])));
        tbs.extend(tlv(SEQUENCE, &[])); // issuer
        tbs.extend(tlv(SEQUENCE, &[])); // validity
        tbs.extend(tlv(SEQUENCE, &subject_rdns.concat()));
        tlv(SEQUENCE, &tlv(SEQUENCE, &tbs))
    }

    #[test]
    fn subject_is_printed_last_rdn_first() {
        let cert = certificate(&[
            ava(&[0x55, 0x04, 0x06], 0x13, b"US"),
            ava(&[0x55, 0x04, 0x0a], 0x0c, b"Canopy"),
            ava(&[0x55, 0x04, 0x0b], 0x0c, b"Registry"),
            ava(&[0x55, 0x04, 0x03], 0x0c, b"app-a"),
        ]);
        assert_eq!(
            subject_dn(&cert).unwrap(),
            "CN=app-a,OU=Registry,O=Canopy,C=US"
        );
    }

    #[test]
    fn special_characters_are_escaped_and_unknown_types_are_hex() {
        let email_oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
        let cert = certificate(&[
            ava(&email_oid, 0x16, b"a@b"),
            ava(&[0x55, 0x04, 0x03], 0x0c, b"#a, b+c "),
        ]);
        assert_eq!(
            subject_dn(&cert).unwrap(),
            "CN=\\#a\\, b\\+c\\ ,1.2.840.113549.1.9.1=#1603614062"
        );
    }

    /// A certificate made by openssl with a hostile subject (multi-valued
    /// RDN, escapes, UTF-8, an attribute without keyword); the expected text
    /// is what Java's `X500Principal.getName()` printed for it.
    #[test]
    fn matches_java_on_a_real_certificate() {
        let der = include_bytes!("../tests/data/x509/tricky-subject.der");
        assert_eq!(
            subject_dn(der).unwrap(),
            "1.2.840.113549.1.9.1=#16056140622e63,CN=\\#svc \\\"q\\\"\\; \\<x\\>\\ ,\
             OU=R\\+D+UID=u1,O=Acme\\, Inc.,ST=Zürich,C=US,DC=example,DC=org"
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(subject_dn(&[]), None);
        assert_eq!(subject_dn(&[0x30, 0x05, 0x01]), None);
        assert_eq!(subject_dn(&tlv(SEQUENCE, &tlv(SEQUENCE, &[]))), None);
    }
}
