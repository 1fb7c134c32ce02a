//! Whole messages: a request frame is a [`RequestHeader`] plus the body its
//! opcode calls for ([`Request`]); a reply frame is a [`ReplyHeader`] plus the
//! body the request's opcode calls for ([`Response`]).

use bytes::{BufMut, Bytes};

use crate::error::DecodeError;
use crate::header::{ReplyHeader, RequestHeader};
use crate::jute::Jute;
use crate::multi::{MultiRequest, MultiResponse};
use crate::opcode::OpCode;
use crate::requests::*;
use crate::responses::*;
use crate::watch::*;

/// A decoded request body, one variant per opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    Sync(SyncRequest),
    Ping,
    GetChildren2(GetChildrenRequest),
    Check(CheckVersionRequest),
    Multi(MultiRequest),
    Create2(CreateRequest),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    CreateContainer(CreateRequest),
    DeleteContainer(DeleteContainerRequest),
    CreateTtl(CreateTtlRequest),
    MultiRead(MultiRequest),
    Auth(AuthPacket),
    SetWatches(SetWatches),
    Sasl(GetSaslRequest),
    GetEphemerals(GetEphemeralsRequest),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    SetWatches2(SetWatches2),
    AddWatch(AddWatchRequest),
    WhoAmI,
    CreateSession(CreateSessionRequest),
    CloseSession,
}

fn body<T: Jute>(input: &[u8]) -> Result<T, DecodeError> {
    T::from_bytes(input)
}

impl Request {
    pub fn op_code(&self) -> OpCode {
        match self {
            Request::Create(_) => OpCode::Create,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::Sync(_) => OpCode::Sync,
            Request::Ping => OpCode::Ping,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::Create2(_) => OpCode::Create2,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::DeleteContainer(_) => OpCode::DeleteContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::Sasl(_) => OpCode::Sasl,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CreateSession(_) => OpCode::CreateSession,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// Decodes the body of a request whose header named `op_type`; the body
    /// must span all of `input`.
    pub fn decode_body(op_type: i32, input: &[u8]) -> Result<Request, DecodeError> {
        let op = OpCode::from_i32(op_type).ok_or(DecodeError::UnknownOpCode(op_type))?;
        Ok(match op {
            OpCode::Create => Request::Create(body(input)?),
            OpCode::Delete => Request::Delete(body(input)?),
            OpCode::Exists => Request::Exists(body(input)?),
            OpCode::GetData => Request::GetData(body(input)?),
            OpCode::SetData => Request::SetData(body(input)?),
            OpCode::GetAcl => Request::GetAcl(body(input)?),
            OpCode::SetAcl => Request::SetAcl(body(input)?),
            OpCode::GetChildren => Request::GetChildren(body(input)?),
            OpCode::Sync => Request::Sync(body(input)?),
            OpCode::Ping => {
                empty(input)?;
                Request::Ping
            }
            OpCode::GetChildren2 => Request::GetChildren2(body(input)?),
            OpCode::Check => Request::Check(body(input)?),
            OpCode::Multi => Request::Multi(body(input)?),
            OpCode::Create2 => Request::Create2(body(input)?),
            OpCode::Reconfig => Request::Reconfig(body(input)?),
            OpCode::CheckWatches => Request::CheckWatches(body(input)?),
            OpCode::RemoveWatches => Request::RemoveWatches(body(input)?),
            OpCode::CreateContainer => Request::CreateContainer(body(input)?),
            OpCode::DeleteContainer => Request::DeleteContainer(body(input)?),
            OpCode::CreateTtl => Request::CreateTtl(body(input)?),
            OpCode::MultiRead => Request::MultiRead(body(input)?),
            OpCode::Auth => Request::Auth(body(input)?),
            OpCode::SetWatches => Request::SetWatches(body(input)?),
            OpCode::Sasl => Request::Sasl(body(input)?),
            OpCode::GetEphemerals => Request::GetEphemerals(body(input)?),
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(body(input)?),
            OpCode::SetWatches2 => Request::SetWatches2(body(input)?),
            OpCode::AddWatch => Request::AddWatch(body(input)?),
            OpCode::WhoAmI => {
                empty(input)?;
                Request::WhoAmI
            }
            OpCode::CreateSession => Request::CreateSession(body(input)?),
            OpCode::CloseSession => {
                empty(input)?;
                Request::CloseSession
            }
            OpCode::Error | OpCode::Notification => {
                return Err(DecodeError::UnexpectedOpCode(op_type))
            }
        })
    }

    /// Decodes a whole request frame (without its length prefix).
    pub fn decode_frame(frame: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
        let (rest, header) = RequestHeader::decode(frame).map_err(|_| DecodeError::Malformed)?;
        let request = Request::decode_body(header.op_type, rest)?;
        Ok((header, request))
    }

    pub fn encode_body<B: BufMut>(&self, out: &mut B) {
        match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => r.encode(out),
            Request::Delete(r) => r.encode(out),
            Request::Exists(r) => r.encode(out),
            Request::GetData(r) => r.encode(out),
            Request::SetData(r) => r.encode(out),
            Request::GetAcl(r) => r.encode(out),
            Request::SetAcl(r) => r.encode(out),
            Request::GetChildren(r) | Request::GetChildren2(r) => r.encode(out),
            Request::Sync(r) => r.encode(out),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Check(r) => r.encode(out),
            Request::Multi(r) | Request::MultiRead(r) => r.encode(out),
            Request::Reconfig(r) => r.encode(out),
            Request::CheckWatches(r) => r.encode(out),
            Request::RemoveWatches(r) => r.encode(out),
            Request::DeleteContainer(r) => r.encode(out),
            Request::CreateTtl(r) => r.encode(out),
            Request::Auth(r) => r.encode(out),
            Request::SetWatches(r) => r.encode(out),
            Request::Sasl(r) => r.encode(out),
            Request::GetEphemerals(r) => r.encode(out),
            Request::GetAllChildrenNumber(r) => r.encode(out),
            Request::SetWatches2(r) => r.encode(out),
            Request::AddWatch(r) => r.encode(out),
            Request::CreateSession(r) => r.encode(out),
        }
    }

    /// Header and body, without the length prefix.
    pub fn encode_frame<B: BufMut>(&self, xid: i32, out: &mut B) {
        RequestHeader {
            xid,
            op_type: self.op_code() as i32,
        }
        .encode(out);
        self.encode_body(out);
    }
}

fn empty(input: &[u8]) -> Result<(), DecodeError> {
    if input.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::TrailingBytes(input.len()))
    }
}

/// A decoded reply body. Which shape a reply has depends on the opcode of the
/// request it answers, so decoding needs that opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, check, ping, auth, setWatches(2), check/removeWatches,
    /// addWatch, closeSession, and every reply whose header carries an error.
    Empty,
    Create(CreateResponse),
    Create2(Create2Response),
    /// exists, setData, setACL.
    Stat(StatResponse),
    /// getData and reconfig.
    GetData(GetDataResponse),
    GetAcl(GetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    Sync(SyncResponse),
    /// multi and multiRead.
    Multi(MultiResponse),
    Sasl(SetSaslResponse),
    GetEphemerals(GetEphemeralsResponse),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    WhoAmI(WhoAmIResponse),
    /// addWatch: ZooKeeper sends an ErrorResponse of 0 as the body.
    AddWatch(ErrorResponse),
}

impl Response {
    /// Decodes the body of a successful reply to a request of opcode `op`.
    pub fn decode(op: OpCode, input: &[u8]) -> Result<Response, DecodeError> {
        Ok(match op {
            OpCode::Create => Response::Create(body(input)?),
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
                Response::Create2(body(input)?)
            }
            OpCode::Exists | OpCode::SetData | OpCode::SetAcl => Response::Stat(body(input)?),
            OpCode::GetData | OpCode::Reconfig => Response::GetData(body(input)?),
            OpCode::GetAcl => Response::GetAcl(body(input)?),
            OpCode::GetChildren => Response::GetChildren(body(input)?),
            OpCode::GetChildren2 => Response::GetChildren2(body(input)?),
            OpCode::Sync => Response::Sync(body(input)?),
            OpCode::Multi | OpCode::MultiRead => Response::Multi(body(input)?),
            OpCode::Sasl => Response::Sasl(body(input)?),
            OpCode::GetEphemerals => Response::GetEphemerals(body(input)?),
            OpCode::GetAllChildrenNumber => Response::GetAllChildrenNumber(body(input)?),
            OpCode::WhoAmI => Response::WhoAmI(body(input)?),
            OpCode::AddWatch => Response::AddWatch(body(input)?),
            _ => {
                empty(input)?;
                Response::Empty
            }
        })
    }

    pub fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            Response::Empty => {}
            Response::Create(r) => r.encode(out),
            Response::Create2(r) => r.encode(out),
            Response::Stat(r) => r.encode(out),
            Response::GetData(r) => r.encode(out),
            Response::GetAcl(r) => r.encode(out),
            Response::GetChildren(r) => r.encode(out),
            Response::GetChildren2(r) => r.encode(out),
            Response::Sync(r) => r.encode(out),
            Response::Multi(r) => r.encode(out),
            Response::Sasl(r) => r.encode(out),
            Response::GetEphemerals(r) => r.encode(out),
            Response::GetAllChildrenNumber(r) => r.encode(out),
            Response::WhoAmI(r) => r.encode(out),
            Response::AddWatch(r) => r.encode(out),
        }
    }
}

/// Builds a complete frame, 4-byte length prefix included, from a closure that
/// writes the frame's content. Writing the prefix last avoids a second copy.
pub fn build_frame(write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.put_i32(0);
    write(&mut out);
    let len = i32::try_from(out.len() - 4).expect("frames are smaller than 2 GiB");
    out[..4].copy_from_slice(&len.to_be_bytes());
    Bytes::from(out)
}

/// A complete reply frame: header, then the body if there is one.
pub fn reply_frame(header: &ReplyHeader, body: &Response) -> Bytes {
    build_frame(|out| {
        header.encode(out);
        body.encode(out);
    })
}

/// A complete notification frame (xid -1).
pub fn notification_frame(zxid: i64, event: &WatcherEvent) -> Bytes {
    build_frame(|out| {
        ReplyHeader {
            xid: crate::header::xid::NOTIFICATION,
            zxid,
            err: 0,
        }
        .encode(out);
        event.encode(out);
    })
}
