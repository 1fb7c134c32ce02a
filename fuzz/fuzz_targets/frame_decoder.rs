//! The frame codec (`FrameCodec`) on arbitrary byte streams, fed in arbitrary
//! chunks, with an arbitrary maximum frame size.
//!
//! Checked: the frames and the outcome (waiting for more, negative length,
//! too large) are those of a plain reference parser over the whole input,
//! whatever the chunking; a refused length never grows the buffer; no frame
//! exceeds the maximum; every frame re-encodes to the bytes it came from.
#![no_main]

use bytes::{Bytes, BytesMut};
use canopy_protocol::{FrameCodec, FrameError};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

#[derive(Debug, PartialEq)]
enum End {
    NeedMore,
    Negative(i32),
    TooLarge(usize),
}

/// Splits `stream` the obvious way, all at once.
fn reference(stream: &[u8], max: usize) -> (Vec<&[u8]>, End) {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        if rest.len() < 4 {
            return (frames, End::NeedMore);
        }
        let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if len < 0 {
            return (frames, End::Negative(len));
        }
        let len = len as usize;
        if len > max {
            return (frames, End::TooLarge(len));
        }
        if rest.len() < 4 + len {
            return (frames, End::NeedMore);
        }
        frames.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    // Header: the maximum frame size (up to 64 KiB, or the server default)
    // and a chunk size for feeding the stream.
    let max = match u16::from_be_bytes([input[0], input[1]]) {
        0xffff => canopy_protocol::DEFAULT_MAX_FRAME,
        n => n as usize,
    };
    let chunk = (input[2] as usize % 64) + 1;
    let stream = &input[3..];

    let mut codec = FrameCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames: Vec<BytesMut> = Vec::new();
    let mut end = End::NeedMore;
    'feed: for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let capacity_before = buf.capacity();
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max, "a frame above the maximum got through");
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(err) => {
                    assert_eq!(
                        buf.capacity(),
                        capacity_before,
                        "a refused frame grew the buffer"
                    );
                    end = match err {
                        FrameError::NegativeLength(n) => End::Negative(n),
                        FrameError::TooLarge { len, max: m } => {
                            assert_eq!(m, max);
                            End::TooLarge(len)
                        }
                        FrameError::Io(e) => panic!("I/O error from a memory buffer: {e}"),
                    };
                    break 'feed;
                }
            }
        }
    }

    let (expected_frames, expected_end) = reference(stream, max);
    assert_eq!(frames.len(), expected_frames.len());
    for (got, want) in frames.iter().zip(&expected_frames) {
        assert_eq!(got.as_ref(), *want);
    }
    assert_eq!(end, expected_end);

    // Encoding a decoded frame gives back its prefix and bytes.
    let mut encoded = BytesMut::new();
    for frame in &frames {
        codec
            .encode(Bytes::copy_from_slice(frame), &mut encoded)
            .expect("a decoded frame fits the maximum");
    }
    let consumed: usize = frames.iter().map(|f| 4 + f.len()).sum();
    assert_eq!(encoded.as_ref(), &stream[..consumed]);
});
