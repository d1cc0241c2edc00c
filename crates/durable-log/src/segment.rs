//! A segment: records written one after another (an archive file, a stream). Reading one
//! returns its whole records and how it ends: cleanly, with a torn tail (a last write cut
//! short by a crash: one incomplete record, or a last record whose bytes did not all reach
//! the disk, which was never acknowledged as archived), or damaged (bytes that are not a
//! record, with more after them: never a crash's doing, and never silently skipped).

use crate::record::{Checksum, DecodeError, HEADER_BYTES, LogRecord};

/// How a segment's bytes end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Every byte belongs to a whole record.
    Clean,
    /// The last record is incomplete from `offset` on: a write cut short. Truncating the
    /// segment to `offset` drops it.
    Torn {
        /// Where the incomplete record starts.
        offset: usize,
    },
    /// The bytes at `offset` are not a record (`error` says why).
    Damaged {
        /// Where the damage starts.
        offset: usize,
        /// What the decoder found.
        error: DecodeError,
    },
}

/// The whole records of `bytes`, in order, and how the bytes end.
pub fn read_segment(bytes: &[u8]) -> (Vec<LogRecord>, SegmentEnd) {
    let (entries, end) = read_segment_entries(bytes);
    (entries.into_iter().map(|entry| entry.record).collect(), end)
}

/// One whole record of a segment, with where it lies and its checksum (read from its header,
/// which decoding checked), so a reader need not encode or hash it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    /// The record.
    pub record: LogRecord,
    /// Where it starts in the segment.
    pub offset: usize,
    /// Its encoded length.
    pub len: usize,
    /// Its checksum.
    pub checksum: Checksum,
}

/// [`read_segment`], with each record's place and checksum.
pub fn read_segment_entries(bytes: &[u8]) -> (Vec<SegmentEntry>, SegmentEnd) {
    let mut entries = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match LogRecord::decode(&bytes[offset..]) {
            Ok((record, used)) => {
                let mut stored = [0u8; 8];
                stored.copy_from_slice(&bytes[offset + 9..offset + 17]);
                entries.push(SegmentEntry {
                    record,
                    offset,
                    len: used,
                    checksum: Checksum(u64::from_le_bytes(stored)),
                });
                offset += used;
            }
            Err(DecodeError::Incomplete { .. }) => {
                return (entries, SegmentEnd::Torn { offset });
            }
            // The last record, whole in length but not in content: its write was cut short
            // after the file grew (the file system may show the new length before the data).
            Err(DecodeError::ChecksumMismatch { .. }) if ends_the_segment(&bytes[offset..]) => {
                return (entries, SegmentEnd::Torn { offset });
            }
            Err(error) => return (entries, SegmentEnd::Damaged { offset, error }),
        }
    }
    (entries, SegmentEnd::Clean)
}

/// True if the record that starts `rest` (its header read) ends exactly where `rest` does.
fn ends_the_segment(rest: &[u8]) -> bool {
    let mut length = [0u8; 4];
    length.copy_from_slice(&rest[5..9]);
    HEADER_BYTES + u32::from_le_bytes(length) as usize == rest.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AlarmChange, Checksum, ObjectName, PageImage, RecordKind};

    fn record(seq: u64) -> LogRecord {
        LogRecord {
            object: ObjectName {
                class: "C".into(),
                id: [3; 32],
            },
            seq,
            prev: Checksum(seq),
            kind: RecordKind::Commit,
            time_ms: 0,
            page_size: 512,
            db_pages: 1,
            pages: vec![PageImage {
                page: 1,
                data: vec![seq as u8; 512],
            }],
            alarm: AlarmChange::Unchanged,
            wal: None,
        }
    }

    fn segment(n: u64) -> Vec<u8> {
        (1..=n).flat_map(|seq| record(seq).encode()).collect()
    }

    #[test]
    fn entries_say_where_each_record_lies_and_carry_its_checksum() {
        let bytes = segment(2);
        let (entries, end) = read_segment_entries(&bytes);
        assert_eq!(end, SegmentEnd::Clean);
        let one = record(1).encode().len();
        assert_eq!((entries[1].offset, entries[1].len), (one, one));
        assert_eq!(entries[1].checksum, record(2).checksum());
    }

    #[test]
    fn a_clean_segment_reads_whole() {
        let (records, end) = read_segment(&segment(3));
        assert_eq!(records.len(), 3);
        assert_eq!(end, SegmentEnd::Clean);
        assert_eq!(read_segment(&[]), (vec![], SegmentEnd::Clean));
    }

    #[test]
    fn a_write_cut_short_is_a_torn_tail_at_the_record_it_cut() {
        let bytes = segment(3);
        let one = record(1).encode().len();
        for cut in [2 * one + 1, 2 * one + 20, bytes.len() - 1] {
            let (records, end) = read_segment(&bytes[..cut]);
            assert_eq!(records.len(), 2, "cut at {cut}");
            assert_eq!(end, SegmentEnd::Torn { offset: 2 * one });
        }
    }

    #[test]
    fn a_last_record_whose_content_did_not_reach_the_disk_is_a_torn_tail() {
        let mut bytes = segment(3);
        let one = record(1).encode().len();
        let len = bytes.len();
        bytes[len - 100..].fill(0);
        let (records, end) = read_segment(&bytes);
        assert_eq!(records.len(), 2);
        assert_eq!(end, SegmentEnd::Torn { offset: 2 * one });
    }

    #[test]
    fn garbage_in_the_middle_is_damage_not_a_tail() {
        let mut bytes = segment(3);
        let one = record(1).encode().len();
        bytes[one + 100] ^= 0xff;
        let (records, end) = read_segment(&bytes);
        assert_eq!(records.len(), 1);
        assert!(matches!(
            end,
            SegmentEnd::Damaged {
                offset,
                error: DecodeError::ChecksumMismatch { .. }
            } if offset == one
        ));
    }
}
