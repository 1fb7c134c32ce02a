//! The jute primitives: how ZooKeeper puts ints, longs, booleans, byte buffers,
//! strings and vectors on the wire, and the [`Jute`] trait every record implements.
//!
//! Everything is big-endian. Buffers, strings and vectors carry an `int` length
//! first; a length of -1 means "null" in Java. Decoders are `nom` parsers over a
//! complete frame: running out of input is an error, never a panic.

use bytes::{BufMut, Bytes};
use nom::bytes::complete::take;
use nom::error::{Error, ErrorKind};
use nom::number::complete::{be_i32, be_i64, be_u8};
use nom::IResult;

/// A value with a jute encoding: a primitive or a whole record.
pub trait Jute: Sized {
    /// Parses one value from the front of `input`, returning the rest.
    fn decode(input: &[u8]) -> IResult<&[u8], Self>;
    /// Appends the encoding of this value to `out`.
    fn encode<B: BufMut>(&self, out: &mut B);

    /// The encoding as a fresh buffer; handy in tests and for small records.
    fn to_bytes(&self) -> Bytes {
        let mut out = Vec::new();
        self.encode(&mut out);
        Bytes::from(out)
    }

    /// Decodes a value that must span all of `input`: trailing bytes are an error.
    fn from_bytes(input: &[u8]) -> Result<Self, crate::DecodeError> {
        match Self::decode(input) {
            Ok(([], value)) => Ok(value),
            Ok((rest, _)) => Err(crate::DecodeError::TrailingBytes(rest.len())),
            Err(_) => Err(crate::DecodeError::Malformed),
        }
    }
}

impl Jute for i32 {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        be_i32(input)
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_i32(*self);
    }
}

impl Jute for i64 {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        be_i64(input)
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_i64(*self);
    }
}

impl Jute for bool {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        // Java writes 0 or 1; like Java's readBoolean, any non-zero byte is true.
        let (rest, byte) = be_u8(input)?;
        Ok((rest, byte != 0))
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(u8::from(*self));
    }
}

/// Reads a length prefix; `None` stands for Java's null (-1). Other negative
/// lengths are malformed input.
fn length(input: &[u8]) -> IResult<&[u8], Option<usize>> {
    let (rest, len) = be_i32(input)?;
    match len {
        -1 => Ok((rest, None)),
        n if n < 0 => Err(nom::Err::Error(Error::new(input, ErrorKind::LengthValue))),
        n => Ok((rest, Some(n as usize))),
    }
}

fn put_length<B: BufMut>(out: &mut B, len: usize) {
    out.put_i32(i32::try_from(len).expect("jute lengths fit in an i32"));
}

/// A jute `buffer` that may be null (znode data is: a node created with null data
/// reads back as null, which is not the same bytes on the wire as empty data).
impl Jute for Option<Bytes> {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        match length(input)? {
            (rest, None) => Ok((rest, None)),
            (rest, Some(len)) => {
                let (rest, bytes) = take(len)(rest)?;
                Ok((rest, Some(Bytes::copy_from_slice(bytes))))
            }
        }
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        encode_buffer(out, self.as_deref());
    }
}

/// Writes a jute `buffer` that may be null, from borrowed bytes (a server
/// encodes node data this way without copying it first).
pub fn encode_buffer<B: BufMut>(out: &mut B, data: Option<&[u8]>) {
    match data {
        None => out.put_i32(-1),
        Some(bytes) => {
            put_length(out, bytes.len());
            out.put_slice(bytes);
        }
    }
}

/// Writes a jute `vector<ustring>` from borrowed strings (as `&str` or as
/// the bytes of UTF-8 text) whose count is known (a server encodes child
/// names this way without collecting them).
pub fn encode_strings<B: BufMut, S: AsRef<[u8]>>(
    out: &mut B,
    count: usize,
    strings: impl IntoIterator<Item = S>,
) {
    put_length(out, count);
    for text in strings {
        let text = text.as_ref();
        put_length(out, text.len());
        out.put_slice(text);
    }
}

/// A jute `buffer` that is never null in practice (passwords, auth data);
/// a null on the wire reads as empty.
impl Jute for Bytes {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        let (rest, bytes) = Option::<Bytes>::decode(input)?;
        Ok((rest, bytes.unwrap_or_default()))
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        put_length(out, self.len());
        out.put_slice(self);
    }
}

/// A jute `ustring` that may be null (only a few fields, such as reconfig's).
impl Jute for Option<String> {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        match length(input)? {
            (rest, None) => Ok((rest, None)),
            (rest, Some(len)) => {
                let (rest, raw) = take(len)(rest)?;
                // Java decodes with replacement characters rather than failing.
                Ok((rest, Some(String::from_utf8_lossy(raw).into_owned())))
            }
        }
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            None => out.put_i32(-1),
            Some(text) => text.encode(out),
        }
    }
}

/// A jute `ustring` (UTF-8): paths, schemes, ids. A null reads as empty.
impl Jute for String {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        let (rest, text) = Option::<String>::decode(input)?;
        Ok((rest, text.unwrap_or_default()))
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        put_length(out, self.len());
        out.put_slice(self.as_bytes());
    }
}

/// A jute `vector<T>`; a null vector reads as empty.
impl<T: Jute> Jute for Vec<T> {
    fn decode(input: &[u8]) -> IResult<&[u8], Self> {
        let (mut rest, len) = length(input)?;
        let len = len.unwrap_or(0);
        // Every element takes at least one byte, so a count larger than the input
        // is malformed: refuse it before reserving memory for it.
        if len > rest.len() {
            return Err(nom::Err::Error(Error::new(input, ErrorKind::LengthValue)));
        }
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            let (next, item) = T::decode(rest)?;
            items.push(item);
            rest = next;
        }
        Ok((rest, items))
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        put_length(out, self.len());
        for item in self {
            item.encode(out);
        }
    }
}

/// Declares a jute record: a struct whose fields are encoded one after another
/// in declaration order, exactly as `zookeeper.jute` lists them.
macro_rules! jute_record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name {
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl $crate::jute::Jute for $name {
            #[allow(unused_variables)]
            fn decode(input: &[u8]) -> nom::IResult<&[u8], Self> {
                let rest = input;
                $( let (rest, $field) = <$ty as $crate::jute::Jute>::decode(rest)?; )*
                Ok((rest, Self { $($field),* }))
            }

            #[allow(unused_variables)]
            fn encode<B: bytes::BufMut>(&self, out: &mut B) {
                $( $crate::jute::Jute::encode(&self.$field, out); )*
            }
        }

        #[cfg(any(test, feature = "arbitrary"))]
        impl $crate::arbitrary::JuteArbitrary for $name {
            fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
                #[allow(unused_imports)]
                use proptest::strategy::Strategy;
                $crate::arbitrary::fields!($name; $($field: $ty),*)
            }
        }
    };
}
pub(crate) use jute_record;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_empty_buffers_differ_on_the_wire() {
        assert_eq!(None::<Bytes>.to_bytes().as_ref(), &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(Some(Bytes::new()).to_bytes().as_ref(), &[0, 0, 0, 0]);
        assert_eq!(Option::<Bytes>::from_bytes(&[0xff; 4]).unwrap(), None);
    }

    #[test]
    fn negative_lengths_other_than_null_are_errors() {
        assert!(String::from_bytes(&[0xff, 0xff, 0xff, 0xfe]).is_err());
        assert!(Vec::<i32>::from_bytes(&[0x80, 0, 0, 0]).is_err());
    }

    #[test]
    fn huge_vector_counts_are_refused_without_allocating() {
        assert!(Vec::<i64>::from_bytes(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn strings_are_length_prefixed_utf8() {
        assert_eq!(
            "/a".to_string().to_bytes().as_ref(),
            &[0, 0, 0, 2, b'/', b'a']
        );
        assert_eq!(String::from_bytes(&[0, 0, 0, 2, b'/', b'a']).unwrap(), "/a");
    }

    #[test]
    fn borrowed_strings_encode_as_a_vector_of_strings() {
        let names = vec!["a".to_string(), "bc".to_string()];
        let mut out = Vec::new();
        encode_strings(&mut out, names.len(), names.iter().map(String::as_str));
        assert_eq!(out, names.to_bytes().as_ref());
    }
}
