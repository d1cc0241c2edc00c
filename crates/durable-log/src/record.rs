//! One [`LogRecord`]: its fields, its [`Checksum`], and its byte encoding.
//!
//! Encoding (little-endian throughout):
//!
//! ```text
//! magic "DOLR" | version u8 | body length u32 | checksum u64 | body
//! body = kind u8 | seq u64 | prev u64 | time_ms i64 | class length u16 | class bytes
//!      | id [u8; 32] | page_size u32 | db_pages u32 | alarm tag u8 [| alarm i64]
//!      | wal tag u8 [| salt u32 | salt u32 | frames u32 | checksum u32 | checksum u32]
//!      | page count u32 | (page u32 | page_size bytes) * count
//! ```
//!
//! The checksum is the first 8 bytes of SHA-256 over the body (which holds `prev`), so it
//! names the record and, through `prev`, its whole history.

use sha2::{Digest, Sha256};

/// The four bytes every encoded record starts with.
pub const MAGIC: [u8; 4] = *b"DOLR";

/// The version of the encoding this build writes and reads.
pub const VERSION: u8 = 1;

/// Bytes before the body: magic, version, body length, checksum.
pub const HEADER_BYTES: usize = 4 + 1 + 4 + 8;

/// The largest body a record may have (1 GiB): a length beyond it is damage, not a record.
pub const MAX_BODY_BYTES: usize = 1 << 30;

/// A record's checksum: names the record and, through its predecessor's, its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum(pub u64);

impl Checksum {
    /// The predecessor of an object's first record.
    pub const GENESIS: Checksum = Checksum(0);
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Which object a record belongs to: its class (namespace) and 32-byte id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName {
    /// The class name.
    pub class: String,
    /// The id's bytes.
    pub id: [u8; 32],
}

/// What kind of change a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A commit of the object's own writes.
    Commit,
    /// A restore to an earlier point, written forward: its pages turn the database into
    /// what it was then (history is never rewritten).
    Restore,
}

/// What a record did to the object's alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmChange {
    /// The alarm is as it was.
    Unchanged,
    /// The alarm is set to this time (milliseconds since the Unix epoch).
    Set(i64),
    /// The alarm was removed.
    Cleared,
}

/// Where a commit ended in its object's local WAL (the WAL's salts, frame count and running
/// checksum after the commit frame): how a node reopening the object matches its local WAL
/// against the log, and cuts off commits that never reached the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalMark {
    /// The WAL generation's salts.
    pub salts: [u32; 2],
    /// Frames in the WAL up to and including the commit frame.
    pub frames: u32,
    /// The WAL's running checksum after the commit frame.
    pub checksum: [u32; 2],
}

/// One page's content after the record.
#[derive(Clone, PartialEq, Eq)]
pub struct PageImage {
    /// The page number (1-based).
    pub page: u32,
    /// The page's bytes (exactly the record's page size).
    pub data: Vec<u8>,
}

impl std::fmt::Debug for PageImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageImage")
            .field("page", &self.page)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// What one commit of one object changed, and its place in the object's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Whose record it is.
    pub object: ObjectName,
    /// The object's record number: 1 for its first record, then one more each time, over
    /// its whole life (unlike the capture point's sequence, which restarts when the
    /// database is opened again).
    pub seq: u64,
    /// The checksum of record `seq - 1` ([`Checksum::GENESIS`] for the first).
    pub prev: Checksum,
    /// A commit, or a restore written forward.
    pub kind: RecordKind,
    /// When the commit was taken, in milliseconds since the Unix epoch (the node's clock):
    /// what point-in-time recovery searches by.
    pub time_ms: i64,
    /// The database's page size in bytes.
    pub page_size: u32,
    /// The database's size after the record, in pages.
    pub db_pages: u32,
    /// Each page the record changed, once, by ascending page number.
    pub pages: Vec<PageImage>,
    /// What the record did to the alarm.
    pub alarm: AlarmChange,
    /// Where the commit ended in the object's local WAL (`None` for a record that was not a
    /// local commit, such as a restore).
    pub wal: Option<WalMark>,
}

/// A record already encoded (its checksum computed, the costly part: a hash of every page),
/// with the fields a log indexes it by. Appends take these, so a record is hashed and copied
/// once on its way to the log.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedRecord {
    /// Whose record it is.
    pub object: ObjectName,
    /// The record's number.
    pub seq: u64,
    /// Its predecessor's checksum.
    pub prev: Checksum,
    /// When the commit was taken.
    pub time_ms: i64,
    /// Its checksum.
    pub checksum: Checksum,
    /// Its encoding (header and body).
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for EncodedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedRecord")
            .field("object", &self.object)
            .field("seq", &self.seq)
            .field("checksum", &self.checksum)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end before the record does (a torn write, or more bytes to come).
    #[error("the record is incomplete: {needed} bytes needed, {available} available")]
    Incomplete {
        /// Bytes the record needs in all.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The bytes are not a record of this format.
    #[error("not a log record: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The record's content does not match its checksum: it was altered or damaged.
    #[error("the record's checksum {stored} does not match its content ({computed})")]
    ChecksumMismatch {
        /// The checksum the record carries.
        stored: Checksum,
        /// The checksum of its content.
        computed: Checksum,
    },
}

impl LogRecord {
    /// The body's bytes (what the checksum covers).
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body_capacity());
        self.write_body(&mut out);
        out
    }

    fn body_capacity(&self) -> usize {
        64 + self.object.class.len() + self.pages.len() * (4 + self.page_size as usize)
    }

    /// Appends the body to `out`.
    fn write_body(&self, out: &mut Vec<u8>) {
        out.push(match self.kind {
            RecordKind::Commit => 1,
            RecordKind::Restore => 2,
        });
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.prev.0.to_le_bytes());
        out.extend_from_slice(&self.time_ms.to_le_bytes());
        let class = self.object.class.as_bytes();
        let class_len = u16::try_from(class.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&class_len.to_le_bytes());
        out.extend_from_slice(&class[..usize::from(class_len)]);
        out.extend_from_slice(&self.object.id);
        out.extend_from_slice(&self.page_size.to_le_bytes());
        out.extend_from_slice(&self.db_pages.to_le_bytes());
        match self.alarm {
            AlarmChange::Unchanged => out.push(0),
            AlarmChange::Set(time) => {
                out.push(1);
                out.extend_from_slice(&time.to_le_bytes());
            }
            AlarmChange::Cleared => out.push(2),
        }
        match self.wal {
            None => out.push(0),
            Some(mark) => {
                out.push(1);
                for word in [
                    mark.salts[0],
                    mark.salts[1],
                    mark.frames,
                    mark.checksum[0],
                    mark.checksum[1],
                ] {
                    out.extend_from_slice(&word.to_le_bytes());
                }
            }
        }
        let count = u32::try_from(self.pages.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for page in &self.pages {
            out.extend_from_slice(&page.page.to_le_bytes());
            out.extend_from_slice(&page.data);
        }
    }

    /// The record's checksum: SHA-256 over its body (predecessor included), first 8 bytes.
    pub fn checksum(&self) -> Checksum {
        checksum_of(&self.body())
    }

    /// The record as bytes (header and body).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_checksum().0
    }

    /// The record as bytes, and its checksum (computed once, for both).
    pub fn encode_with_checksum(&self) -> (Vec<u8>, Checksum) {
        // The body is written in place after a header whose length and checksum are filled
        // in once it is there: one copy of the pages, one hash.
        let mut out = Vec::with_capacity(HEADER_BYTES + self.body_capacity());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&[0; 12]);
        self.write_body(&mut out);
        let len = u32::try_from(out.len() - HEADER_BYTES).unwrap_or(u32::MAX);
        let checksum = checksum_of(&out[HEADER_BYTES..]);
        out[5..9].copy_from_slice(&len.to_le_bytes());
        out[9..17].copy_from_slice(&checksum.0.to_le_bytes());
        (out, checksum)
    }

    /// The record encoded once, with what a log indexes it by: what appends take.
    pub fn to_encoded(&self) -> EncodedRecord {
        let (bytes, checksum) = self.encode_with_checksum();
        EncodedRecord {
            object: self.object.clone(),
            seq: self.seq,
            prev: self.prev,
            time_ms: self.time_ms,
            checksum,
            bytes,
        }
    }

    /// The record at the start of `bytes`, and how many bytes it took.
    pub fn decode(bytes: &[u8]) -> Result<(LogRecord, usize), DecodeError> {
        if bytes.len() < HEADER_BYTES {
            return Err(DecodeError::Incomplete {
                needed: HEADER_BYTES,
                available: bytes.len(),
            });
        }
        if bytes[..4] != MAGIC {
            return Err(malformed("it does not start with the record magic"));
        }
        if bytes[4] != VERSION {
            return Err(malformed(format!(
                "encoding version {} (this build reads {VERSION})",
                bytes[4]
            )));
        }
        let body_len = u32::from_le_bytes(array(&bytes[5..9])) as usize;
        if body_len > MAX_BODY_BYTES {
            return Err(malformed(format!("a body of {body_len} bytes")));
        }
        let stored = Checksum(u64::from_le_bytes(array(&bytes[9..17])));
        let needed = HEADER_BYTES + body_len;
        if bytes.len() < needed {
            return Err(DecodeError::Incomplete {
                needed,
                available: bytes.len(),
            });
        }
        let body = &bytes[HEADER_BYTES..needed];
        let computed = checksum_of(body);
        if computed != stored {
            return Err(DecodeError::ChecksumMismatch { stored, computed });
        }
        let record = parse_body(body)?;
        Ok((record, needed))
    }
}

fn checksum_of(body: &[u8]) -> Checksum {
    let digest = Sha256::digest(body);
    Checksum(u64::from_le_bytes(array(&digest[..8])))
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn malformed(reason: impl Into<String>) -> DecodeError {
    DecodeError::Malformed {
        reason: reason.into(),
    }
}

/// Reads fields off a body, failing (not panicking) when it ends early.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(malformed("the body ends inside a field"));
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(array(self.take(2)?)))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(array(self.take(4)?)))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(array(self.take(8)?)))
    }
}

fn parse_body(body: &[u8]) -> Result<LogRecord, DecodeError> {
    let mut r = Reader { bytes: body, at: 0 };
    let kind = match r.u8()? {
        1 => RecordKind::Commit,
        2 => RecordKind::Restore,
        other => return Err(malformed(format!("record kind {other}"))),
    };
    let seq = r.u64()?;
    let prev = Checksum(r.u64()?);
    let time_ms = r.u64()? as i64;
    let class_len = usize::from(r.u16()?);
    let class = String::from_utf8(r.take(class_len)?.to_vec())
        .map_err(|_| malformed("the class name is not UTF-8"))?;
    let id = array(r.take(32)?);
    let page_size = r.u32()?;
    if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(malformed(format!("page size {page_size}")));
    }
    let db_pages = r.u32()?;
    let alarm = match r.u8()? {
        0 => AlarmChange::Unchanged,
        1 => AlarmChange::Set(r.u64()? as i64),
        2 => AlarmChange::Cleared,
        other => return Err(malformed(format!("alarm tag {other}"))),
    };
    let wal = match r.u8()? {
        0 => None,
        1 => Some(WalMark {
            salts: [r.u32()?, r.u32()?],
            frames: r.u32()?,
            checksum: [r.u32()?, r.u32()?],
        }),
        other => return Err(malformed(format!("WAL mark tag {other}"))),
    };
    let count = r.u32()? as usize;
    let mut pages = Vec::with_capacity(count.min(body.len() / page_size as usize + 1));
    let mut last = 0;
    for _ in 0..count {
        let page = r.u32()?;
        if page <= last {
            return Err(malformed("pages are not in ascending order"));
        }
        last = page;
        let data = r.take(page_size as usize)?.to_vec();
        pages.push(PageImage { page, data });
    }
    if r.at != body.len() {
        return Err(malformed("bytes after the last page"));
    }
    if seq == 0 {
        return Err(malformed("record number 0"));
    }
    Ok(LogRecord {
        object: ObjectName { class, id },
        seq,
        prev,
        kind,
        time_ms,
        page_size,
        db_pages,
        pages,
        alarm,
        wal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(seq: u64, prev: Checksum, fill: u8) -> LogRecord {
        LogRecord {
            object: ObjectName {
                class: "Room".into(),
                id: [7; 32],
            },
            seq,
            prev,
            kind: RecordKind::Commit,
            time_ms: 1_700_000_000_000 + seq as i64,
            page_size: 512,
            db_pages: 3,
            pages: vec![
                PageImage {
                    page: 1,
                    data: vec![fill; 512],
                },
                PageImage {
                    page: 3,
                    data: vec![fill ^ 0xff; 512],
                },
            ],
            alarm: AlarmChange::Set(42),
            wal: Some(WalMark {
                salts: [1, 2],
                frames: 7,
                checksum: [3, 4],
            }),
        }
    }

    #[test]
    fn a_record_round_trips_through_its_bytes() {
        for alarm in [
            AlarmChange::Unchanged,
            AlarmChange::Set(-5),
            AlarmChange::Cleared,
        ] {
            let mut original = record(3, Checksum(99), 1);
            original.alarm = alarm;
            original.kind = RecordKind::Restore;
            original.wal = None;
            let bytes = original.encode();
            let (decoded, used) = LogRecord::decode(&bytes).unwrap();
            assert_eq!(decoded, original);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn every_field_is_covered_by_the_checksum() {
        let base = record(2, Checksum(1), 1);
        let mut variants = Vec::new();
        let mut v = base.clone();
        v.seq = 3;
        variants.push(v);
        let mut v = base.clone();
        v.prev = Checksum(2);
        variants.push(v);
        let mut v = base.clone();
        v.time_ms += 1;
        variants.push(v);
        let mut v = base.clone();
        v.object.class = "Other".into();
        variants.push(v);
        let mut v = base.clone();
        v.object.id[31] ^= 1;
        variants.push(v);
        let mut v = base.clone();
        v.db_pages = 4;
        variants.push(v);
        let mut v = base.clone();
        v.pages[1].data[511] ^= 1;
        variants.push(v);
        let mut v = base.clone();
        v.alarm = AlarmChange::Cleared;
        variants.push(v);
        let mut v = base.clone();
        v.kind = RecordKind::Restore;
        variants.push(v);
        let mut v = base.clone();
        v.wal = None;
        variants.push(v);
        for variant in variants {
            assert_ne!(variant.checksum(), base.checksum(), "{variant:?}");
        }
    }

    #[test]
    fn damaged_or_foreign_bytes_are_refused_not_misread() {
        let bytes = record(1, Checksum::GENESIS, 5).encode();
        for cut in [0, 3, HEADER_BYTES - 1, HEADER_BYTES + 10, bytes.len() - 1] {
            assert!(
                matches!(
                    LogRecord::decode(&bytes[..cut]),
                    Err(DecodeError::Incomplete { .. })
                ),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x10;
        assert!(matches!(
            LogRecord::decode(&flipped),
            Err(DecodeError::ChecksumMismatch { .. })
        ));
        let mut wrong_magic = bytes.clone();
        wrong_magic[0] = b'X';
        assert!(matches!(
            LogRecord::decode(&wrong_magic),
            Err(DecodeError::Malformed { .. })
        ));
        let mut future = bytes.clone();
        future[4] = VERSION + 1;
        assert!(matches!(
            LogRecord::decode(&future),
            Err(DecodeError::Malformed { .. })
        ));
        let mut huge = bytes;
        huge[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            LogRecord::decode(&huge),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn checksums_render_as_16_hex_digits() {
        assert_eq!(Checksum(0xab).to_string(), "00000000000000ab");
    }
}
