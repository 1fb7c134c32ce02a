//! multi (14) and multiRead (22): several operations in one request.
//!
//! On the wire each operation is a [`MultiHeader`] followed by the operation's
//! own request record, and the list ends with [`MultiHeader::END`]. The reply has
//! the same shape, one result per operation.

use bytes::{BufMut, Bytes};
use nom::error::{Error, ErrorKind};
use nom::IResult;

use crate::data::Stat;
use crate::header::MultiHeader;
use crate::jute::Jute;
use crate::opcode::OpCode;
use crate::requests::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, GetChildrenRequest,
    GetDataRequest, SetDataRequest,
};
use crate::responses::{
    Create2Response, CreateResponse, ErrorResponse, GetChildrenResponse, GetDataResponse,
    StatResponse,
};

/// One operation of a multi (writes and check) or multiRead (reads) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    GetChildren(GetChildrenRequest),
    GetData(GetDataRequest),
}

impl MultiOp {
    pub fn op_code(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
            MultiOp::GetData(_) => OpCode::GetData,
        }
    }

    /// The znode path the operation is about.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => &r.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
        }
    }

    /// Whether the operation reads only (allowed in multiRead, not in multi).
    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetChildren(_) | MultiOp::GetData(_))
    }

    fn decode_body(op_type: i32, input: &[u8]) -> IResult<&[u8], MultiOp> {
        let op = match OpCode::from_i32(op_type) {
            Some(OpCode::Create) => map(CreateRequest::decode(input), MultiOp::Create),
            Some(OpCode::Create2) => map(CreateRequest::decode(input), MultiOp::Create2),
            Some(OpCode::CreateContainer) => {
                map(CreateRequest::decode(input), MultiOp::CreateContainer)
            }
            Some(OpCode::CreateTtl) => map(CreateTtlRequest::decode(input), MultiOp::CreateTtl),
            Some(OpCode::Delete) => map(DeleteRequest::decode(input), MultiOp::Delete),
            Some(OpCode::SetData) => map(SetDataRequest::decode(input), MultiOp::SetData),
            Some(OpCode::Check) => map(CheckVersionRequest::decode(input), MultiOp::Check),
            Some(OpCode::GetChildren) => {
                map(GetChildrenRequest::decode(input), MultiOp::GetChildren)
            }
            Some(OpCode::GetData) => map(GetDataRequest::decode(input), MultiOp::GetData),
            _ => Err(nom::Err::Error(Error::new(input, ErrorKind::Switch))),
        }?;
        Ok(op)
    }

    fn encode_body<B: BufMut>(&self, out: &mut B) {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.encode(out),
            MultiOp::CreateTtl(r) => r.encode(out),
            MultiOp::Delete(r) => r.encode(out),
            MultiOp::SetData(r) => r.encode(out),
            MultiOp::Check(r) => r.encode(out),
            MultiOp::GetChildren(r) => r.encode(out),
            MultiOp::GetData(r) => r.encode(out),
        }
    }
}

fn map<T, U>(parsed: IResult<&[u8], T>, wrap: impl FnOnce(T) -> U) -> IResult<&[u8], U> {
    parsed.map(|(rest, value)| (rest, wrap(value)))
}

/// The operations of a multi or multiRead request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiRequest {
    pub ops: Vec<MultiOp>,
}

impl Jute for MultiRequest {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        let mut ops = Vec::new();
        let mut rest = input;
        loop {
            let (after_header, header) = MultiHeader::decode(rest)?;
            if header.done {
                return Ok((after_header, MultiRequest { ops }));
            }
            let (after_op, op) = MultiOp::decode_body(header.op_type, after_header)?;
            ops.push(op);
            rest = after_op;
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        for op in &self.ops {
            MultiHeader {
                op_type: op.op_code() as i32,
                done: false,
                err: -1,
            }
            .encode(out);
            op.encode_body(out);
        }
        MultiHeader::END.encode(out);
    }
}

/// The result of one operation in a multi or multiRead reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// create: the created path.
    Create {
        path: String,
    },
    /// create2, createContainer and createTTL (`op` says which): path and Stat.
    Create2 {
        op: OpCode,
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    GetChildren {
        children: Vec<String>,
    },
    GetData {
        data: Option<Bytes>,
        stat: Stat,
    },
    /// A failed operation, or (when another operation of a failed multi is to
    /// blame) 0 for those before it and RuntimeInconsistency for those after.
    Error {
        err: i32,
    },
}

impl OpResult {
    fn op_type(&self) -> i32 {
        match self {
            OpResult::Create { .. } => OpCode::Create as i32,
            OpResult::Create2 { op, .. } => *op as i32,
            OpResult::Delete => OpCode::Delete as i32,
            OpResult::SetData { .. } => OpCode::SetData as i32,
            OpResult::Check => OpCode::Check as i32,
            OpResult::GetChildren { .. } => OpCode::GetChildren as i32,
            OpResult::GetData { .. } => OpCode::GetData as i32,
            OpResult::Error { .. } => OpCode::Error as i32,
        }
    }
}

/// The results of a multi or multiRead request, one per operation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiResponse {
    pub results: Vec<OpResult>,
}

impl Jute for MultiResponse {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        let mut results = Vec::new();
        let mut rest = input;
        loop {
            let (after_header, header) = MultiHeader::decode(rest)?;
            if header.done {
                return Ok((after_header, MultiResponse { results }));
            }
            let (after, result) = match OpCode::from_i32(header.op_type) {
                Some(OpCode::Create) => map(CreateResponse::decode(after_header), |r| {
                    OpResult::Create { path: r.path }
                })?,
                Some(op @ (OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl)) => {
                    map(Create2Response::decode(after_header), |r| {
                        OpResult::Create2 {
                            op,
                            path: r.path,
                            stat: r.stat,
                        }
                    })?
                }
                Some(OpCode::Delete) => (after_header, OpResult::Delete),
                Some(OpCode::Check) => (after_header, OpResult::Check),
                Some(OpCode::SetData) => map(StatResponse::decode(after_header), |r| {
                    OpResult::SetData { stat: r.stat }
                })?,
                Some(OpCode::GetChildren) => map(GetChildrenResponse::decode(after_header), |r| {
                    OpResult::GetChildren {
                        children: r.children,
                    }
                })?,
                Some(OpCode::GetData) => map(GetDataResponse::decode(after_header), |r| {
                    OpResult::GetData {
                        data: r.data,
                        stat: r.stat,
                    }
                })?,
                Some(OpCode::Error) => map(ErrorResponse::decode(after_header), |r| {
                    OpResult::Error { err: r.err }
                })?,
                _ => return Err(nom::Err::Error(Error::new(rest, ErrorKind::Switch))),
            };
            results.push(result);
            rest = after;
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        for result in &self.results {
            let err = match result {
                OpResult::Error { err } => *err,
                _ => 0,
            };
            MultiHeader {
                op_type: result.op_type(),
                done: false,
                err,
            }
            .encode(out);
            match result {
                OpResult::Create { path } => path.encode(out),
                OpResult::Create2 { path, stat, .. } => {
                    path.encode(out);
                    stat.encode(out);
                }
                OpResult::Delete | OpResult::Check => {}
                OpResult::SetData { stat } => stat.encode(out),
                OpResult::GetChildren { children } => children.encode(out),
                OpResult::GetData { data, stat } => {
                    data.encode(out);
                    stat.encode(out);
                }
                OpResult::Error { err } => err.encode(out),
            }
        }
        MultiHeader::END.encode(out);
    }
}

#[cfg(any(test, feature = "arbitrary"))]
mod arbitrary {
    use super::*;
    use crate::arbitrary::JuteArbitrary;
    use proptest::prelude::*;

    impl JuteArbitrary for MultiOp {
        fn strategy() -> BoxedStrategy<Self> {
            prop_oneof![
                CreateRequest::strategy().prop_map(MultiOp::Create),
                CreateRequest::strategy().prop_map(MultiOp::Create2),
                CreateRequest::strategy().prop_map(MultiOp::CreateContainer),
                CreateTtlRequest::strategy().prop_map(MultiOp::CreateTtl),
                DeleteRequest::strategy().prop_map(MultiOp::Delete),
                SetDataRequest::strategy().prop_map(MultiOp::SetData),
                CheckVersionRequest::strategy().prop_map(MultiOp::Check),
                GetChildrenRequest::strategy().prop_map(MultiOp::GetChildren),
                GetDataRequest::strategy().prop_map(MultiOp::GetData),
            ]
            .boxed()
        }
    }

    impl JuteArbitrary for MultiRequest {
        fn strategy() -> BoxedStrategy<Self> {
            Vec::<MultiOp>::strategy()
                .prop_map(|ops| MultiRequest { ops })
                .boxed()
        }
    }

    impl JuteArbitrary for OpResult {
        fn strategy() -> BoxedStrategy<Self> {
            let create2_op = prop_oneof![
                Just(OpCode::Create2),
                Just(OpCode::CreateContainer),
                Just(OpCode::CreateTtl)
            ];
            prop_oneof![
                String::strategy().prop_map(|path| OpResult::Create { path }),
                (create2_op, String::strategy(), Stat::strategy())
                    .prop_map(|(op, path, stat)| OpResult::Create2 { op, path, stat }),
                Just(OpResult::Delete),
                Stat::strategy().prop_map(|stat| OpResult::SetData { stat }),
                Just(OpResult::Check),
                Vec::<String>::strategy().prop_map(|children| OpResult::GetChildren { children }),
                (Option::<Bytes>::strategy(), Stat::strategy())
                    .prop_map(|(data, stat)| OpResult::GetData { data, stat }),
                any::<i32>().prop_map(|err| OpResult::Error { err }),
            ]
            .boxed()
        }
    }

    impl JuteArbitrary for MultiResponse {
        fn strategy() -> BoxedStrategy<Self> {
            Vec::<OpResult>::strategy()
                .prop_map(|results| MultiResponse { results })
                .boxed()
        }
    }
}
