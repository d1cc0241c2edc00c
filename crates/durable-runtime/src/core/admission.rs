//! [`Admission`]: how many events each object has admitted and not finished, how many bytes
//! they hold, and the rule that refuses more than the limits.
//!
//! The count is per object, not per shard, so one flooded object is refused while its
//! neighbours on the same shard keep working. The runtime keeps it behind a lock outside
//! the shard thread and counts *before* queueing, so a caller on any thread learns at once
//! that an object is overloaded instead of adding to an unbounded queue. Bytes are counted
//! as well as events: a few thousand large WebSocket messages must not take a node's memory
//! while the event count is still far from its limit.

use std::collections::HashMap;

use super::ObjectKey;

/// The limits of one object's admitted events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AdmissionLimits {
    /// Events admitted and not finished.
    pub(crate) events: usize,
    /// Bytes those events carry (their payloads).
    pub(crate) bytes: usize,
}

/// An event was refused: its object is at one of its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overloaded {
    /// `limit` events are already admitted.
    Events { limit: usize },
    /// Admitting `size` more bytes would pass `limit`.
    Bytes { limit: usize, size: usize },
}

#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    events: usize,
    bytes: usize,
}

/// Events admitted and not yet finished, per object.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    pending: HashMap<ObjectKey, Pending>,
}

impl Admission {
    /// Counts one more event of `size` bytes for `key`, unless that passes `limits`.
    pub(crate) fn admit(
        &mut self,
        key: ObjectKey,
        size: usize,
        limits: AdmissionLimits,
    ) -> Result<(), Overloaded> {
        let pending = self.pending.get(&key).copied().unwrap_or_default();
        if pending.events >= limits.events {
            return Err(Overloaded::Events {
                limit: limits.events,
            });
        }
        if pending.bytes.saturating_add(size) > limits.bytes {
            return Err(Overloaded::Bytes {
                limit: limits.bytes,
                size,
            });
        }
        let entry = self.pending.entry(key).or_default();
        entry.events += 1;
        entry.bytes += size;
        Ok(())
    }

    /// Forgets one event of `key` of `size` bytes: it finished, or it was admitted but
    /// could not be queued.
    pub(crate) fn release(&mut self, key: &ObjectKey, size: usize) {
        if let Some(entry) = self.pending.get_mut(key) {
            entry.events = entry.events.saturating_sub(1);
            entry.bytes = entry.bytes.saturating_sub(size);
            if entry.events == 0 {
                self.pending.remove(key);
            }
        }
    }

    /// Events pending for `key`.
    #[cfg(test)]
    pub(crate) fn pending(&self, key: &ObjectKey) -> usize {
        self.pending.get(key).map_or(0, |p| p.events)
    }

    /// Bytes pending for `key`.
    #[cfg(test)]
    pub(crate) fn pending_bytes(&self, key: &ObjectKey) -> usize {
        self.pending.get(key).map_or(0, |p| p.bytes)
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
        /// Admit an event of this many bytes for object 1.
        Sized(usize),
        /// Release an event of this many bytes of object 1.
        Free(usize),
    }

    /// Runs `ops` with `limits` and returns whether each admit was accepted.
    fn run(limits: AdmissionLimits, ops: &[Op]) -> (Vec<bool>, Admission) {
        let mut admission = Admission::default();
        let mut accepted = Vec::new();
        for op in ops {
            match *op {
                Op::Admit(n) => accepted.push(admission.admit(key(n), 0, limits).is_ok()),
                Op::Release(n) => admission.release(&key(n), 0),
                Op::Sized(size) => accepted.push(admission.admit(key(1), size, limits).is_ok()),
                Op::Free(size) => admission.release(&key(1), size),
            }
        }
        (accepted, admission)
    }

    fn events(limit: usize) -> AdmissionLimits {
        AdmissionLimits {
            events: limit,
            bytes: usize::MAX,
        }
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
                run(events(*limit), ops).0,
                expected.to_vec(),
                "limit {limit}, {ops:?}"
            );
        }
    }

    #[test]
    fn bytes_are_bounded_too() {
        use Op::*;
        let limits = AdmissionLimits {
            events: 100,
            bytes: 1_000,
        };
        let cases: &[(&[Op], &[bool])] = &[
            // Up to the limit exactly; one byte more is refused.
            (&[Sized(600), Sized(400), Sized(1)], &[true, true, false]),
            (&[Sized(1_001)], &[false]),
            // Freeing bytes makes room.
            (
                &[Sized(900), Sized(200), Free(900), Sized(200)],
                &[true, false, true],
            ),
            // Events without a payload still count against the event limit only.
            (&[Sized(1_000), Sized(0)], &[true, true]),
        ];
        for (ops, expected) in cases {
            assert_eq!(run(limits, ops).0, expected.to_vec(), "{ops:?}");
        }
        let (_, admission) = run(limits, &[Sized(300), Sized(200), Free(300)]);
        assert_eq!(admission.pending_bytes(&key(1)), 200);
        assert_eq!(
            Admission::default().admit(
                key(1),
                5,
                AdmissionLimits {
                    events: 1,
                    bytes: 4
                }
            ),
            Err(Overloaded::Bytes { limit: 4, size: 5 })
        );
    }

    #[test]
    fn finished_objects_are_forgotten() {
        use Op::*;
        let (_, admission) = run(
            events(4),
            &[Admit(1), Admit(2), Admit(2), Release(1), Release(2)],
        );
        assert_eq!(admission.objects(), 1);
        assert_eq!(admission.pending(&key(2)), 1);
        assert_eq!(admission.pending(&key(1)), 0);
        let (_, admission) = run(events(0), &[Admit(3)]);
        assert_eq!(admission.objects(), 0, "a refused object leaves no entry");
        assert_eq!(
            Admission::default().admit(key(1), 0, events(0)),
            Err(Overloaded::Events { limit: 0 })
        );
    }
}
