//! [`AlarmTimetable`]: the node's pending alarms, when each is delivered next, and the rules
//! that settle a delivery. Plain state: the caller passes the time (epoch milliseconds from
//! the runtime's clock) and the randomness for jitter, and carries out the actions returned.
//!
//! Rules (Cloudflare's, at least once):
//! * an alarm is delivered at its time, earliest first; one delivery per object at a time;
//! * a delivery whose handler succeeded is settled by the object's own durable removal (or
//!   replacement) of its stored alarm; until that arrives the alarm is looked at again a
//!   second later, so a lost removal never loses the alarm;
//! * a delivery that found nothing due was *spurious* (the index may run ahead of storage):
//!   the alarm moves to the stored time, or is forgotten if the object has none;
//! * a failed handler is retried after `base * 2^(retry-1)` plus up to `jitter` of that,
//!   up to `max_retries` times; then the stored alarm is deleted by one last clean-up
//!   delivery. A handler that does not exist is given up at once;
//! * every change bumps a generation, so the late outcome of a delivery never undoes a
//!   schedule made while it ran (a handler that set a new alarm).
//!
//! The index bookkeeping rides along: each entry remembers the time the persistent index
//! durably holds, so an object's commit knows whether the index must learn of its alarm
//! first.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use durable_core::ObjectId;
use durable_storage::IndexChange;

use super::ObjectKey;

/// How failed alarm handlers are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RetryPolicy {
    /// Delay before the first retry; it doubles each retry.
    pub(crate) base: Duration,
    /// Random extra delay, as a fraction of the delay (0 to 1).
    pub(crate) jitter: f64,
    /// Retries before the alarm is given up.
    pub(crate) max_retries: u32,
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based), with `random` in `[0, 1]`.
    pub(crate) fn delay(&self, retry: u32, random: f64) -> Duration {
        let exponential = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        exponential.mul_f64(1.0 + self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0))
    }
}

/// One delivery to make: the object, and as which retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Due {
    pub(crate) key: ObjectKey,
    pub(crate) id: ObjectId,
    pub(crate) class: &'static str,
    pub(crate) retry: u32,
    pub(crate) generation: u64,
}

/// What an object did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// The handler ran and succeeded (or a new alarm superseded this one).
    Done,
    /// Nothing was due; the object's stored alarm is this.
    Spurious(Option<i64>),
    /// The delivery failed; `permanent` when retrying cannot help (no handler).
    Failed { permanent: bool },
}

/// What the caller must do after settling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SettleAction {
    /// The alarm is not (or no longer) scheduled: nothing to do.
    Unknown,
    /// A newer schedule was made while the delivery ran; it stands.
    Superseded,
    /// Done: looked at again at `at` unless the object's durable removal arrives first.
    Recheck { at: i64 },
    /// Spurious: the alarm now fires at the object's stored time `at`.
    Rescheduled { at: i64 },
    /// Spurious and the object has no alarm: forgotten; apply this to the index.
    Removed(IndexChange),
    /// Failed: retry number `retry` at `at`, `delay` from now.
    Retry {
        retry: u32,
        delay: Duration,
        at: i64,
    },
    /// Failed every retry: make this clean-up delivery, which deletes the stored alarm.
    GiveUp(Due),
    /// The clean-up delivery failed too: forgotten until the next start, kept in the index.
    Dropped,
}

/// The scheduler's plan for one object's alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) time_ms: i64,
    pub(crate) retry: u32,
    pub(crate) running: bool,
}

#[derive(Debug)]
struct Pending {
    id: ObjectId,
    class: &'static str,
    time: i64,
    retry: u32,
    generation: u64,
    in_flight: bool,
    /// The time the persistent index holds for the object.
    indexed: Option<i64>,
}

/// The pending alarms of a node.
#[derive(Debug, Default)]
pub(crate) struct AlarmTimetable {
    due: BTreeSet<(i64, ObjectKey)>,
    pending: HashMap<ObjectKey, Pending>,
    generations: u64,
}

impl AlarmTimetable {
    /// Alarms pending.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// The plan for `key`'s alarm.
    pub(crate) fn plan(&self, key: &ObjectKey) -> Option<Plan> {
        self.pending.get(key).map(|p| Plan {
            time_ms: p.time,
            retry: p.retry,
            running: p.in_flight,
        })
    }

    /// Deliveries taken and not yet settled.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn in_flight(&self) -> usize {
        self.pending.values().filter(|p| p.in_flight).count()
    }

    /// The earliest time a delivery is due, if any is waiting.
    pub(crate) fn next_due(&self) -> Option<i64> {
        self.due.first().map(|(time, _)| *time)
    }

    fn next_generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }

    /// Schedules a fresh alarm for `key` (no retries), keeping a delivery in flight in
    /// flight: it is settled as superseded.
    fn schedule(
        &mut self,
        key: ObjectKey,
        id: ObjectId,
        class: &'static str,
        time: i64,
        indexed: Option<i64>,
    ) {
        let generation = self.next_generation();
        let in_flight = match self.pending.remove(&key) {
            Some(old) => {
                self.due.remove(&(old.time, key));
                old.in_flight
            }
            None => false,
        };
        if !in_flight {
            self.due.insert((time, key));
        }
        self.pending.insert(
            key,
            Pending {
                id,
                class,
                time,
                retry: 0,
                generation,
                in_flight,
                indexed,
            },
        );
    }

    /// An entry read from the persistent index at start-up.
    pub(crate) fn load(&mut self, key: ObjectKey, id: ObjectId, class: &'static str, time: i64) {
        self.schedule(key, id, class, time, Some(time));
    }

    /// True if the index must durably hold `time` before the object commits it as its alarm:
    /// the index holds no time for the object, or a later one.
    pub(crate) fn needs_index(&self, key: &ObjectKey, time: i64) -> bool {
        self.pending
            .get(key)
            .and_then(|p| p.indexed)
            .is_none_or(|at| at > time)
    }

    /// The index now durably holds `time` for the object (ahead of its commit).
    pub(crate) fn indexed(
        &mut self,
        key: ObjectKey,
        id: &ObjectId,
        class: &'static str,
        time: i64,
    ) {
        let generation = self.next_generation();
        match self.pending.get_mut(&key) {
            Some(pending) => {
                pending.indexed = Some(pending.indexed.map_or(time, |at| at.min(time)));
                // A delivery in flight must not undo this.
                pending.generation = generation;
            }
            None => self.schedule(key, id.clone(), class, time, Some(time)),
        }
    }

    /// An object's commit holding stored alarm `time` (`None`: no alarm) is durable. Returns
    /// the change the index needs, if any: moving an entry later, or removing it, may lag
    /// (an early entry only costs a spurious wake-up), so it is not waited for.
    pub(crate) fn durable(
        &mut self,
        key: ObjectKey,
        id: &ObjectId,
        class: &'static str,
        time: Option<i64>,
    ) -> Option<IndexChange> {
        let Some(time) = time else {
            let old = self.pending.remove(&key)?;
            self.due.remove(&(old.time, key));
            return Some(IndexChange::Remove(class.to_owned(), id.to_string()));
        };
        let indexed = self.pending.get(&key).and_then(|p| p.indexed);
        if let Some(pending) = self.pending.get(&key)
            && pending.time == time
            && indexed == Some(time)
        {
            // Only made durable what the scheduler already has: keep its retries.
            return None;
        }
        let change = (indexed != Some(time))
            .then(|| IndexChange::Upsert(class.to_owned(), id.to_string(), time));
        self.schedule(key, id.clone(), class, time, Some(time));
        change
    }

    /// Takes the deliveries due at `now`, earliest first, at most `capacity` of them; each is
    /// in flight until settled.
    pub(crate) fn take_due(&mut self, now: i64, capacity: usize) -> Vec<Due> {
        let mut taken = Vec::new();
        while taken.len() < capacity {
            let Some(&(time, key)) = self.due.first() else {
                break;
            };
            if time > now {
                break;
            }
            self.due.pop_first();
            if let Some(pending) = self.pending.get_mut(&key) {
                pending.in_flight = true;
                taken.push(Due {
                    key,
                    id: pending.id.clone(),
                    class: pending.class,
                    retry: pending.retry,
                    generation: pending.generation,
                });
            }
        }
        taken
    }

    /// Settles delivery `due` (a clean-up delivery if `clean_up`) with `outcome`, at `now`;
    /// `random` in `[0, 1]` picks the retry jitter.
    pub(crate) fn settle(
        &mut self,
        due: &Due,
        clean_up: bool,
        outcome: Settle,
        now: i64,
        random: f64,
        policy: &RetryPolicy,
    ) -> SettleAction {
        let key = due.key;
        let Some(pending) = self.pending.get_mut(&key) else {
            return SettleAction::Unknown;
        };
        pending.in_flight = false;
        if pending.generation != due.generation {
            self.due.insert((pending.time, key));
            return SettleAction::Superseded;
        }
        match outcome {
            Settle::Done => {
                pending.retry = 0;
                pending.time = now.saturating_add(1_000);
                let at = pending.time;
                self.due.insert((at, key));
                SettleAction::Recheck { at }
            }
            Settle::Spurious(Some(at)) => {
                pending.time = at;
                pending.retry = 0;
                self.due.insert((at, key));
                SettleAction::Rescheduled { at }
            }
            Settle::Spurious(None) => {
                let old = self.pending.remove(&key).expect("found above");
                SettleAction::Removed(IndexChange::Remove(
                    old.class.to_owned(),
                    old.id.to_string(),
                ))
            }
            Settle::Failed { .. } if clean_up => {
                self.pending.remove(&key);
                SettleAction::Dropped
            }
            Settle::Failed { permanent } => {
                if permanent || pending.retry >= policy.max_retries {
                    // In flight again: the clean-up delivery.
                    pending.in_flight = true;
                    return SettleAction::GiveUp(Due {
                        key,
                        id: pending.id.clone(),
                        class: pending.class,
                        retry: pending.retry,
                        generation: pending.generation,
                    });
                }
                pending.retry += 1;
                let delay = policy.delay(pending.retry, random);
                let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                pending.time = now.saturating_add(millis);
                let (retry, at) = (pending.retry, pending.time);
                self.due.insert((at, key));
                SettleAction::Retry { retry, delay, at }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASS: &str = "Clock";

    fn key(n: u8) -> ObjectKey {
        ObjectKey { ns: 0, id: [n; 32] }
    }

    fn id(n: u8) -> ObjectId {
        durable_core::NamespaceKey::from_bytes([9; 32]).id_from_base([n; 16])
    }

    const POLICY: RetryPolicy = RetryPolicy {
        base: Duration::from_secs(2),
        jitter: 0.25,
        max_retries: 6,
    };

    fn loaded(entries: &[(u8, i64)]) -> AlarmTimetable {
        let mut table = AlarmTimetable::default();
        for &(n, time) in entries {
            table.load(key(n), id(n), CLASS, time);
        }
        table
    }

    fn due_keys(due: &[Due]) -> Vec<u8> {
        due.iter().map(|d| d.key.id[0]).collect()
    }

    #[test]
    fn retry_delays_double_from_the_base_with_bounded_jitter() {
        let exact: Vec<u64> = (1..=6)
            .map(|retry| POLICY.delay(retry, 0.0).as_secs())
            .collect();
        assert_eq!(exact, [2, 4, 8, 16, 32, 64]);
        let cases = [
            (1, 1.0, 2_500),
            (3, 0.5, 9_000),
            (1, 7.0, 2_500),
            (1, -1.0, 2_000),
        ];
        for (retry, random, millis) in cases {
            assert_eq!(
                POLICY.delay(retry, random),
                Duration::from_millis(millis),
                "retry {retry}, random {random}"
            );
        }
    }

    #[test]
    fn deliveries_are_taken_earliest_first_up_to_the_capacity() {
        let mut table = loaded(&[(1, 300), (2, 100), (3, 200), (4, 900)]);
        // (now, capacity, delivered, next due afterwards)
        let cases: [(i64, usize, &[u8], Option<i64>); 4] = [
            (50, 10, &[], Some(100)),
            (250, 1, &[2], Some(200)),
            (250, 10, &[3], Some(300)),
            (1_000, 10, &[1, 4], None),
        ];
        for (now, capacity, expected, next) in cases {
            let due = table.take_due(now, capacity);
            assert_eq!(due_keys(&due), expected.to_vec(), "at {now}");
            assert_eq!(table.next_due(), next, "next after {now}");
        }
        assert!(table.plan(&key(1)).unwrap().running);
        assert_eq!(table.len(), 4, "in flight until settled");
    }

    #[test]
    fn the_index_must_hold_the_earliest_time_before_a_commit() {
        let mut table = loaded(&[(1, 500)]);
        // (object, time the commit stores, index needed first?)
        let cases = [
            (1, 600, false),
            (1, 500, false),
            (1, 400, true),
            (2, 100, true),
        ];
        for (n, time, expected) in cases {
            assert_eq!(
                table.needs_index(&key(n), time),
                expected,
                "object {n} at {time}"
            );
        }
        table.indexed(key(1), &id(1), CLASS, 400);
        assert!(!table.needs_index(&key(1), 400));
        assert_eq!(
            table.plan(&key(1)).unwrap().time_ms,
            500,
            "the schedule waits for durability"
        );
        // Indexing an object the scheduler did not know schedules it (the index is ahead).
        table.indexed(key(2), &id(2), CLASS, 100);
        assert_eq!(table.plan(&key(2)).unwrap().time_ms, 100);
    }

    #[test]
    fn durable_commits_bring_the_schedule_and_index_up_to_date() {
        let mut table = loaded(&[(1, 500)]);
        // The same time, already indexed: nothing changes.
        assert_eq!(table.durable(key(1), &id(1), CLASS, Some(500)), None);
        // A later time: the index entry moves (without waiting) and the schedule follows.
        assert_eq!(
            table.durable(key(1), &id(1), CLASS, Some(800)),
            Some(IndexChange::Upsert(CLASS.into(), id(1).to_string(), 800))
        );
        assert_eq!(table.plan(&key(1)).unwrap().time_ms, 800);
        assert_eq!(table.next_due(), Some(800));
        // An earlier time the index already learned before the commit: no second write.
        table.indexed(key(1), &id(1), CLASS, 300);
        assert_eq!(table.durable(key(1), &id(1), CLASS, Some(300)), None);
        assert_eq!(table.next_due(), Some(300));
        // Removed: forgotten, and the entry removed.
        assert_eq!(
            table.durable(key(1), &id(1), CLASS, None),
            Some(IndexChange::Remove(CLASS.into(), id(1).to_string()))
        );
        assert_eq!((table.len(), table.next_due()), (0, None));
        assert_eq!(table.durable(key(1), &id(1), CLASS, None), None);
    }

    /// Takes object 1's delivery at `now` and settles it with `outcome`.
    fn deliver(table: &mut AlarmTimetable, now: i64, outcome: Settle) -> SettleAction {
        let due = table.take_due(now, 1);
        assert_eq!(due.len(), 1, "a delivery was due at {now}");
        table.settle(&due[0], false, outcome, now, 0.0, &POLICY)
    }

    #[test]
    fn each_outcome_settles_as_the_rules_say() {
        let cases: [(Settle, SettleAction, Option<i64>); 4] = [
            (
                Settle::Done,
                SettleAction::Recheck { at: 2_000 },
                Some(2_000),
            ),
            (
                Settle::Spurious(Some(5_000)),
                SettleAction::Rescheduled { at: 5_000 },
                Some(5_000),
            ),
            (
                Settle::Spurious(None),
                SettleAction::Removed(IndexChange::Remove(CLASS.into(), id(1).to_string())),
                None,
            ),
            (
                Settle::Failed { permanent: false },
                SettleAction::Retry {
                    retry: 1,
                    delay: Duration::from_secs(2),
                    at: 3_000,
                },
                Some(3_000),
            ),
        ];
        for (outcome, expected, next) in cases {
            let mut table = loaded(&[(1, 500)]);
            assert_eq!(deliver(&mut table, 1_000, outcome), expected, "{outcome:?}");
            assert_eq!(table.next_due(), next, "{outcome:?}");
        }
    }

    #[test]
    fn a_failing_alarm_is_retried_with_backoff_then_given_up() {
        let mut table = loaded(&[(1, 0)]);
        let mut now = 0;
        let mut delays = Vec::new();
        loop {
            match deliver(&mut table, now, Settle::Failed { permanent: false }) {
                SettleAction::Retry { retry, delay, at } => {
                    assert_eq!(retry as usize, delays.len() + 1);
                    assert_eq!(table.plan(&key(1)).unwrap().retry, retry);
                    delays.push(delay.as_secs());
                    now = at;
                }
                SettleAction::GiveUp(clean_up) => {
                    assert_eq!(clean_up.retry, 6);
                    // The clean-up delivery succeeds: the object deleted its alarm.
                    assert_eq!(
                        table.settle(&clean_up, true, Settle::Done, now, 0.0, &POLICY),
                        SettleAction::Recheck { at: now + 1_000 }
                    );
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(delays, [2, 4, 8, 16, 32, 64]);
    }

    #[test]
    fn a_missing_handler_is_given_up_at_once_and_a_failed_clean_up_is_dropped() {
        let mut table = loaded(&[(1, 0)]);
        let SettleAction::GiveUp(clean_up) =
            deliver(&mut table, 10, Settle::Failed { permanent: true })
        else {
            panic!("a permanent failure gives up at once");
        };
        assert!(table.plan(&key(1)).unwrap().running);
        assert_eq!(
            table.settle(
                &clean_up,
                true,
                Settle::Failed { permanent: false },
                10,
                0.0,
                &POLICY
            ),
            SettleAction::Dropped
        );
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_late_outcome_does_not_undo_a_newer_schedule() {
        let mut table = loaded(&[(1, 100)]);
        let due = table.take_due(100, 1).pop().unwrap();
        // While the handler runs, it sets a new alarm, which becomes durable.
        table.indexed(key(1), &id(1), CLASS, 50);
        table.durable(key(1), &id(1), CLASS, Some(50));
        assert_eq!(table.next_due(), None, "not due again while in flight");
        // The old delivery then reports a failure: the new schedule stands, retry-free.
        assert_eq!(
            table.settle(
                &due,
                false,
                Settle::Failed { permanent: false },
                200,
                0.0,
                &POLICY
            ),
            SettleAction::Superseded
        );
        assert_eq!(
            table.plan(&key(1)),
            Some(Plan {
                time_ms: 50,
                retry: 0,
                running: false
            })
        );
        assert_eq!(table.next_due(), Some(50));
        // Settling something unknown is harmless.
        table.durable(key(1), &id(1), CLASS, None);
        assert_eq!(
            table.settle(&due, false, Settle::Done, 300, 0.0, &POLICY),
            SettleAction::Unknown
        );
    }
}
