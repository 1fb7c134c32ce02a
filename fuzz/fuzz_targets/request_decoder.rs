//! Every request decoder on arbitrary bytes: the whole frame through
//! `Request::decode_frame` (header + body, as the server reads it), the same
//! body under every opcode through `Request::decode_body`, the handshake's
//! `ConnectRequest`, and the reply decoders the client uses.
//!
//! Checked: no panic; a decoded value names the opcode it was decoded under;
//! whatever decodes re-encodes to bytes that decode to the same value, and
//! encoding that value again gives the same bytes (the encoding is canonical
//! even where the input was not: a null string, a non-zero boolean).
#![no_main]

use canopy_protocol::{ConnectRequest, Jute, OpCode, Request, RequestHeader, Response};
use libfuzzer_sys::fuzz_target;

fn encode_request(xid: i32, request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode_frame(xid, &mut out);
    out
}

fn check_request_roundtrip(header: &RequestHeader, request: &Request) {
    assert_eq!(header.op_type, request.op_code() as i32);
    let bytes = encode_request(header.xid, request);
    let (header2, request2) = Request::decode_frame(&bytes).expect("an encoded request decodes");
    assert_eq!(&header2, header);
    assert_eq!(&request2, request);
    assert_eq!(encode_request(header2.xid, &request2), bytes);
}

fn check_jute_roundtrip<T: Jute + PartialEq + std::fmt::Debug>(value: &T) {
    let bytes = value.to_bytes();
    let again = T::from_bytes(&bytes).expect("an encoded value decodes");
    assert_eq!(&again, value);
    assert_eq!(again.to_bytes(), bytes);
}

fuzz_target!(|input: &[u8]| {
    // The whole input as a request frame, as the read loop sees it.
    if let Ok((header, request)) = Request::decode_frame(input) {
        check_request_roundtrip(&header, &request);
    }

    // The input as a handshake.
    if let Ok(connect) = ConnectRequest::from_bytes(input) {
        check_jute_roundtrip(&connect);
    }

    // The input as the body of every opcode, request and reply.
    for op in OpCode::ALL {
        if let Ok(request) = Request::decode_body(op as i32, input) {
            check_request_roundtrip(
                &RequestHeader {
                    xid: 1,
                    op_type: op as i32,
                },
                &request,
            );
        }
        if let Ok(response) = Response::decode(op, input) {
            let mut bytes = Vec::new();
            response.encode(&mut bytes);
            let again = Response::decode(op, &bytes).expect("an encoded reply decodes");
            assert_eq!(again, response);
        }
    }
});
