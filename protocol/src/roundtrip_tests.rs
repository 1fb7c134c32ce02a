//! Property tests over every record: encoding then decoding gives the same
//! value and consumes every byte, and every strict prefix of an encoding is an
//! error (a truncated frame must never decode, and never panic).

use proptest::prelude::*;

use crate::arbitrary::JuteArbitrary;
use crate::jute::Jute;
use crate::*;

fn check_record<T: Jute + JuteArbitrary + PartialEq>(value: T) -> Result<(), TestCaseError> {
    let bytes = value.to_bytes();
    let decoded = T::from_bytes(&bytes);
    prop_assert_eq!(decoded.as_ref().ok(), Some(&value), "bytes {:?}", bytes);
    for cut in 0..bytes.len() {
        prop_assert!(
            T::from_bytes(&bytes[..cut]).is_err(),
            "a prefix of {} of {} bytes decoded",
            cut,
            bytes.len()
        );
    }
    Ok(())
}

macro_rules! roundtrip {
    ($($test:ident: $ty:ty),* $(,)?) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            $(
                #[test]
                fn $test(value in <$ty as JuteArbitrary>::strategy()) {
                    check_record(value)?;
                }
            )*
        }
    };
}

roundtrip! {
    id: Id,
    acl: Acl,
    stat: Stat,
    request_header: RequestHeader,
    reply_header: ReplyHeader,
    multi_header: MultiHeader,
    create_request: CreateRequest,
    create_ttl_request: CreateTtlRequest,
    delete_request: DeleteRequest,
    exists_request: ExistsRequest,
    get_data_request: GetDataRequest,
    set_data_request: SetDataRequest,
    get_acl_request: GetAclRequest,
    set_acl_request: SetAclRequest,
    get_children_request: GetChildrenRequest,
    sync_request: SyncRequest,
    check_version_request: CheckVersionRequest,
    reconfig_request: ReconfigRequest,
    auth_packet: AuthPacket,
    get_sasl_request: GetSaslRequest,
    get_ephemerals_request: GetEphemeralsRequest,
    get_all_children_number_request: GetAllChildrenNumberRequest,
    create_session_request: CreateSessionRequest,
    set_watches: SetWatches,
    set_watches2: SetWatches2,
    add_watch_request: AddWatchRequest,
    check_watches_request: CheckWatchesRequest,
    remove_watches_request: RemoveWatchesRequest,
    watcher_event: WatcherEvent,
    create_response: CreateResponse,
    create2_response: Create2Response,
    stat_response: StatResponse,
    get_data_response: GetDataResponse,
    get_acl_response: GetAclResponse,
    get_children_response: GetChildrenResponse,
    get_children2_response: GetChildren2Response,
    sync_response: SyncResponse,
    set_sasl_response: SetSaslResponse,
    get_ephemerals_response: GetEphemeralsResponse,
    get_all_children_number_response: GetAllChildrenNumberResponse,
    client_info: ClientInfo,
    who_am_i_response: WhoAmIResponse,
    error_response: ErrorResponse,
    multi_request: MultiRequest,
    multi_response: MultiResponse,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The handshake's trailing readOnly flag is optional, so dropping just that
    /// byte leaves a valid old-client encoding; any shorter prefix is an error.
    #[test]
    fn connect_request(value in ConnectRequest::strategy()) {
        let bytes = value.to_bytes();
        prop_assert_eq!(ConnectRequest::from_bytes(&bytes).ok(), Some(value.clone()));
        let mandatory = bytes.len() - usize::from(value.read_only.is_some());
        for cut in 0..mandatory {
            prop_assert!(ConnectRequest::from_bytes(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn connect_response(value in ConnectResponse::strategy()) {
        let bytes = value.to_bytes();
        prop_assert_eq!(ConnectResponse::from_bytes(&bytes).ok(), Some(value.clone()));
        let mandatory = bytes.len() - usize::from(value.read_only.is_some());
        for cut in 0..mandatory {
            prop_assert!(ConnectResponse::from_bytes(&bytes[..cut]).is_err());
        }
    }
}

/// Every request body round-trips through [`Request::decode_body`] under its
/// opcode, with the header in front (deleteContainer's raw body is excluded
/// from the truncation check: any prefix of a raw path is itself a raw path).
fn request_strategy() -> BoxedStrategy<Request> {
    prop_oneof![
        CreateRequest::strategy().prop_map(Request::Create),
        DeleteRequest::strategy().prop_map(Request::Delete),
        ExistsRequest::strategy().prop_map(Request::Exists),
        GetDataRequest::strategy().prop_map(Request::GetData),
        SetDataRequest::strategy().prop_map(Request::SetData),
        GetAclRequest::strategy().prop_map(Request::GetAcl),
        SetAclRequest::strategy().prop_map(Request::SetAcl),
        GetChildrenRequest::strategy().prop_map(Request::GetChildren),
        SyncRequest::strategy().prop_map(Request::Sync),
        Just(Request::Ping),
        GetChildrenRequest::strategy().prop_map(Request::GetChildren2),
        CheckVersionRequest::strategy().prop_map(Request::Check),
        MultiRequest::strategy().prop_map(Request::Multi),
        CreateRequest::strategy().prop_map(Request::Create2),
        ReconfigRequest::strategy().prop_map(Request::Reconfig),
        CheckWatchesRequest::strategy().prop_map(Request::CheckWatches),
        RemoveWatchesRequest::strategy().prop_map(Request::RemoveWatches),
        CreateRequest::strategy().prop_map(Request::CreateContainer),
        CreateTtlRequest::strategy().prop_map(Request::CreateTtl),
        MultiRequest::strategy().prop_map(Request::MultiRead),
        AuthPacket::strategy().prop_map(Request::Auth),
        SetWatches::strategy().prop_map(Request::SetWatches),
        GetSaslRequest::strategy().prop_map(Request::Sasl),
        GetEphemeralsRequest::strategy().prop_map(Request::GetEphemerals),
        GetAllChildrenNumberRequest::strategy().prop_map(Request::GetAllChildrenNumber),
        SetWatches2::strategy().prop_map(Request::SetWatches2),
        AddWatchRequest::strategy().prop_map(Request::AddWatch),
        Just(Request::WhoAmI),
        CreateSessionRequest::strategy().prop_map(Request::CreateSession),
        Just(Request::CloseSession),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_frames_roundtrip(request in request_strategy(), xid in any::<i32>()) {
        let mut frame = Vec::new();
        request.encode_frame(xid, &mut frame);
        let (header, decoded) = Request::decode_frame(&frame).expect("decodes");
        prop_assert_eq!(header.xid, xid);
        prop_assert_eq!(header.op_type, request.op_code() as i32);
        prop_assert_eq!(&decoded, &request);
        // Header-only requests (ping, whoAmI, closeSession) are complete at 8 bytes.
        for cut in 8..frame.len() {
            prop_assert!(Request::decode_frame(&frame[..cut]).is_err());
        }
        for cut in 0..frame.len().min(8) {
            prop_assert!(Request::decode_frame(&frame[..cut]).is_err());
        }
    }

    #[test]
    fn delete_container_body_is_the_raw_path(path in "\\PC{0,12}") {
        let body = DeleteContainerRequest { path: path.clone() }.to_bytes();
        prop_assert_eq!(body.as_ref(), path.as_bytes());
        let decoded = Request::decode_body(OpCode::DeleteContainer as i32, &body).unwrap();
        prop_assert_eq!(decoded, Request::DeleteContainer(DeleteContainerRequest { path }));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Request::decode_frame(&bytes);
        let _ = ConnectRequest::from_bytes(&bytes);
        for op in OpCode::ALL {
            let _ = Response::decode(op, &bytes);
        }
    }
}

#[test]
fn unknown_opcodes_are_refused() {
    let frame = [0, 0, 0, 1, 0, 0, 0, 10];
    assert_eq!(
        Request::decode_frame(&frame),
        Err(DecodeError::UnknownOpCode(10))
    );
}
