//! Random instances of every record, for property tests (the `arbitrary` feature
//! exposes them to other crates).

use bytes::Bytes;
use proptest::prelude::*;

/// A proptest strategy for a jute value. A trait of our own, because `Bytes` and
/// the records need strategies and proptest's `Arbitrary` is foreign to both.
pub trait JuteArbitrary: Sized + std::fmt::Debug {
    fn strategy() -> BoxedStrategy<Self>;
}

impl JuteArbitrary for i32 {
    fn strategy() -> BoxedStrategy<Self> {
        any::<i32>().boxed()
    }
}

impl JuteArbitrary for i64 {
    fn strategy() -> BoxedStrategy<Self> {
        any::<i64>().boxed()
    }
}

impl JuteArbitrary for bool {
    fn strategy() -> BoxedStrategy<Self> {
        any::<bool>().boxed()
    }
}

impl JuteArbitrary for String {
    fn strategy() -> BoxedStrategy<Self> {
        "\\PC{0,12}".boxed()
    }
}

impl JuteArbitrary for Option<String> {
    fn strategy() -> BoxedStrategy<Self> {
        proptest::option::of(String::strategy()).boxed()
    }
}

impl JuteArbitrary for Bytes {
    fn strategy() -> BoxedStrategy<Self> {
        proptest::collection::vec(any::<u8>(), 0..24)
            .prop_map(Bytes::from)
            .boxed()
    }
}

impl JuteArbitrary for Option<Bytes> {
    fn strategy() -> BoxedStrategy<Self> {
        proptest::option::of(Bytes::strategy()).boxed()
    }
}

impl<T: JuteArbitrary + 'static> JuteArbitrary for Vec<T> {
    fn strategy() -> BoxedStrategy<Self> {
        proptest::collection::vec(T::strategy(), 0..4).boxed()
    }
}

/// Builds a record's strategy from its fields' strategies.
macro_rules! fields {
    ($name:ident; ) => {
        proptest::strategy::Just($name {}).boxed()
    };
    ($name:ident; $($field:ident : $ty:ty),+) => {
        ( $( <$ty as $crate::arbitrary::JuteArbitrary>::strategy(), )+ )
            .prop_map(|( $($field,)+ )| $name { $($field),+ })
            .boxed()
    };
}
pub(crate) use fields;
