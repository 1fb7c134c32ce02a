//! The frame codec: every message on a ZooKeeper connection is a 4-byte
//! big-endian length followed by that many bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// ZooKeeper's default `jute.maxbuffer`: the largest frame a server accepts.
pub const DEFAULT_MAX_FRAME: usize = 0xfffff;

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into frames (without their length prefix) and writes
/// frames with one. A length above `max_frame` is refused as soon as the prefix
/// is read, before any memory is reserved for the frame.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    pub fn new(max_frame: usize) -> Self {
        FrameCodec { max_frame }
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        if len < 0 {
            return Err(FrameError::NegativeLength(len));
        }
        let len = len as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(len)))
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    /// Writes `frame` (a body without prefix) with its length prefix.
    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        if frame.len() > self.max_frame {
            return Err(FrameError::TooLarge {
                len: frame.len(),
                max: self.max_frame,
            });
        }
        dst.reserve(4 + frame.len());
        dst.put_i32(frame.len() as i32);
        dst.put_slice(&frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_and_waits_for_partial_ones() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 7, 8, 0, 0, 0, 3, 1][..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().as_ref(), &[7, 8]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[2, 3]);
        assert_eq!(
            codec.decode(&mut buf).unwrap().unwrap().as_ref(),
            &[1, 2, 3]
        );
    }

    #[test]
    fn refuses_oversized_frames_before_reserving() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&[0, 0, 0, 17][..]);
        let capacity_before = buf.capacity();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        ));
        assert_eq!(buf.capacity(), capacity_before);
        let mut huge = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(FrameCodec::default().decode(&mut huge).is_err());
    }

    #[test]
    fn refuses_negative_lengths() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            FrameCodec::default().decode(&mut buf),
            Err(FrameError::NegativeLength(-1))
        ));
    }

    #[test]
    fn encodes_with_a_length_prefix() {
        let mut dst = BytesMut::new();
        FrameCodec::default()
            .encode(Bytes::from_static(b"abc"), &mut dst)
            .unwrap();
        assert_eq!(dst.as_ref(), &[0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
