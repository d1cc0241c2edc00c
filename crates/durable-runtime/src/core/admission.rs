//! [`Admission`]: how many events each object has admitted and not finished, and the rule
//! that refuses more than the limit.
//!
//! The count is per object, not per shard, so one flooded object is refused while its
//! neighbours on the same shard keep working. The runtime keeps it behind a lock outside
//! the shard thread and counts *before* queueing, so a caller on any thread learns at once
//! that an object is overloaded instead of adding to an unbounded queue.

use std::collections::HashMap;

use super::ObjectKey;

/// An event was refused: its object already has `limit` events admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overloaded {
    pub(crate) limit: usize,
}

/// Events admitted and not yet finished, per object.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    pending: HashMap<ObjectKey, usize>,
}

impl Admission {
    /// Counts one more event for `key`, unless `limit` are already pending.
    pub(crate) fn admit(&mut self, key: ObjectKey, limit: usize) -> Result<(), Overloaded> {
        let count = self.pending.entry(key).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                self.pending.remove(&key);
            }
            return Err(Overloaded { limit });
        }
        *count += 1;
        Ok(())
    }

    /// Forgets one event of `key`: it finished, or it was admitted but could not be queued.
    pub(crate) fn release(&mut self, key: &ObjectKey) {
        if let Some(count) = self.pending.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                self.pending.remove(key);
            }
        }
    }

    /// Events pending for `key`.
    #[cfg(test)]
    pub(crate) fn pending(&self, key: &ObjectKey) -> usize {
        self.pending.get(key).copied().unwrap_or(0)
    }

    /// Objects with events pending.
    #[cfg(test)]
    pub(crate) fn objects(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> ObjectKey {
        ObjectKey { ns: 0, id: [n; 32] }
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Admit(u8),
        Release(u8),
    }

    /// Runs `ops` with `limit` and returns whether each admit was accepted.
    fn run(limit: usize, ops: &[Op]) -> (Vec<bool>, Admission) {
        let mut admission = Admission::default();
        let mut accepted = Vec::new();
        for op in ops {
            match *op {
                Op::Admit(n) => accepted.push(admission.admit(key(n), limit).is_ok()),
                Op::Release(n) => admission.release(&key(n)),
            }
        }
        (accepted, admission)
    }

    #[test]
    fn each_object_is_counted_against_its_own_limit() {
        use Op::*;
        let cases: &[(usize, &[Op], &[bool])] = &[
            (2, &[Admit(1), Admit(1), Admit(1)], &[true, true, false]),
            // A release makes room again.
            (
                2,
                &[Admit(1), Admit(1), Release(1), Admit(1)],
                &[true, true, true],
            ),
            // Another object is not affected by a full one.
            (
                1,
                &[Admit(1), Admit(2), Admit(1), Admit(2)],
                &[true, true, false, false],
            ),
            // A limit of zero admits nothing.
            (0, &[Admit(1)], &[false]),
            // Releasing an object with nothing pending changes nothing.
            (1, &[Release(1), Admit(1), Admit(1)], &[true, false]),
        ];
        for (limit, ops, expected) in cases {
            assert_eq!(
                run(*limit, ops).0,
                expected.to_vec(),
                "limit {limit}, {ops:?}"
            );
        }
    }

    #[test]
    fn finished_objects_are_forgotten() {
        use Op::*;
        let (_, admission) = run(4, &[Admit(1), Admit(2), Admit(2), Release(1), Release(2)]);
        assert_eq!(admission.objects(), 1);
        assert_eq!(admission.pending(&key(2)), 1);
        assert_eq!(admission.pending(&key(1)), 0);
        let (_, admission) = run(0, &[Admit(3)]);
        assert_eq!(admission.objects(), 0, "a refused object leaves no entry");
        assert_eq!(
            Admission::default().admit(key(1), 0),
            Err(Overloaded { limit: 0 })
        );
    }
}
