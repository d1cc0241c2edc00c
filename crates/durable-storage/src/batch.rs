//! [`BatchState`]: the rules of write batches and their sequence numbers, as a plain value
//! (no SQLite, no I/O), so every rule is unit-tested on its own.
//!
//! The first write after a commit opens a batch (the database runs `BEGIN`); the runtime
//! commits it between turns. Commits are numbered 1, 2, 3, ... per open database. A reply
//! produced now must wait for the commit that will hold the *confirmed* writes made before
//! it: the open batch's number if it holds any, else the last committed batch that did.
//! `allow_unconfirmed` writes do not hold replies back; `sync()` waits for every write.

/// What a batch that was just committed held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Its sequence number.
    pub seq: u64,
    /// It changed the stored alarm (or may have: `delete_all`).
    pub alarm_touched: bool,
}

/// The state of one database's write batches.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchState {
    /// A transaction is open.
    open: bool,
    /// The open transaction holds writes whose replies must wait for them.
    confirmed: bool,
    /// The open transaction changed (or may have changed) the stored alarm.
    alarm_touched: bool,
    /// Explicit transactions (savepoints) open inside the batch.
    savepoints: u32,
    /// The last committed batch.
    committed_seq: u64,
    /// The last committed batch that held confirmed writes.
    confirmed_seq: u64,
}

impl BatchState {
    /// True when a write must begin a transaction first.
    pub fn needs_begin(&self) -> bool {
        !self.open
    }

    /// Records a write (after the transaction was begun if [`needs_begin`](Self::needs_begin)).
    /// `confirmed` false marks an `allow_unconfirmed` write.
    pub fn wrote(&mut self, confirmed: bool) {
        self.open = true;
        self.confirmed |= confirmed;
    }

    /// Records that the open batch changed the stored alarm.
    pub fn touched_alarm(&mut self) {
        self.alarm_touched = true;
    }

    /// True when the open batch changed the stored alarm.
    pub fn alarm_touched(&self) -> bool {
        self.open && self.alarm_touched
    }

    /// True when writes wait for a commit.
    pub fn has_uncommitted(&self) -> bool {
        self.open
    }

    /// True when the open batch may be committed now (no explicit transaction spans it).
    pub fn can_commit(&self) -> bool {
        self.open && self.savepoints == 0
    }

    /// Explicit transactions open now.
    pub fn savepoints(&self) -> u32 {
        self.savepoints
    }

    /// Records that an explicit transaction began inside the batch.
    pub fn savepoint_opened(&mut self) {
        self.savepoints += 1;
    }

    /// Records that the innermost explicit transaction ended; false if none was open.
    pub fn savepoint_closed(&mut self) -> bool {
        match self.savepoints.checked_sub(1) {
            Some(left) => {
                self.savepoints = left;
                true
            }
            None => false,
        }
    }

    /// The sequence number a reply sent now must wait for.
    pub fn required_seq(&self) -> u64 {
        if self.open && self.confirmed {
            self.committed_seq + 1
        } else {
            self.confirmed_seq
        }
    }

    /// The sequence number every write so far belongs to, confirmed or not (for `sync()`).
    pub fn latest_seq(&self) -> u64 {
        self.committed_seq + u64::from(self.open)
    }

    /// The last committed batch's sequence number.
    pub fn committed_seq(&self) -> u64 {
        self.committed_seq
    }

    /// Records that the open batch was committed; returns its number and what it held.
    pub fn committed(&mut self) -> Committed {
        debug_assert!(
            self.can_commit(),
            "only an open batch without savepoints commits"
        );
        self.committed_seq += 1;
        if self.confirmed {
            self.confirmed_seq = self.committed_seq;
        }
        let committed = Committed {
            seq: self.committed_seq,
            alarm_touched: self.alarm_touched,
        };
        self.clear_open();
        committed
    }

    /// Records that the open batch was rolled back (or lost): its writes never happened, and
    /// no reply waits for them.
    pub fn rolled_back(&mut self) {
        self.clear_open();
    }

    fn clear_open(&mut self) {
        self.open = false;
        self.confirmed = false;
        self.alarm_touched = false;
        self.savepoints = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a batch's life.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Write,
        WriteUnconfirmed,
        Alarm,
        Savepoint,
        EndSavepoint,
        Commit,
        Rollback,
    }

    /// After each step: (required_seq, latest_seq, can_commit, has_uncommitted).
    type Seen = (u64, u64, bool, bool);

    fn check(ops: &[Op], expected: &[Seen]) {
        assert_eq!(ops.len(), expected.len(), "one expectation per step");
        let mut batch = BatchState::default();
        for (step, (op, want)) in ops.iter().zip(expected).enumerate() {
            match op {
                Op::Write => batch.wrote(true),
                Op::WriteUnconfirmed => batch.wrote(false),
                Op::Alarm => {
                    batch.wrote(true);
                    batch.touched_alarm();
                }
                Op::Savepoint => {
                    batch.wrote(true);
                    batch.savepoint_opened();
                }
                Op::EndSavepoint => assert!(batch.savepoint_closed(), "step {step}"),
                Op::Commit => {
                    batch.committed();
                }
                Op::Rollback => batch.rolled_back(),
            }
            let seen = (
                batch.required_seq(),
                batch.latest_seq(),
                batch.can_commit(),
                batch.has_uncommitted(),
            );
            assert_eq!(seen, *want, "after step {step} ({op:?}) of {ops:?}");
        }
    }

    #[test]
    fn sequence_numbers_follow_the_batch_rules() {
        use Op::*;
        // A write makes replies wait for the next commit; the commit gets number 1.
        check(
            &[Write, Commit],
            &[(1, 1, true, true), (1, 1, false, false)],
        );
        // Unconfirmed writes do not hold replies, but sync() waits for them.
        check(
            &[WriteUnconfirmed, Commit, Write, Commit],
            &[
                (0, 1, true, true),
                (0, 1, false, false),
                (2, 2, true, true),
                (2, 2, false, false),
            ],
        );
        // A batch with both kinds holds replies.
        check(
            &[WriteUnconfirmed, Write],
            &[(0, 1, true, true), (1, 1, true, true)],
        );
        // An explicit transaction keeps the batch from committing until it ends.
        check(
            &[Savepoint, Write, EndSavepoint, Commit],
            &[
                (1, 1, false, true),
                (1, 1, false, true),
                (1, 1, true, true),
                (1, 1, false, false),
            ],
        );
        // A rollback discards the batch: replies wait only for what was committed before.
        check(
            &[Write, Commit, Write, Rollback, Write],
            &[
                (1, 1, true, true),
                (1, 1, false, false),
                (2, 2, true, true),
                (1, 1, false, false),
                (2, 2, true, true),
            ],
        );
        // An alarm write is a confirmed write like any other.
        check(
            &[Alarm, Commit],
            &[(1, 1, true, true), (1, 1, false, false)],
        );
        // A rollback inside explicit transactions forgets them too.
        check(
            &[Savepoint, Savepoint, Rollback],
            &[
                (1, 1, false, true),
                (1, 1, false, true),
                (0, 0, false, false),
            ],
        );
    }

    #[test]
    fn the_alarm_flag_belongs_to_the_open_batch() {
        let mut batch = BatchState::default();
        batch.wrote(true);
        assert!(!batch.alarm_touched());
        batch.touched_alarm();
        assert!(batch.alarm_touched());
        assert_eq!(
            batch.committed(),
            Committed {
                seq: 1,
                alarm_touched: true
            }
        );
        assert!(!batch.alarm_touched(), "a new batch starts clean");
        batch.wrote(true);
        batch.touched_alarm();
        batch.rolled_back();
        batch.wrote(true);
        assert!(
            !batch.alarm_touched(),
            "a rolled-back alarm write is forgotten"
        );
        assert!(!batch.committed().alarm_touched);
    }

    #[test]
    fn closing_a_savepoint_that_is_not_open_is_refused() {
        let mut batch = BatchState::default();
        assert!(!batch.savepoint_closed());
        batch.wrote(true);
        batch.savepoint_opened();
        assert!(batch.savepoint_closed());
        assert!(!batch.savepoint_closed());
        assert_eq!(batch.savepoints(), 0);
    }
}
