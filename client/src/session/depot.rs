//! The requests sent on the current connection and not yet answered.
//!
//! A ZooKeeper server answers the requests of one session in the order it
//! received them, so the outstanding requests form a FIFO queue: a reply
//! must carry the xid at the front. A reply for any other xid means the
//! stream is out of step and the connection cannot be trusted any more.

use std::collections::VecDeque;

/// A reply arrived whose xid is not the oldest outstanding one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XidMismatch {
    pub expected: Option<i32>,
    pub got: i32,
}

/// Outstanding requests in send order, each with what the session needs to
/// finish it (`T`: the reply channel, the opcode, a watch to register).
#[derive(Debug)]
pub(crate) struct Depot<T> {
    queue: VecDeque<(i32, T)>,
}

impl<T> Default for Depot<T> {
    fn default() -> Self {
        Depot {
            queue: VecDeque::new(),
        }
    }
}

impl<T> Depot<T> {
    pub(crate) fn push(&mut self, xid: i32, pending: T) {
        self.queue.push_back((xid, pending));
    }

    /// Takes the request a reply with `xid` answers: it must be the oldest.
    pub(crate) fn complete(&mut self, xid: i32) -> Result<T, XidMismatch> {
        match self.queue.front() {
            Some((front, _)) if *front == xid => Ok(self
                .queue
                .pop_front()
                .map(|(_, pending)| pending)
                .expect("front exists")),
            front => Err(XidMismatch {
                expected: front.map(|(xid, _)| *xid),
                got: xid,
            }),
        }
    }

    /// Empties the depot (the connection is gone), oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.queue.drain(..).map(|(_, pending)| pending)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_matched_in_send_order() {
        let mut depot = Depot::default();
        depot.push(1, "a");
        depot.push(2, "b");
        depot.push(3, "c");
        assert_eq!(depot.complete(1), Ok("a"));
        assert_eq!(
            depot.complete(3),
            Err(XidMismatch {
                expected: Some(2),
                got: 3
            })
        );
        assert_eq!(depot.complete(2), Ok("b"));
        assert_eq!(depot.len(), 1);
        assert_eq!(depot.drain().collect::<Vec<_>>(), vec!["c"]);
        assert_eq!(
            depot.complete(4),
            Err(XidMismatch {
                expected: None,
                got: 4
            })
        );
    }
}
