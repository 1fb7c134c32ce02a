//! The reply bodies that follow a successful [`crate::ReplyHeader`]. A reply
//! whose header carries an error has no body.

use bytes::Bytes;

use crate::data::{Acl, Stat};
use crate::jute::jute_record;

jute_record! {
    /// create (1): the actual path (with a sequence suffix if sequential).
    pub struct CreateResponse {
        pub path: String,
    }
}

jute_record! {
    /// create2 (15), createContainer (19) and createTTL (21).
    pub struct Create2Response {
        pub path: String,
        pub stat: Stat,
    }
}

jute_record! {
    /// exists (3), setData (5) and setACL (7).
    pub struct StatResponse {
        pub stat: Stat,
    }
}

jute_record! {
    /// getData (4), and reconfig (16) which returns the new configuration.
    pub struct GetDataResponse {
        pub data: Option<Bytes>,
        pub stat: Stat,
    }
}

jute_record! {
    /// getACL (6).
    pub struct GetAclResponse {
        pub acl: Vec<Acl>,
        pub stat: Stat,
    }
}

jute_record! {
    /// getChildren (8).
    pub struct GetChildrenResponse {
        pub children: Vec<String>,
    }
}

jute_record! {
    /// getChildren2 (12).
    pub struct GetChildren2Response {
        pub children: Vec<String>,
        pub stat: Stat,
    }
}

jute_record! {
    /// sync (9).
    pub struct SyncResponse {
        pub path: String,
    }
}

jute_record! {
    /// sasl (102): the server's next SASL token.
    pub struct SetSaslResponse {
        pub token: Bytes,
    }
}

jute_record! {
    /// getEphemerals (103).
    pub struct GetEphemeralsResponse {
        pub ephemerals: Vec<String>,
    }
}

jute_record! {
    /// getAllChildrenNumber (104).
    pub struct GetAllChildrenNumberResponse {
        pub total_number: i32,
    }
}

jute_record! {
    /// One authenticated identity of a session, in a whoAmI reply.
    pub struct ClientInfo {
        pub auth_scheme: String,
        pub user: String,
    }
}

jute_record! {
    /// whoAmI (107).
    pub struct WhoAmIResponse {
        pub client_info: Vec<ClientInfo>,
    }
}

jute_record! {
    /// The body of an error result inside a multi reply.
    pub struct ErrorResponse {
        pub err: i32,
    }
}
