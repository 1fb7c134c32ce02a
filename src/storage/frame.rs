//! The framing shared by log segments and snapshots. Every record is
//!
//! ```text
//! [body length u32][zxid i64][body crc32c u32][header crc32c u32][body]
//! ```
//!
//! all big-endian. The header has a checksum of its own so that a damaged
//! length is told apart from a record cut short by a crash: with a good
//! header, a body that runs past the end of the file can only be a torn
//! write; a bad header followed by live data can only be damage.

/// Bytes before each record's body.
pub const HEADER_LEN: usize = 20;
/// No record is this large; a header claiming more is damaged.
const MAX_BODY: usize = 1 << 30;

/// Starts a record at the end of `out`: reserves its header, which
/// [`finish`] fills in once the body has been written after it.
pub fn start(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    at
}

/// Completes the record begun at `at` with everything written since.
pub fn finish(out: &mut [u8], at: usize, zxid: i64) {
    let body_len = (out.len() - at - HEADER_LEN) as u32;
    let body_crc = crc32c::crc32c(&out[at + HEADER_LEN..]);
    let header = &mut out[at..at + HEADER_LEN];
    header[0..4].copy_from_slice(&body_len.to_be_bytes());
    header[4..12].copy_from_slice(&zxid.to_be_bytes());
    header[12..16].copy_from_slice(&body_crc.to_be_bytes());
    let header_crc = crc32c::crc32c(&header[0..16]);
    header[16..20].copy_from_slice(&header_crc.to_be_bytes());
}

/// Appends a whole record.
#[cfg(test)]
pub fn append(out: &mut Vec<u8>, zxid: i64, body: &[u8]) {
    let at = start(out);
    out.extend_from_slice(body);
    finish(out, at, zxid);
}

/// One record read back.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Where its header starts in the file.
    pub offset: u64,
    pub zxid: i64,
    pub body: &'a [u8],
}

/// Damage that is not a torn tail: the file cannot be trusted past `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub reason: String,
}

/// How a file's records ended, when they did not end cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The file is good up to here.
    pub offset: u64,
    pub reason: String,
    /// Nothing but zeros from `offset` on: space the log writer preallocated
    /// and never reached, the normal end of a log that was not closed.
    pub zeros: bool,
}

/// Reads the records of one file in order.
pub struct Frames<'a> {
    bytes: &'a [u8],
    pos: usize,
    tail_may_be_torn: bool,
    /// Set when reading stopped at a torn tail.
    pub torn: Option<TornTail>,
}

impl<'a> Frames<'a> {
    /// Records in `bytes` from `start`. Only the newest log segment may end in
    /// a torn write (`tail_may_be_torn`); anywhere else any flaw is damage.
    pub fn new(bytes: &'a [u8], start: usize, tail_may_be_torn: bool) -> Frames<'a> {
        Frames {
            bytes,
            pos: start.min(bytes.len()),
            tail_may_be_torn,
            torn: None,
        }
    }

    /// Where the next record would start: after a torn tail, where the good
    /// part of the file ends.
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    fn rest_is_zero(&self, from: usize) -> bool {
        self.bytes
            .get(from..)
            .is_none_or(|rest| rest.iter().all(|b| *b == 0))
    }

    /// Ends the scan at a torn tail, or reports damage if a torn tail is not
    /// possible here.
    fn stop(&mut self, torn_if: bool, reason: String) -> Result<Option<Frame<'a>>, Damage> {
        let offset = self.pos as u64;
        if self.tail_may_be_torn && torn_if {
            let zeros = self.rest_is_zero(self.pos);
            self.torn = Some(TornTail {
                offset,
                reason,
                zeros,
            });
            self.pos = self.bytes.len();
            Ok(None)
        } else {
            Err(Damage { offset, reason })
        }
    }

    /// The next record; `None` at the end (check [`Frames::torn`]).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'a>>, Damage> {
        let at = self.pos;
        let remaining = self.bytes.len() - at;
        if remaining == 0 {
            return Ok(None);
        }
        if remaining < HEADER_LEN {
            return self.stop(true, format!("record header cut short ({remaining} bytes)"));
        }
        let header = &self.bytes[at..at + HEADER_LEN];
        let word = |range: std::ops::Range<usize>| {
            u32::from_be_bytes(header[range].try_into().unwrap_or([0; 4]))
        };
        if crc32c::crc32c(&header[0..16]) != word(16..20) {
            // Zeros after the header are preallocated space (or space the
            // file system gave a write that never landed): the header was the
            // last thing written, partly or not at all. Anything else is damage.
            let zeros = self.rest_is_zero(at + HEADER_LEN);
            return self.stop(zeros, "record header checksum mismatch".into());
        }
        let body_len = word(0..4) as usize;
        let zxid = i64::from_be_bytes(header[4..12].try_into().unwrap_or([0; 8]));
        if body_len > MAX_BODY {
            return self.stop(false, format!("record length {body_len} is impossible"));
        }
        let body_start = at + HEADER_LEN;
        let Some(body) = self.bytes.get(body_start..body_start + body_len) else {
            return self.stop(
                true,
                format!("record of {body_len} bytes cut short at the end of the file"),
            );
        };
        if crc32c::crc32c(body) != word(12..16) {
            let last = self.rest_is_zero(body_start + body_len);
            return self.stop(last, format!("record checksum mismatch (zxid 0x{zxid:x})"));
        }
        self.pos = body_start + body_len;
        Ok(Some(Frame {
            offset: at as u64,
            zxid,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_records() -> Vec<u8> {
        let mut out = Vec::new();
        for zxid in 1..=3 {
            append(&mut out, zxid, format!("body {zxid}").as_bytes());
        }
        out
    }

    fn read_all(bytes: &[u8], torn_ok: bool) -> Result<(Vec<i64>, Option<TornTail>), Damage> {
        let mut frames = Frames::new(bytes, 0, torn_ok);
        let mut zxids = Vec::new();
        while let Some(frame) = frames.next_frame()? {
            zxids.push(frame.zxid);
        }
        Ok((zxids, frames.torn))
    }

    #[test]
    fn records_read_back() {
        let bytes = three_records();
        let (zxids, torn) = read_all(&bytes, true).unwrap();
        assert_eq!(zxids, [1, 2, 3]);
        assert!(torn.is_none());
        let mut frames = Frames::new(&bytes, 0, false);
        assert_eq!(frames.next_frame().unwrap().unwrap().body, b"body 1");
    }

    #[test]
    fn a_cut_anywhere_in_the_last_record_is_a_torn_tail() {
        let bytes = three_records();
        let last_start = bytes.len() - (HEADER_LEN + 6);
        for cut in last_start + 1..bytes.len() {
            let (zxids, torn) = read_all(&bytes[..cut], true).unwrap();
            assert_eq!(zxids, [1, 2], "cut at {cut}");
            assert_eq!(torn.unwrap().offset, last_start as u64);
            // The same cut in a file that may not be torn is damage.
            assert_eq!(
                read_all(&bytes[..cut], false).unwrap_err().offset,
                last_start as u64
            );
        }
    }

    #[test]
    fn zeros_after_the_last_record_are_a_torn_tail() {
        let mut bytes = three_records();
        let end = bytes.len();
        bytes.extend_from_slice(&[0; 100]);
        let (zxids, torn) = read_all(&bytes, true).unwrap();
        assert_eq!(zxids, [1, 2, 3]);
        let torn = torn.unwrap();
        assert_eq!(torn.offset, end as u64);
        assert!(torn.zeros, "untouched preallocated space");
        // In a segment that is not the newest, they are damage.
        assert_eq!(read_all(&bytes, false).unwrap_err().offset, end as u64);
    }

    #[test]
    fn a_record_torn_inside_preallocated_space_is_a_torn_tail() {
        let clean = three_records();
        let last_start = clean.len() - (HEADER_LEN + 6);
        // The last write landed only in part; the rest is still preallocated
        // zeros. Any prefix of it, header or body, is a torn tail.
        for cut in last_start + 1..clean.len() {
            let mut bytes = clean[..cut].to_vec();
            bytes.resize(clean.len() + 4096, 0);
            let (zxids, torn) = read_all(&bytes, true).unwrap();
            assert_eq!(zxids, [1, 2], "cut at {cut}");
            let torn = torn.unwrap();
            assert_eq!(torn.offset, last_start as u64, "cut at {cut}");
            // (A prefix of zero bytes cannot be told from untouched space.)
            let written = clean[last_start..cut].iter().any(|b| *b != 0);
            assert_eq!(torn.zeros, !written, "cut at {cut}");
        }
    }

    #[test]
    fn data_after_a_zero_header_is_damage() {
        let mut bytes = three_records();
        let end = bytes.len();
        bytes.extend_from_slice(&[0; HEADER_LEN]);
        bytes.extend_from_slice(b"live data");
        assert_eq!(read_all(&bytes, true).unwrap_err().offset, end as u64);
    }

    #[test]
    fn a_flipped_byte_before_the_last_record_is_damage() {
        let clean = three_records();
        let last_start = clean.len() - (HEADER_LEN + 6);
        for at in 0..last_start {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x40;
            let damage = read_all(&bytes, true).unwrap_err();
            let record_start = if at < HEADER_LEN + 6 {
                0
            } else {
                HEADER_LEN + 6
            };
            assert_eq!(damage.offset, record_start as u64, "flip at {at}");
        }
    }

    #[test]
    fn a_bad_checksum_on_the_very_last_record_is_a_torn_tail() {
        let mut bytes = three_records();
        let end = bytes.len();
        bytes[end - 1] ^= 1;
        let (zxids, torn) = read_all(&bytes, true).unwrap();
        assert_eq!(zxids, [1, 2]);
        assert!(torn.unwrap().reason.contains("checksum"));
    }
}
