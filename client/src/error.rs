//! The client's error type.
//!
//! Errors the server reports keep ZooKeeper's code as a typed [`ErrorCode`]
//! (`Error::Server(ErrorCode::NoNode)`), so callers match on the same names
//! the Java client throws. Conditions the client detects by itself (a lost
//! connection, an expired session, a request that took too long) get their
//! own variants, and [`Error::code`] maps them back onto ZooKeeper's codes for
//! callers that only care about the number.

use canopy_protocol::ErrorCode;

/// Every way a request can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server answered with this error code.
    #[error("server error: {0}")]
    Server(ErrorCode),
    /// The server answered with a code this client does not know.
    #[error("server error with unknown code {0}")]
    UnknownCode(i32),
    /// An operation of a multi failed; `index` is the first failing operation.
    #[error("multi operation {index} failed: {code}")]
    Multi { index: usize, code: ErrorCode },
    /// The connection was lost while the request was outstanding: it may or may
    /// not have been applied (ZooKeeper's CONNECTIONLOSS).
    #[error("connection lost")]
    ConnectionLoss,
    /// The session expired; this client handle is finished.
    #[error("session expired")]
    SessionExpired,
    /// The server refused the credentials; the session is finished.
    #[error("authentication failed")]
    AuthFailed,
    /// No reply within the per-request timeout. The request may still be
    /// applied; its late reply is discarded.
    #[error("request timed out")]
    Timeout,
    /// The client was closed (or its session task ended).
    #[error("client closed")]
    Closed,
    /// No server in the connect string accepted a session in time.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The caller passed something the server would refuse anyway (a bad path,
    /// a bad connect string); caught before anything was sent.
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The server sent something that does not decode; the connection is
    /// dropped and re-established.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl Error {
    /// The error for a non-zero code in a reply header.
    pub fn from_code(code: i32) -> Error {
        match ErrorCode::from_i32(code) {
            Some(ErrorCode::SessionExpired) => Error::SessionExpired,
            Some(ErrorCode::AuthFailed) => Error::AuthFailed,
            Some(ErrorCode::ConnectionLoss) => Error::ConnectionLoss,
            Some(code) => Error::Server(code),
            None => Error::UnknownCode(code),
        }
    }

    /// ZooKeeper's code for this error, where there is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server(code) | Error::Multi { code, .. } => Some(*code),
            Error::ConnectionLoss => Some(ErrorCode::ConnectionLoss),
            Error::SessionExpired => Some(ErrorCode::SessionExpired),
            Error::AuthFailed => Some(ErrorCode::AuthFailed),
            Error::Timeout => Some(ErrorCode::RequestTimeout),
            Error::BadArguments(_) => Some(ErrorCode::BadArguments),
            Error::Protocol(_) => Some(ErrorCode::MarshallingError),
            Error::UnknownCode(_) | Error::Closed | Error::Connect(_) => None,
        }
    }

    /// True if the server reported `code` (directly or inside a multi).
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code() == Some(code)
    }
}

/// The client's result type.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_typed_errors_and_back() {
        for code in ErrorCode::ALL {
            if code == ErrorCode::Ok {
                continue;
            }
            assert_eq!(Error::from_code(code.code()).code(), Some(code));
        }
        assert_eq!(Error::from_code(-101), Error::Server(ErrorCode::NoNode));
        assert_eq!(Error::from_code(-112), Error::SessionExpired);
        assert_eq!(Error::from_code(-999), Error::UnknownCode(-999));
    }
}
