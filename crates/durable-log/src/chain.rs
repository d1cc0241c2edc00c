//! The chain rule: an object's records are numbered 1, 2, 3, ... and each names its
//! predecessor's checksum. [`verify_chain`] checks a run of records against it and returns
//! where the chain ends ([`Head`]), or the first break: a gap, a fork, a record of another
//! object.

use crate::record::{Checksum, LogRecord, ObjectName};

/// Where an object's chain ends: its last record's number and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The last record's number (0: no record yet).
    pub seq: u64,
    /// The last record's checksum ([`Checksum::GENESIS`] when there is none).
    pub checksum: Checksum,
}

impl Head {
    /// The head of an object with no records.
    pub const EMPTY: Head = Head {
        seq: 0,
        checksum: Checksum::GENESIS,
    };

    /// True if `record` is the next link after this head.
    pub fn is_followed_by(&self, record: &LogRecord) -> bool {
        record.seq == self.seq + 1 && record.prev == self.checksum
    }

    /// The head after `record`, if it is the next link; the break otherwise.
    pub fn advance(&self, record: &LogRecord) -> Result<Head, ChainError> {
        self.advance_to(record, record.checksum())
    }

    /// [`advance`](Self::advance), with the record's checksum already computed (it is the
    /// costly part: a hash of every page).
    pub fn advance_to(&self, record: &LogRecord, checksum: Checksum) -> Result<Head, ChainError> {
        self.follow(record.seq, record.prev, checksum)
    }

    /// The head after the record numbered `seq`, naming `prev` as its predecessor and with
    /// `checksum`, if it is the next link; the break otherwise.
    pub fn follow(&self, seq: u64, prev: Checksum, checksum: Checksum) -> Result<Head, ChainError> {
        if seq != self.seq + 1 {
            return Err(if seq <= self.seq {
                ChainError::Repeat {
                    seq,
                    head: self.seq,
                }
            } else {
                ChainError::Gap {
                    expected: self.seq + 1,
                    found: seq,
                }
            });
        }
        if prev != self.checksum {
            return Err(ChainError::Fork {
                seq,
                expected_prev: self.checksum,
                found_prev: prev,
            });
        }
        Ok(Head { seq, checksum })
    }
}

/// How a run of records breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// Records are missing: the next one has a later number than the one expected.
    #[error("gap in the log: record {expected} is missing (the next one is {found})")]
    Gap {
        /// The number that should come next.
        expected: u64,
        /// The number that came.
        found: u64,
    },
    /// A record at or before the head came again (a duplicate, or history going back).
    #[error("record {seq} comes after record {head}: records must be numbered in order")]
    Repeat {
        /// The record's number.
        seq: u64,
        /// The head's number.
        head: u64,
    },
    /// The record names another predecessor than the record before it: two histories.
    #[error(
        "fork in the log at record {seq}: it follows {found_prev}, but the record before it is {expected_prev}"
    )]
    Fork {
        /// The record's number.
        seq: u64,
        /// The checksum of the record before it.
        expected_prev: Checksum,
        /// The predecessor it names.
        found_prev: Checksum,
    },
    /// A record of another object in an object's run.
    #[error("record {seq} belongs to another object ({class})")]
    OtherObject {
        /// The record's number.
        seq: u64,
        /// The other object's class.
        class: String,
    },
}

/// Checks that `records` (all of `object`) continue the chain from `from`, and returns the
/// head after the last one.
pub fn verify_chain<'a>(
    object: &ObjectName,
    from: Head,
    records: impl IntoIterator<Item = &'a LogRecord>,
) -> Result<Head, ChainError> {
    let mut head = from;
    for record in records {
        if &record.object != object {
            return Err(ChainError::OtherObject {
                seq: record.seq,
                class: record.object.class.clone(),
            });
        }
        head = head.advance(record)?;
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AlarmChange, PageImage, RecordKind};

    fn object() -> ObjectName {
        ObjectName {
            class: "Room".into(),
            id: [1; 32],
        }
    }

    fn next(prev: Option<&LogRecord>, fill: u8) -> LogRecord {
        LogRecord {
            object: object(),
            seq: prev.map_or(1, |p| p.seq + 1),
            prev: prev.map_or(Checksum::GENESIS, LogRecord::checksum),
            kind: RecordKind::Commit,
            time_ms: 1_000,
            page_size: 512,
            db_pages: 1,
            pages: vec![PageImage {
                page: 1,
                data: vec![fill; 512],
            }],
            alarm: AlarmChange::Unchanged,
            wal: None,
        }
    }

    fn chain(n: u8) -> Vec<LogRecord> {
        let mut out: Vec<LogRecord> = Vec::new();
        for fill in 0..n {
            let record = next(out.last(), fill);
            out.push(record);
        }
        out
    }

    #[test]
    fn a_chain_verifies_to_its_last_record() {
        let records = chain(5);
        let head = verify_chain(&object(), Head::EMPTY, &records).unwrap();
        assert_eq!(head.seq, 5);
        assert_eq!(head.checksum, records[4].checksum());
        // And in two runs, the second from the first's head.
        let first = verify_chain(&object(), Head::EMPTY, &records[..2]).unwrap();
        assert_eq!(verify_chain(&object(), first, &records[2..]).unwrap(), head);
    }

    #[test]
    fn a_missing_record_is_a_gap() {
        let mut records = chain(4);
        records.remove(1);
        assert_eq!(
            verify_chain(&object(), Head::EMPTY, &records),
            Err(ChainError::Gap {
                expected: 2,
                found: 3
            })
        );
    }

    #[test]
    fn a_record_with_another_predecessor_is_a_fork() {
        let records = chain(3);
        // A second record 3, made on another version of record 2.
        let other_two = next(Some(&records[0]), 99);
        let forked = next(Some(&other_two), 3);
        let run = [records[0].clone(), records[1].clone(), forked];
        assert!(matches!(
            verify_chain(&object(), Head::EMPTY, &run),
            Err(ChainError::Fork { seq: 3, .. })
        ));
    }

    #[test]
    fn an_altered_record_breaks_the_next_link() {
        let mut records = chain(3);
        records[1].pages[0].data[0] ^= 1;
        assert!(matches!(
            verify_chain(&object(), Head::EMPTY, &records),
            Err(ChainError::Fork { seq: 3, .. })
        ));
    }

    #[test]
    fn repeats_and_other_objects_are_refused() {
        let records = chain(2);
        let run = [records[0].clone(), records[1].clone(), records[1].clone()];
        assert!(matches!(
            verify_chain(&object(), Head::EMPTY, &run),
            Err(ChainError::Repeat { seq: 2, head: 2 })
        ));
        let mut stranger = records[0].clone();
        stranger.object.id = [2; 32];
        assert!(matches!(
            verify_chain(&object(), Head::EMPTY, [&stranger]),
            Err(ChainError::OtherObject { .. })
        ));
        assert!(Head::EMPTY.is_followed_by(&records[0]));
        assert!(!Head::EMPTY.is_followed_by(&records[1]));
    }
}
