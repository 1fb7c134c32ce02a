//! ZooKeeper's error codes (`KeeperException.Code`) and this crate's decode error.

/// An error code as ZooKeeper puts it in a [`crate::ReplyHeader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorCode {
    Ok = 0,
    SystemError = -1,
    RuntimeInconsistency = -2,
    DataInconsistency = -3,
    ConnectionLoss = -4,
    MarshallingError = -5,
    Unimplemented = -6,
    OperationTimeout = -7,
    BadArguments = -8,
    UnknownSession = -12,
    NewConfigNoQuorum = -13,
    ReconfigInProgress = -14,
    ApiError = -100,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidCallback = -113,
    InvalidAcl = -114,
    AuthFailed = -115,
    SessionMoved = -118,
    NotReadOnly = -119,
    EphemeralOnLocalSession = -120,
    NoWatcher = -121,
    RequestTimeout = -122,
    ReconfigDisabled = -123,
    SessionClosedRequireSaslAuth = -124,
    QuotaExceeded = -125,
    Throttled = -127,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 32] = [
        ErrorCode::Ok,
        ErrorCode::SystemError,
        ErrorCode::RuntimeInconsistency,
        ErrorCode::DataInconsistency,
        ErrorCode::ConnectionLoss,
        ErrorCode::MarshallingError,
        ErrorCode::Unimplemented,
        ErrorCode::OperationTimeout,
        ErrorCode::BadArguments,
        ErrorCode::UnknownSession,
        ErrorCode::NewConfigNoQuorum,
        ErrorCode::ReconfigInProgress,
        ErrorCode::ApiError,
        ErrorCode::NoNode,
        ErrorCode::NoAuth,
        ErrorCode::BadVersion,
        ErrorCode::NoChildrenForEphemerals,
        ErrorCode::NodeExists,
        ErrorCode::NotEmpty,
        ErrorCode::SessionExpired,
        ErrorCode::InvalidCallback,
        ErrorCode::InvalidAcl,
        ErrorCode::AuthFailed,
        ErrorCode::SessionMoved,
        ErrorCode::NotReadOnly,
        ErrorCode::EphemeralOnLocalSession,
        ErrorCode::NoWatcher,
        ErrorCode::RequestTimeout,
        ErrorCode::ReconfigDisabled,
        ErrorCode::SessionClosedRequireSaslAuth,
        ErrorCode::QuotaExceeded,
        ErrorCode::Throttled,
    ];

    pub fn from_i32(code: i32) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|e| *e as i32 == code)
    }

    pub fn code(self) -> i32 {
        self as i32
    }

    /// The name ZooKeeper prints, e.g. `NoNode`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Ok => "OK",
            ErrorCode::SystemError => "SystemError",
            ErrorCode::RuntimeInconsistency => "RuntimeInconsistency",
            ErrorCode::DataInconsistency => "DataInconsistency",
            ErrorCode::ConnectionLoss => "ConnectionLoss",
            ErrorCode::MarshallingError => "MarshallingError",
            ErrorCode::Unimplemented => "Unimplemented",
            ErrorCode::OperationTimeout => "OperationTimeout",
            ErrorCode::BadArguments => "BadArguments",
            ErrorCode::UnknownSession => "UnknownSession",
            ErrorCode::NewConfigNoQuorum => "NewConfigNoQuorum",
            ErrorCode::ReconfigInProgress => "ReconfigInProgress",
            ErrorCode::ApiError => "APIError",
            ErrorCode::NoNode => "NoNode",
            ErrorCode::NoAuth => "NoAuth",
            ErrorCode::BadVersion => "BadVersion",
            ErrorCode::NoChildrenForEphemerals => "NoChildrenForEphemerals",
            ErrorCode::NodeExists => "NodeExists",
            ErrorCode::NotEmpty => "Directory not empty",
            ErrorCode::SessionExpired => "Session expired",
            ErrorCode::InvalidCallback => "Invalid callback",
            ErrorCode::InvalidAcl => "InvalidACL",
            ErrorCode::AuthFailed => "AuthFailed",
            ErrorCode::SessionMoved => "Session moved",
            ErrorCode::NotReadOnly => "Not a read-only call",
            ErrorCode::EphemeralOnLocalSession => "Ephemeral node on local session",
            ErrorCode::NoWatcher => "No such watcher",
            ErrorCode::RequestTimeout => "Request timeout",
            ErrorCode::ReconfigDisabled => "Reconfig is disabled",
            ErrorCode::SessionClosedRequireSaslAuth => {
                "Session closed because client failed to authenticate"
            }
            ErrorCode::QuotaExceeded => "Quota has exceeded",
            ErrorCode::Throttled => "Op throttled due to high load",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for ErrorCode {}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed or truncated record")]
    Malformed,
    #[error("{0} unexpected bytes after the record")]
    TrailingBytes(usize),
    #[error("unknown opcode {0}")]
    UnknownOpCode(i32),
    #[error("opcode {0} is not allowed here")]
    UnexpectedOpCode(i32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_maps_back_from_its_number() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_i32(code.code()), Some(code));
        }
        assert_eq!(ErrorCode::NoNode.code(), -101);
        assert_eq!(ErrorCode::from_i32(-9), None);
    }
}
