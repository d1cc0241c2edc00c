//! [`OutputQueue`]: the order rule of the output gate.
//!
//! Every output records the commit sequence number its writes belong to. Outputs leave in
//! the order they were produced, each once the durable point has reached its number: a
//! later output whose writes are already durable still waits behind an earlier one that is
//! not, so a caller never sees the effect of a later call before an earlier reply.

use std::collections::VecDeque;

/// Outputs held until the writes before them are durable, in the order they were produced.
#[derive(Debug)]
pub(crate) struct OutputQueue<O> {
    held: VecDeque<(u64, O)>,
}

impl<O> Default for OutputQueue<O> {
    fn default() -> Self {
        Self {
            held: VecDeque::new(),
        }
    }
}

impl<O> OutputQueue<O> {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Outputs held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Offers `output`, which needs commit `required` durable, when `durable` is the durable
    /// point: returns it if it may leave now (nothing held before it and its writes are
    /// durable), else holds it and returns `None`.
    pub(crate) fn submit(&mut self, required: u64, durable: u64, output: O) -> Option<O> {
        if required <= durable && self.held.is_empty() {
            Some(output)
        } else {
            self.held.push_back((required, output));
            None
        }
    }

    /// The next held output that may leave at durable point `durable`, in order.
    pub(crate) fn pop_ready(&mut self, durable: u64) -> Option<O> {
        match self.held.front() {
            Some((required, _)) if *required <= durable => self.held.pop_front().map(|(_, o)| o),
            _ => None,
        }
    }

    /// Takes every held output (to fail them: a commit or fsync failed).
    pub(crate) fn take_all(&mut self) -> Vec<O> {
        self.held.drain(..).map(|(_, output)| output).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy)]
    enum Op {
        /// Submit an output named .0 that needs commit .1.
        Submit(&'static str, u64),
        /// The durable point moved to .0.
        Durable(u64),
        /// A commit or fsync failed.
        Fail,
    }

    /// Runs `ops` and returns what left (in order) and what failed.
    fn run(ops: &[Op]) -> (Vec<&'static str>, Vec<&'static str>) {
        let mut queue = OutputQueue::default();
        let mut durable = 0;
        let (mut sent, mut failed) = (Vec::new(), Vec::new());
        for op in ops {
            match *op {
                Op::Submit(name, required) => sent.extend(queue.submit(required, durable, name)),
                Op::Durable(point) => {
                    durable = point;
                    while let Some(name) = queue.pop_ready(durable) {
                        sent.push(name);
                    }
                }
                Op::Fail => failed.extend(queue.take_all()),
            }
        }
        (sent, failed)
    }

    #[test]
    fn outputs_leave_in_order_once_their_writes_are_durable() {
        use Op::*;
        let cases: &[(&[Op], &[&str], &[&str])] = &[
            // Nothing written: leaves at once.
            (&[Submit("a", 0)], &["a"], &[]),
            // Waits for its commit.
            (&[Submit("a", 1)], &[], &[]),
            (&[Submit("a", 1), Durable(1)], &["a"], &[]),
            // A later output with nothing to wait for still waits behind an earlier one.
            (&[Submit("a", 2), Submit("b", 0), Durable(1)], &[], &[]),
            (
                &[Submit("a", 2), Submit("b", 0), Durable(2)],
                &["a", "b"],
                &[],
            ),
            // One durable point releases everything up to it, and only that.
            (
                &[Submit("a", 1), Submit("b", 2), Submit("c", 3), Durable(2)],
                &["a", "b"],
                &[],
            ),
            // A durable point past several commits (group commit) releases them together.
            (
                &[Submit("a", 1), Submit("b", 3), Durable(5)],
                &["a", "b"],
                &[],
            ),
            // After the queue drained, a durable output leaves at once again.
            (
                &[Submit("a", 1), Durable(1), Submit("b", 1)],
                &["a", "b"],
                &[],
            ),
            // A failure fails everything held and nothing that already left.
            (
                &[Submit("a", 0), Submit("b", 1), Submit("c", 0), Fail],
                &["a"],
                &["b", "c"],
            ),
            // The durable point going "back" (a new database session) releases nothing.
            (&[Submit("a", 3), Durable(2), Durable(1)], &[], &[]),
        ];
        for (ops, sent, failed) in cases {
            assert_eq!(run(ops), (sent.to_vec(), failed.to_vec()), "{ops:?}");
        }
    }

    #[test]
    fn the_queue_reports_what_it_holds() {
        let mut queue = OutputQueue::default();
        assert!(queue.is_empty());
        assert_eq!(queue.submit(1, 0, "a"), None);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop_ready(0), None);
        assert_eq!(queue.pop_ready(1), Some("a"));
        assert!(queue.is_empty());
    }
}
