//! The bytes the bench writes, built so a reader can check them: the first
//! eight bytes name the key, the next eight the write that produced them, and
//! the rest is a pattern derived from the key. A server that returns another
//! key's data, or truncates it, fails the check.

use bytes::{BufMut, Bytes, BytesMut};

/// Data of `size` bytes for `key`, written by write number `tag`.
pub fn payload(key: u64, tag: u64, size: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(size);
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&key.to_be_bytes());
    head[8..].copy_from_slice(&tag.to_be_bytes());
    out.put_slice(&head[..size.min(16)]);
    for i in 16..size {
        out.put_u8((key as usize).wrapping_add(i) as u8);
    }
    out.freeze()
}

/// Whether `data` is a payload of `size` bytes for `key` (any tag).
pub fn matches(data: &[u8], key: u64, size: usize) -> bool {
    if data.len() != size {
        return false;
    }
    let key_bytes = key.to_be_bytes();
    let head = size.min(8);
    if data[..head] != key_bytes[..head] {
        return false;
    }
    data.iter()
        .enumerate()
        .skip(16)
        .all(|(i, b)| *b == (key as usize).wrapping_add(i) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_other_keys() {
        for size in [0, 3, 8, 16, 64, 1000] {
            let p = payload(77, 5, size);
            assert_eq!(p.len(), size);
            assert!(matches(&p, 77, size));
            if size >= 1 {
                assert!(!matches(&p, 78, size) || size < 8 && p[..size] == [0; 8][..size]);
            }
            assert!(!matches(&p, 77, size + 1));
        }
        assert!(matches(&payload(1, 1, 64), 1, 64));
        assert!(!matches(&payload(1, 1, 64), 2, 64));
    }
}
