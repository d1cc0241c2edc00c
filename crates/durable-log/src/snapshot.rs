//! [`Snapshot`]: an object's database as it was after one of its records, where its retained
//! history starts once the records before are compacted away (see [`crate::retention`]).
//!
//! A snapshot holds that record itself (so the log can still hand it out: its number,
//! checksum, time and WAL mark are what bookmarks and the runtime's start-up check name)
//! and the whole database after it. Encoding (little-endian):
//!
//! ```text
//! magic "DOSN" | version u8 | record length u32 | record (an encoded LogRecord)
//!   | image length u64 | image checksum u64 | image bytes
//! ```
//!
//! The record checks itself (its own checksum); the image's checksum is the first 8 bytes of
//! SHA-256 over the image. Pure functions of bytes, like the record format.

use sha2::{Digest, Sha256};

use crate::chain::Head;
use crate::log::RecordTime;
use crate::record::{Checksum, DecodeError, LogRecord, ObjectName};

/// The four bytes every encoded snapshot starts with.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"DOSN";

const VERSION: u8 = 1;

/// An object's database after one of its records, and that record.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The record the snapshot was taken after: the first record of the retained history.
    pub record: LogRecord,
    /// The database file's bytes after it.
    pub image: Vec<u8>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("object", &self.record.object)
            .field("seq", &self.record.seq)
            .field("image_bytes", &self.image.len())
            .finish()
    }
}

impl Snapshot {
    /// Whose snapshot it is.
    pub fn object(&self) -> &ObjectName {
        &self.record.object
    }

    /// The head of history at the snapshot (its record's number and checksum).
    pub fn head(&self) -> Head {
        Head {
            seq: self.record.seq,
            checksum: self.record.checksum(),
        }
    }

    /// Where the snapshot lies in history.
    pub fn record_time(&self) -> RecordTime {
        RecordTime {
            seq: self.record.seq,
            time_ms: self.record.time_ms,
            checksum: self.record.checksum(),
        }
    }

    /// The snapshot as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let record = self.record.encode();
        let mut out = Vec::with_capacity(4 + 1 + 4 + record.len() + 16 + self.image.len());
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.push(VERSION);
        out.extend_from_slice(
            &u32::try_from(record.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        out.extend_from_slice(&record);
        out.extend_from_slice(&(self.image.len() as u64).to_le_bytes());
        out.extend_from_slice(&image_checksum(&self.image).0.to_le_bytes());
        out.extend_from_slice(&self.image);
        out
    }

    /// The snapshot `bytes` hold (all of them), checked.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
        let (record, rest) = decode_record_part(bytes)?;
        if rest.len() < 16 {
            return Err(DecodeError::Incomplete {
                needed: bytes.len() - rest.len() + 16,
                available: bytes.len(),
            });
        }
        let len = u64::from_le_bytes(word(&rest[..8]));
        let stored = Checksum(u64::from_le_bytes(word(&rest[8..16])));
        let image = &rest[16..];
        if image.len() as u64 != len {
            return Err(DecodeError::Incomplete {
                needed: bytes.len() - image.len() + usize::try_from(len).unwrap_or(usize::MAX),
                available: bytes.len(),
            });
        }
        let computed = image_checksum(image);
        if computed != stored {
            return Err(DecodeError::ChecksumMismatch { stored, computed });
        }
        Ok(Snapshot {
            record,
            image: image.to_vec(),
        })
    }

    /// Only the record of an encoded snapshot (`bytes` may stop after it): what a log reads
    /// to hand the record out without loading the image.
    pub fn decode_record(bytes: &[u8]) -> Result<LogRecord, DecodeError> {
        decode_record_part(bytes).map(|(record, _)| record)
    }

    /// How many bytes of an encoded snapshot come before its image's length: a reader that
    /// wants only the record reads this many (`header` is the snapshot's first 9 bytes).
    pub fn record_part_len(header: &[u8]) -> Result<usize, DecodeError> {
        check_header(header)?;
        Ok(9 + u32::from_le_bytes(word(&header[5..9])) as usize)
    }
}

fn check_header(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() < 9 {
        return Err(DecodeError::Incomplete {
            needed: 9,
            available: bytes.len(),
        });
    }
    if bytes[..4] != SNAPSHOT_MAGIC {
        return Err(DecodeError::Malformed {
            reason: "it does not start with the snapshot magic".into(),
        });
    }
    if bytes[4] != VERSION {
        return Err(DecodeError::Malformed {
            reason: format!("snapshot version {} (this build reads {VERSION})", bytes[4]),
        });
    }
    Ok(())
}

fn decode_record_part(bytes: &[u8]) -> Result<(LogRecord, &[u8]), DecodeError> {
    let end = Snapshot::record_part_len(bytes)?;
    if bytes.len() < end {
        return Err(DecodeError::Incomplete {
            needed: end,
            available: bytes.len(),
        });
    }
    let (record, used) = LogRecord::decode(&bytes[9..end])?;
    if used != end - 9 {
        return Err(DecodeError::Malformed {
            reason: "the snapshot's record is not as long as its header says".into(),
        });
    }
    Ok((record, &bytes[end..]))
}

fn word<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn image_checksum(image: &[u8]) -> Checksum {
    let digest = Sha256::digest(image);
    Checksum(u64::from_le_bytes(word(&digest[..8])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AlarmChange, PageImage, RecordKind};

    fn snapshot() -> Snapshot {
        Snapshot {
            record: LogRecord {
                object: ObjectName {
                    class: "Room".into(),
                    id: [7; 32],
                },
                seq: 9,
                prev: Checksum(5),
                kind: RecordKind::Commit,
                time_ms: 1_000,
                page_size: 512,
                db_pages: 2,
                pages: vec![PageImage {
                    page: 2,
                    data: vec![3; 512],
                }],
                alarm: AlarmChange::Unchanged,
                wal: None,
            },
            image: vec![1; 1024],
        }
    }

    #[test]
    fn a_snapshot_comes_back_as_it_went_in() {
        let snapshot = snapshot();
        let bytes = snapshot.encode();
        assert_eq!(Snapshot::decode(&bytes).unwrap(), snapshot);
        let part = Snapshot::record_part_len(&bytes[..9]).unwrap();
        assert_eq!(
            Snapshot::decode_record(&bytes[..part]).unwrap(),
            snapshot.record
        );
        assert_eq!(snapshot.head().seq, 9);
        assert_eq!(snapshot.head().checksum, snapshot.record.checksum());
    }

    #[test]
    fn damage_anywhere_is_caught() {
        let bytes = snapshot().encode();
        for at in [0, 4, 20, bytes.len() - 1, bytes.len() - 1030] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(Snapshot::decode(&damaged).is_err(), "byte {at}");
        }
        assert!(matches!(
            Snapshot::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Incomplete { .. })
        ));
    }
}
