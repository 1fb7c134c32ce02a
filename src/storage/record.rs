//! Change records on disk: a [`Txn`] and its header as the body of a log
//! record. The layout is Canopy's own (ZooKeeper's jute TxnHeader and txn
//! records are not needed on disk); every integer is big-endian, strings and
//! byte strings are length-prefixed, -1 meaning "none".

use bytes::Bytes;
use canopy_protocol::{Acl, Id};

use crate::txn::{Txn, TxnHeader};

mod tag {
    pub const CREATE: u8 = 1;
    pub const DELETE: u8 = 2;
    pub const SET_DATA: u8 = 3;
    pub const SET_ACL: u8 = 4;
    pub const CHECK: u8 = 5;
    pub const CREATE_SESSION: u8 = 6;
    pub const CLOSE_SESSION: u8 = 7;
    pub const MULTI: u8 = 8;
    pub const ERROR: u8 = 9;
}

/// Writes the body of a log record for one change (the zxid is in the frame).
pub fn encode(header: &TxnHeader, txn: &Txn, out: &mut Vec<u8>) {
    out.extend_from_slice(&header.time.to_be_bytes());
    out.extend_from_slice(&header.session_id.to_be_bytes());
    encode_txn(txn, out);
}

/// Reads a log record body back, with the zxid its frame carried.
pub fn decode(zxid: i64, body: &[u8]) -> Result<(TxnHeader, Txn), String> {
    let mut reader = Reader::new(body);
    let time = reader.i64()?;
    let session_id = reader.i64()?;
    let txn = decode_txn(&mut reader, 0)?;
    reader.finish()?;
    Ok((
        TxnHeader {
            zxid,
            time,
            session_id,
        },
        txn,
    ))
}

fn encode_txn(txn: &Txn, out: &mut Vec<u8>) {
    match txn {
        Txn::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => {
            out.push(tag::CREATE);
            put_str(out, path);
            put_data(out, data.as_deref());
            put_acl(out, acl);
            out.extend_from_slice(&ephemeral_owner.to_be_bytes());
            out.extend_from_slice(&parent_cversion.to_be_bytes());
        }
        Txn::Delete { path } => {
            out.push(tag::DELETE);
            put_str(out, path);
        }
        Txn::SetData {
            path,
            data,
            version,
        } => {
            out.push(tag::SET_DATA);
            put_str(out, path);
            put_data(out, data.as_deref());
            out.extend_from_slice(&version.to_be_bytes());
        }
        Txn::SetAcl { path, acl, version } => {
            out.push(tag::SET_ACL);
            put_str(out, path);
            put_acl(out, acl);
            out.extend_from_slice(&version.to_be_bytes());
        }
        Txn::Check { path } => {
            out.push(tag::CHECK);
            put_str(out, path);
        }
        Txn::CreateSession {
            session_id,
            timeout_ms,
        } => {
            out.push(tag::CREATE_SESSION);
            out.extend_from_slice(&session_id.to_be_bytes());
            out.extend_from_slice(&timeout_ms.to_be_bytes());
        }
        Txn::CloseSession { session_id } => {
            out.push(tag::CLOSE_SESSION);
            out.extend_from_slice(&session_id.to_be_bytes());
        }
        Txn::Multi(parts) => {
            out.push(tag::MULTI);
            out.extend_from_slice(&(parts.len() as u32).to_be_bytes());
            for part in parts {
                encode_txn(part, out);
            }
        }
        Txn::Error { code } => {
            out.push(tag::ERROR);
            out.extend_from_slice(&code.to_be_bytes());
        }
    }
}

fn decode_txn(reader: &mut Reader, depth: u32) -> Result<Txn, String> {
    let txn = match reader.u8()? {
        tag::CREATE => Txn::Create {
            path: reader.string()?,
            data: reader.data()?,
            acl: reader.acl()?,
            ephemeral_owner: reader.i64()?,
            parent_cversion: reader.i32()?,
        },
        tag::DELETE => Txn::Delete {
            path: reader.string()?,
        },
        tag::SET_DATA => Txn::SetData {
            path: reader.string()?,
            data: reader.data()?,
            version: reader.i32()?,
        },
        tag::SET_ACL => Txn::SetAcl {
            path: reader.string()?,
            acl: reader.acl()?,
            version: reader.i32()?,
        },
        tag::CHECK => Txn::Check {
            path: reader.string()?,
        },
        tag::CREATE_SESSION => Txn::CreateSession {
            session_id: reader.i64()?,
            timeout_ms: reader.i32()?,
        },
        tag::CLOSE_SESSION => Txn::CloseSession {
            session_id: reader.i64()?,
        },
        // Multis do not nest; refusing depth keeps a damaged record from
        // recursing without bound.
        tag::MULTI if depth == 0 => {
            let count = reader.u32()? as usize;
            let mut parts = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                parts.push(decode_txn(reader, depth + 1)?);
            }
            Txn::Multi(parts)
        }
        tag::ERROR => Txn::Error {
            code: reader.i32()?,
        },
        other => return Err(format!("unknown change record type {other}")),
    };
    Ok(txn)
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_data(out: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(bytes) => {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

pub(crate) fn put_acl(out: &mut Vec<u8>, acl: &[Acl]) {
    out.extend_from_slice(&(acl.len() as u32).to_be_bytes());
    for entry in acl {
        out.extend_from_slice(&entry.perms.to_be_bytes());
        put_str(out, &entry.id.scheme);
        put_str(out, &entry.id.id);
    }
}

/// A cursor over a record body; every read checks the length left.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Fails if bytes are left over: a record must be read exactly.
    pub fn finish(&self) -> Result<(), String> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} unexpected bytes after the record",
                self.bytes.len() - self.pos
            ))
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let slice = self
            .bytes
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or_else(|| format!("record ends early (wanted {n} bytes at {})", self.pos))?;
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let slice = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn string(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "a string is not UTF-8".to_string())
    }

    pub fn data(&mut self) -> Result<Option<Bytes>, String> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(Bytes::copy_from_slice(self.take(len as usize)?)))
    }

    pub fn acl(&mut self) -> Result<Vec<Acl>, String> {
        let count = self.u32()? as usize;
        let mut acl = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let perms = self.i32()?;
            let scheme = self.string()?;
            let id = self.string()?;
            acl.push(Acl {
                perms,
                id: Id { scheme, id },
            });
        }
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn acl_strategy() -> impl Strategy<Value = Vec<Acl>> {
        proptest::collection::vec(
            (any::<i32>(), "[a-z]{0,8}", ".{0,12}").prop_map(|(perms, scheme, id)| Acl {
                perms,
                id: Id { scheme, id },
            }),
            0..3,
        )
    }

    fn data_strategy() -> impl Strategy<Value = Option<Bytes>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from))
    }

    fn simple_txn() -> impl Strategy<Value = Txn> {
        prop_oneof![
            (
                "/[a-z/]{0,20}",
                data_strategy(),
                acl_strategy(),
                any::<i64>(),
                any::<i32>()
            )
                .prop_map(|(path, data, acl, ephemeral_owner, parent_cversion)| {
                    Txn::Create {
                        path,
                        data,
                        acl,
                        ephemeral_owner,
                        parent_cversion,
                    }
                }),
            ".{0,20}".prop_map(|path| Txn::Delete { path }),
            (".{0,20}", data_strategy(), any::<i32>()).prop_map(|(path, data, version)| {
                Txn::SetData {
                    path,
                    data,
                    version,
                }
            }),
            (".{0,20}", acl_strategy(), any::<i32>())
                .prop_map(|(path, acl, version)| Txn::SetAcl { path, acl, version }),
            ".{0,20}".prop_map(|path| Txn::Check { path }),
            (any::<i64>(), any::<i32>()).prop_map(|(session_id, timeout_ms)| {
                Txn::CreateSession {
                    session_id,
                    timeout_ms,
                }
            }),
            any::<i64>().prop_map(|session_id| Txn::CloseSession { session_id }),
            any::<i32>().prop_map(|code| Txn::Error { code }),
        ]
    }

    fn any_txn() -> impl Strategy<Value = Txn> {
        prop_oneof![
            4 => simple_txn(),
            1 => proptest::collection::vec(simple_txn(), 0..4).prop_map(Txn::Multi),
        ]
    }

    proptest! {
        #[test]
        fn records_round_trip(txn in any_txn(), zxid: i64, time: i64, session_id: i64) {
            let header = TxnHeader { zxid, time, session_id };
            let mut body = Vec::new();
            encode(&header, &txn, &mut body);
            prop_assert_eq!(decode(zxid, &body).unwrap(), (header, txn));
        }

        #[test]
        fn truncated_records_are_refused(txn in any_txn(), cut in 0usize..64) {
            let header = TxnHeader { zxid: 1, time: 2, session_id: 3 };
            let mut body = Vec::new();
            encode(&header, &txn, &mut body);
            prop_assume!(cut < body.len());
            body.truncate(body.len() - cut - 1);
            prop_assert!(decode(1, &body).is_err());
        }
    }
}
