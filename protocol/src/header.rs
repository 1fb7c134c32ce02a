//! Frame headers: every request starts with a [`RequestHeader`], every reply and
//! notification with a [`ReplyHeader`]; multi operations frame each op with a
//! [`MultiHeader`].

use crate::jute::jute_record;

jute_record! {
    /// Starts every request after the connect handshake.
    pub struct RequestHeader {
        /// Request id chosen by the client, echoed in the reply; negative ids are
        /// reserved (see [`xid`]).
        pub xid: i32,
        /// The [`crate::OpCode`] as a number.
        pub op_type: i32,
    }
}

jute_record! {
    /// Starts every server-to-client frame after the handshake.
    pub struct ReplyHeader {
        /// The request's xid, or a reserved one (see [`xid`]).
        pub xid: i32,
        /// The last zxid the server had applied when it answered.
        pub zxid: i64,
        /// 0, or an [`crate::ErrorCode`] as a number; a reply with an error has no body.
        pub err: i32,
    }
}

jute_record! {
    /// Precedes each operation (and each result) inside a multi request (reply).
    pub struct MultiHeader {
        /// Opcode of the operation that follows, or -1 for the end marker and for
        /// an error result.
        pub op_type: i32,
        /// True only on the end marker.
        pub done: bool,
        /// Error code of a result; -1 in requests and in the end marker.
        pub err: i32,
    }
}

impl MultiHeader {
    /// The header that closes a multi request or reply.
    pub const END: MultiHeader = MultiHeader {
        op_type: -1,
        done: true,
        err: -1,
    };
}

/// The reserved xids.
pub mod xid {
    /// A watch notification from the server.
    pub const NOTIFICATION: i32 = -1;
    /// A ping and its reply.
    pub const PING: i32 = -2;
    /// An `addauth` request and its reply.
    pub const AUTH: i32 = -4;
    /// The setWatches a client sends after reconnecting, and its reply.
    pub const SET_WATCHES: i32 = -8;
}
