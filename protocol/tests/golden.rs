//! Golden vectors: frames recorded byte for byte between Apache ZooKeeper's
//! 3.8 Java client and its server (see `golden/README.md`). Every frame must
//! decode, and re-encode to exactly the recorded bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use canopy_protocol::{
    build_frame, xid, ConnectRequest, ConnectResponse, DecodeError, Jute, OpCode, ReplyHeader,
    Request, RequestHeader, Response, WatcherEvent,
};

/// One recorded frame: direction (true = client to server) and its bytes,
/// length prefix included.
struct Frame {
    from_client: bool,
    bytes: Vec<u8>,
    line: usize,
}

fn parse_hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn load(path: &Path) -> Vec<Frame> {
    let text = std::fs::read_to_string(path).expect("readable golden file");
    let mut frames = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        let (from_client, hex) = if let Some(hex) = line.strip_prefix('>') {
            (true, hex)
        } else if let Some(hex) = line.strip_prefix('<') {
            (false, hex)
        } else {
            continue;
        };
        frames.push(Frame {
            from_client,
            bytes: parse_hex(hex.trim()),
            line: index + 1,
        });
    }
    frames
}

fn golden_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/frames");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "txt"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The frame body after checking its length prefix.
fn body<'a>(frame: &'a Frame, file: &Path) -> &'a [u8] {
    let len = i32::from_be_bytes(frame.bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(
        len,
        frame.bytes.len() - 4,
        "{}:{} length prefix",
        file.display(),
        frame.line
    );
    &frame.bytes[4..]
}

/// Checks one recorded connection; returns the opcodes it exercised.
fn check_connection(file: &Path) -> Vec<OpCode> {
    let frames = load(file);
    let mut seen = Vec::new();
    let mut pending: HashMap<i32, OpCode> = HashMap::new();
    let mut connected_request = false;
    let mut connected_response = false;
    for frame in &frames {
        let at = format!("{}:{}", file.display(), frame.line);
        let content = body(frame, file);
        if frame.from_client && !connected_request {
            connected_request = true;
            let request = ConnectRequest::from_bytes(content)
                .unwrap_or_else(|e| panic!("{at}: connect request: {e}"));
            let again = build_frame(|out| request.encode(out));
            assert_eq!(again.as_ref(), frame.bytes.as_slice(), "{at}: re-encoded");
            continue;
        }
        if !frame.from_client && !connected_response {
            connected_response = true;
            let response = ConnectResponse::from_bytes(content)
                .unwrap_or_else(|e| panic!("{at}: connect response: {e}"));
            let again = build_frame(|out| response.encode(out));
            assert_eq!(again.as_ref(), frame.bytes.as_slice(), "{at}: re-encoded");
            continue;
        }
        if frame.from_client {
            let (header, request) = match Request::decode_frame(content) {
                Ok(decoded) => decoded,
                // A recording may hold a deliberately unknown opcode: it must be
                // refused as such, and ZooKeeper's answer is an error reply.
                Err(DecodeError::UnknownOpCode(code)) => {
                    let (_, header) = RequestHeader::decode(content)
                        .unwrap_or_else(|_| panic!("{at}: request header"));
                    assert_eq!(header.op_type, code);
                    pending.insert(header.xid, OpCode::Error);
                    continue;
                }
                Err(e) => panic!("{at}: request: {e}"),
            };
            let again = build_frame(|out| request.encode_frame(header.xid, out));
            assert_eq!(again.as_ref(), frame.bytes.as_slice(), "{at}: re-encoded");
            pending.insert(header.xid, request.op_code());
            seen.push(request.op_code());
        } else {
            let (rest, header) =
                ReplyHeader::decode(content).unwrap_or_else(|_| panic!("{at}: reply header"));
            let again = match header.xid {
                xid::NOTIFICATION => {
                    let event = WatcherEvent::from_bytes(rest)
                        .unwrap_or_else(|e| panic!("{at}: notification: {e}"));
                    build_frame(|out| {
                        header.encode(out);
                        event.encode(out);
                    })
                }
                _ => {
                    let op = match header.xid {
                        xid::PING => OpCode::Ping,
                        xid::AUTH => OpCode::Auth,
                        xid::SET_WATCHES => {
                            *pending.get(&header.xid).unwrap_or(&OpCode::SetWatches)
                        }
                        other => *pending
                            .get(&other)
                            .unwrap_or_else(|| panic!("{at}: reply to unknown xid {other}")),
                    };
                    let response = if header.err != 0 || op == OpCode::Error {
                        assert!(rest.is_empty(), "{at}: an error reply has no body");
                        Response::Empty
                    } else {
                        Response::decode(op, rest)
                            .unwrap_or_else(|e| panic!("{at}: reply to {op:?}: {e}"))
                    };
                    build_frame(|out| {
                        header.encode(out);
                        response.encode(out);
                    })
                }
            };
            assert_eq!(again.as_ref(), frame.bytes.as_slice(), "{at}: re-encoded");
        }
    }
    assert!(connected_request, "{}: no connect request", file.display());
    seen
}

#[test]
fn recorded_frames_decode_and_reencode_identically() {
    let files = golden_files();
    assert!(!files.is_empty(), "no golden frame files found");
    let mut covered = std::collections::HashSet::new();
    for file in &files {
        covered.extend(check_connection(file));
    }
    // The recordings must exercise the bulk of the protocol, not a corner.
    for op in [
        OpCode::Create,
        OpCode::Create2,
        OpCode::Delete,
        OpCode::Exists,
        OpCode::GetData,
        OpCode::SetData,
        OpCode::GetAcl,
        OpCode::SetAcl,
        OpCode::GetChildren,
        OpCode::GetChildren2,
        OpCode::Multi,
        OpCode::Ping,
        OpCode::CloseSession,
    ] {
        assert!(covered.contains(&op), "no recorded {op:?}");
    }
}
