//! The request bodies that follow a [`crate::RequestHeader`], one record per
//! shape in `zookeeper.jute`. Several opcodes share a shape (create, create2 and
//! createContainer all send a [`CreateRequest`]).

use bytes::{BufMut, Bytes};
use nom::IResult;

use crate::data::Acl;
use crate::jute::{jute_record, Jute};

jute_record! {
    /// create (1), create2 (15) and createContainer (19).
    pub struct CreateRequest {
        pub path: String,
        pub data: Option<Bytes>,
        pub acl: Vec<Acl>,
        /// A [`crate::CreateMode`] as a number.
        pub flags: i32,
    }
}

jute_record! {
    /// createTTL (21).
    pub struct CreateTtlRequest {
        pub path: String,
        pub data: Option<Bytes>,
        pub acl: Vec<Acl>,
        pub flags: i32,
        /// Milliseconds the node may live without children or changes.
        pub ttl: i64,
    }
}

jute_record! {
    /// delete (2).
    pub struct DeleteRequest {
        pub path: String,
        /// Expected data version, or -1 for any.
        pub version: i32,
    }
}

jute_record! {
    /// exists (3).
    pub struct ExistsRequest {
        pub path: String,
        pub watch: bool,
    }
}

jute_record! {
    /// getData (4).
    pub struct GetDataRequest {
        pub path: String,
        pub watch: bool,
    }
}

jute_record! {
    /// setData (5).
    pub struct SetDataRequest {
        pub path: String,
        pub data: Option<Bytes>,
        /// Expected data version, or -1 for any.
        pub version: i32,
    }
}

jute_record! {
    /// getACL (6).
    pub struct GetAclRequest {
        pub path: String,
    }
}

jute_record! {
    /// setACL (7).
    pub struct SetAclRequest {
        pub path: String,
        pub acl: Vec<Acl>,
        /// Expected ACL version (aversion), or -1 for any.
        pub version: i32,
    }
}

jute_record! {
    /// getChildren (8) and getChildren2 (12).
    pub struct GetChildrenRequest {
        pub path: String,
        pub watch: bool,
    }
}

jute_record! {
    /// sync (9).
    pub struct SyncRequest {
        pub path: String,
    }
}

jute_record! {
    /// check (13), only inside multi in practice.
    pub struct CheckVersionRequest {
        pub path: String,
        pub version: i32,
    }
}

jute_record! {
    /// reconfig (16); fields are null when not given.
    pub struct ReconfigRequest {
        pub joining_servers: Option<String>,
        pub leaving_servers: Option<String>,
        pub new_members: Option<String>,
        pub cur_config_id: i64,
    }
}

jute_record! {
    /// auth (100), sent with xid -4: `addauth scheme auth`.
    pub struct AuthPacket {
        /// Unused; 0.
        pub auth_type: i32,
        pub scheme: String,
        pub auth: Bytes,
    }
}

jute_record! {
    /// sasl (102): one SASL token.
    pub struct GetSaslRequest {
        pub token: Bytes,
    }
}

jute_record! {
    /// getEphemerals (103): the caller's ephemeral nodes under a prefix.
    pub struct GetEphemeralsRequest {
        pub prefix_path: String,
    }
}

jute_record! {
    /// getAllChildrenNumber (104).
    pub struct GetAllChildrenNumberRequest {
        pub path: String,
    }
}

jute_record! {
    /// createSession (-10), internal to ZooKeeper's servers: the requested timeout.
    pub struct CreateSessionRequest {
        pub timeout: i32,
    }
}

/// deleteContainer (20), internal to ZooKeeper's servers. Unlike every other
/// request its body is not a jute record: it is the path's raw UTF-8 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteContainerRequest {
    pub path: String,
}

impl Jute for DeleteContainerRequest {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        let path = String::from_utf8_lossy(input).into_owned();
        Ok((&input[input.len()..], DeleteContainerRequest { path }))
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_slice(self.path.as_bytes());
    }
}

#[cfg(any(test, feature = "arbitrary"))]
impl crate::arbitrary::JuteArbitrary for DeleteContainerRequest {
    fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
        use crate::arbitrary::JuteArbitrary;
        use proptest::strategy::Strategy;
        <String as JuteArbitrary>::strategy()
            .prop_map(|path| DeleteContainerRequest { path })
            .boxed()
    }
}

/// How a znode is created: the `flags` of a create request (`CreateMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum CreateMode {
    Persistent = 0,
    Ephemeral = 1,
    PersistentSequential = 2,
    EphemeralSequential = 3,
    Container = 4,
    PersistentWithTtl = 5,
    PersistentSequentialWithTtl = 6,
}

impl CreateMode {
    pub fn from_flags(flags: i32) -> Option<CreateMode> {
        use CreateMode::*;
        [
            Persistent,
            Ephemeral,
            PersistentSequential,
            EphemeralSequential,
            Container,
            PersistentWithTtl,
            PersistentSequentialWithTtl,
        ]
        .into_iter()
        .find(|m| *m as i32 == flags)
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}
