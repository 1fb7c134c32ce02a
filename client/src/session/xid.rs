//! Request ids. The client numbers its requests 1, 2, 3, ... and the server
//! echoes the number in the reply; negative numbers are reserved for pings,
//! notifications, auth and setWatches (see [`canopy_protocol::xid`]), so the
//! counter wraps from `i32::MAX` back to 1 rather than into them.

#[derive(Debug)]
pub(crate) struct XidGen {
    next: i32,
}

impl Default for XidGen {
    fn default() -> Self {
        XidGen { next: 1 }
    }
}

impl XidGen {
    pub(crate) fn next(&mut self) -> i32 {
        let xid = self.next;
        self.next = if xid == i32::MAX { 1 } else { xid + 1 };
        xid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_and_wraps_past_the_reserved_ids() {
        let mut gen = XidGen::default();
        assert_eq!((gen.next(), gen.next()), (1, 2));
        gen.next = i32::MAX;
        assert_eq!(gen.next(), i32::MAX);
        assert_eq!(gen.next(), 1);
    }
}
