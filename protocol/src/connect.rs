//! The session handshake: the first frame of a connection is a [`ConnectRequest`]
//! (no request header), answered by a [`ConnectResponse`].
//!
//! The trailing `readOnly` flag came with ZooKeeper 3.4; older clients omit it,
//! and the server then omits it from its answer too.

use bytes::{BufMut, Bytes};
use nom::IResult;

use crate::jute::Jute;

/// Asks for a new session (`session_id` 0) or to re-attach to an existing one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    /// Always 0.
    pub protocol_version: i32,
    /// The highest zxid the client has seen; a server behind it must refuse the client.
    pub last_zxid_seen: i64,
    /// Requested session timeout in milliseconds.
    pub timeout: i32,
    /// 0 for a new session.
    pub session_id: i64,
    /// The session's password (16 bytes; zeros for a new session).
    pub passwd: Bytes,
    /// Whether the client accepts a read-only server; `None` from clients older
    /// than 3.4, which do not send the flag.
    pub read_only: Option<bool>,
}

/// The server's answer to a [`ConnectRequest`]. A refused session (expired,
/// unknown, wrong password) is answered with a zero timeout and session id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    /// Always 0.
    pub protocol_version: i32,
    /// The negotiated session timeout in milliseconds; 0 means the session is gone.
    pub timeout: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    /// Whether this server is read-only; sent only to clients that sent the flag.
    pub read_only: Option<bool>,
}

/// Decodes the optional trailing flag: present only if a byte is left.
fn optional_flag(input: &[u8]) -> IResult<&[u8], Option<bool>> {
    if input.is_empty() {
        Ok((input, None))
    } else {
        let (rest, flag) = bool::decode(input)?;
        Ok((rest, Some(flag)))
    }
}

impl Jute for ConnectRequest {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        let (rest, protocol_version) = i32::decode(input)?;
        let (rest, last_zxid_seen) = i64::decode(rest)?;
        let (rest, timeout) = i32::decode(rest)?;
        let (rest, session_id) = i64::decode(rest)?;
        let (rest, passwd) = Bytes::decode(rest)?;
        let (rest, read_only) = optional_flag(rest)?;
        Ok((
            rest,
            ConnectRequest {
                protocol_version,
                last_zxid_seen,
                timeout,
                session_id,
                passwd,
                read_only,
            },
        ))
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        self.protocol_version.encode(out);
        self.last_zxid_seen.encode(out);
        self.timeout.encode(out);
        self.session_id.encode(out);
        self.passwd.encode(out);
        if let Some(flag) = self.read_only {
            flag.encode(out);
        }
    }
}

impl Jute for ConnectResponse {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        let (rest, protocol_version) = i32::decode(input)?;
        let (rest, timeout) = i32::decode(rest)?;
        let (rest, session_id) = i64::decode(rest)?;
        let (rest, passwd) = Bytes::decode(rest)?;
        let (rest, read_only) = optional_flag(rest)?;
        Ok((
            rest,
            ConnectResponse {
                protocol_version,
                timeout,
                session_id,
                passwd,
                read_only,
            },
        ))
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        self.protocol_version.encode(out);
        self.timeout.encode(out);
        self.session_id.encode(out);
        self.passwd.encode(out);
        if let Some(flag) = self.read_only {
            flag.encode(out);
        }
    }
}

#[cfg(any(test, feature = "arbitrary"))]
mod arbitrary {
    use super::*;
    use crate::arbitrary::JuteArbitrary;
    use proptest::prelude::*;

    impl JuteArbitrary for ConnectRequest {
        fn strategy() -> BoxedStrategy<Self> {
            (
                any::<i32>(),
                any::<i64>(),
                any::<i32>(),
                any::<i64>(),
                Bytes::strategy(),
                proptest::option::of(any::<bool>()),
            )
                .prop_map(
                    |(protocol_version, last_zxid_seen, timeout, session_id, passwd, read_only)| {
                        ConnectRequest {
                            protocol_version,
                            last_zxid_seen,
                            timeout,
                            session_id,
                            passwd,
                            read_only,
                        }
                    },
                )
                .boxed()
        }
    }

    impl JuteArbitrary for ConnectResponse {
        fn strategy() -> BoxedStrategy<Self> {
            (
                any::<i32>(),
                any::<i32>(),
                any::<i64>(),
                Bytes::strategy(),
                proptest::option::of(any::<bool>()),
            )
                .prop_map(
                    |(protocol_version, timeout, session_id, passwd, read_only)| ConnectResponse {
                        protocol_version,
                        timeout,
                        session_id,
                        passwd,
                        read_only,
                    },
                )
                .boxed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_clients_without_the_read_only_flag_are_accepted() {
        let request = ConnectRequest {
            timeout: 30_000,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: None,
            ..Default::default()
        };
        let bytes = request.to_bytes();
        assert_eq!(bytes.len(), 4 + 8 + 4 + 8 + 4 + 16);
        assert_eq!(ConnectRequest::from_bytes(&bytes).unwrap(), request);
    }
}
