//! One-line errors: `NoNode: /dubbo/x`, never a stack trace.

use canopy_client::Error;
use canopy_protocol::ErrorCode;

/// What a command reports when it fails: one line for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
}

pub type CliResult<T> = std::result::Result<T, CliError>;

impl CliError {
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
        }
    }

    /// A client error about `path`, named as ZooKeeper's Java client names
    /// its `KeeperException` codes.
    pub fn zk(err: Error, path: &str) -> CliError {
        let message = match &err {
            Error::Server(code) | Error::Multi { code, .. } => {
                format!("{}: {path}", code_name(*code))
            }
            Error::ConnectionLoss => format!("ConnectionLoss: {path}"),
            Error::SessionExpired => format!("SessionExpired: {path}"),
            Error::AuthFailed => "AuthFailed: the server refused the credentials".to_string(),
            Error::Timeout => format!("OperationTimeout: {path}"),
            Error::Closed => "ConnectionLoss: the session is closed".to_string(),
            Error::Connect(why) => format!("ConnectionLoss: {why}"),
            Error::BadArguments(why) => format!("BadArguments: {why}"),
            Error::UnknownCode(code) => format!("error code {code}: {path}"),
            Error::Protocol(why) => format!("MarshallingError: {why}"),
        };
        CliError { message }
    }
}

/// `KeeperException.Code` names in ZooKeeper's own spelling (`NoNode`,
/// `NodeExists`, `NotEmpty`, `InvalidACL`, ...).
pub fn code_name(code: ErrorCode) -> String {
    match code {
        ErrorCode::InvalidAcl => "InvalidACL".to_string(),
        ErrorCode::ApiError => "APIError".to_string(),
        other => format!("{other:?}"),
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `?` on a client call with the path at hand: `.at(path)?`.
pub trait AtPath<T> {
    fn at(self, path: &str) -> CliResult<T>;
}

impl<T> AtPath<T> for canopy_client::Result<T> {
    fn at(self, path: &str) -> CliResult<T> {
        self.map_err(|e| CliError::zk(e, path))
    }
}
