//! [`DatabaseImage`]: a database file's bytes rebuilt from records. Applying an object's
//! records in order to an empty image (or to a snapshot's bytes, then the records after the
//! snapshot) gives the database as it was after the last one applied: what a restore, a
//! point-in-time recovery or a new replica needs.

use crate::chain::Head;
use crate::log::{CommitLog, LogError};
use crate::record::{AlarmChange, LogRecord, ObjectName, PageImage, RecordKind};

/// A database file's bytes, built by applying records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseImage {
    bytes: Vec<u8>,
    page_size: Option<u32>,
}

/// Why a record cannot be applied to an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The record's page size differs from the image's.
    #[error("record {seq} has pages of {record} bytes, the database has pages of {image}")]
    PageSize {
        /// The record's number.
        seq: u64,
        /// Its page size.
        record: u32,
        /// The image's page size.
        image: u32,
    },
    /// A page image is not one page long, or lies beyond the database's new end.
    #[error("record {seq} has a bad page {page}: {reason}")]
    BadPage {
        /// The record's number.
        seq: u64,
        /// The page number.
        page: u32,
        /// What is wrong.
        reason: &'static str,
    },
}

impl DatabaseImage {
    /// An empty image (a database with no pages yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// An image of `bytes`, a database file (a snapshot), whose pages are `page_size` bytes.
    pub fn from_bytes(bytes: Vec<u8>, page_size: u32) -> Self {
        Self {
            bytes,
            page_size: Some(page_size),
        }
    }

    /// Applies `record`: writes its pages and sets the size to its `db_pages`.
    pub fn apply(&mut self, record: &LogRecord) -> Result<(), ImageError> {
        let page_size = *self.page_size.get_or_insert(record.page_size);
        if page_size != record.page_size {
            return Err(ImageError::PageSize {
                seq: record.seq,
                record: record.page_size,
                image: page_size,
            });
        }
        let size = page_size as usize;
        for page in &record.pages {
            let bad = |reason| ImageError::BadPage {
                seq: record.seq,
                page: page.page,
                reason,
            };
            if page.data.len() != size {
                return Err(bad("its image is not one page long"));
            }
            if page.page == 0 || page.page > record.db_pages {
                return Err(bad("it lies outside the database"));
            }
        }
        let new_len = record.db_pages as usize * size;
        self.bytes.resize(new_len.max(self.bytes.len()), 0);
        for page in &record.pages {
            let at = (page.page as usize - 1) * size;
            self.bytes[at..at + size].copy_from_slice(&page.data);
        }
        self.bytes.truncate(new_len);
        Ok(())
    }

    /// The database file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, taken out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// An object's database as it was after record `upto` of `log`, and the head it was built
/// to (record `upto`, checked link by link): what a restore installs. `upto` 0 is the empty
/// database (no bytes). The image is built from the object's snapshot when its history
/// starts at one; a point before it is [`LogError::BeforeHistory`].
pub fn image_at(
    log: &dyn CommitLog,
    object: &ObjectName,
    upto: u64,
) -> Result<(Vec<u8>, Head), LogError> {
    let mut head = Head::EMPTY;
    let mut image = DatabaseImage::new();
    if let Some(start) = log.history_start(object)? {
        if upto < start.seq {
            return Err(LogError::BeforeHistory {
                class: object.class.clone(),
                seq: upto,
                start: start.seq,
            });
        }
        let snapshot = log.snapshot(object)?.ok_or_else(|| {
            LogError::Damaged(format!(
                "the history of {} starts at a snapshot the log does not hold",
                object.class
            ))
        })?;
        head = snapshot.head();
        image = DatabaseImage::from_bytes(snapshot.image, snapshot.record.page_size);
    }
    let records = log.records(object, head.seq + 1, upto)?;
    for record in &records {
        head = head.advance(record).map_err(|source| LogError::Chain {
            class: object.class.clone(),
            seq: record.seq,
            source,
        })?;
        image.apply(record).map_err(|error| {
            LogError::Damaged(format!(
                "record {} of {}: {error}",
                record.seq, object.class
            ))
        })?;
    }
    if head.seq != upto {
        return Err(LogError::Damaged(format!(
            "the log of this {} object ends at record {}, before record {upto}",
            object.class, head.seq
        )));
    }
    Ok((image.into_bytes(), head))
}

impl LogRecord {
    /// A record holding every page of `bytes` (a whole database of `page_size`-byte pages),
    /// after `head`: an object's first record when it had a database before its log, or a
    /// restore written forward.
    pub fn whole(
        object: &ObjectName,
        head: Head,
        time_ms: i64,
        kind: RecordKind,
        page_size: u32,
        bytes: &[u8],
    ) -> LogRecord {
        let pages: Vec<PageImage> = bytes
            .chunks(page_size as usize)
            .zip(1u32..)
            .map(|(data, page)| PageImage {
                page,
                data: data.to_vec(),
            })
            .collect();
        LogRecord {
            object: object.clone(),
            seq: head.seq + 1,
            prev: head.checksum,
            kind,
            time_ms,
            page_size,
            db_pages: u32::try_from(pages.len()).unwrap_or(u32::MAX),
            pages,
            alarm: AlarmChange::Unchanged,
            wal: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AlarmChange, Checksum, ObjectName, PageImage, RecordKind};

    fn record(seq: u64, db_pages: u32, pages: &[(u32, u8)]) -> LogRecord {
        LogRecord {
            object: ObjectName {
                class: "C".into(),
                id: [0; 32],
            },
            seq,
            prev: Checksum::GENESIS,
            kind: RecordKind::Commit,
            time_ms: 0,
            page_size: 512,
            db_pages,
            pages: pages
                .iter()
                .map(|(page, fill)| PageImage {
                    page: *page,
                    data: vec![*fill; 512],
                })
                .collect(),
            alarm: AlarmChange::Unchanged,
            wal: None,
        }
    }

    #[test]
    fn pages_land_in_place_and_the_size_follows_db_pages() {
        let mut image = DatabaseImage::new();
        image.apply(&record(1, 2, &[(1, 1), (2, 2)])).unwrap();
        image.apply(&record(2, 3, &[(3, 3)])).unwrap();
        assert_eq!(image.bytes().len(), 3 * 512);
        assert_eq!(image.bytes()[512], 2);
        assert_eq!(image.bytes()[1024], 3);
        // A record that shrinks the database cuts it.
        image.apply(&record(3, 1, &[(1, 9)])).unwrap();
        assert_eq!(image.bytes(), &[9u8; 512][..]);
    }

    #[test]
    fn a_record_that_does_not_fit_is_refused_and_changes_nothing() {
        let mut image = DatabaseImage::new();
        image.apply(&record(1, 1, &[(1, 1)])).unwrap();
        let before = image.clone();
        assert!(matches!(
            image.apply(&record(2, 1, &[(2, 5)])),
            Err(ImageError::BadPage { page: 2, .. })
        ));
        let mut other_size = record(2, 1, &[]);
        other_size.page_size = 1024;
        assert!(matches!(
            image.apply(&other_size),
            Err(ImageError::PageSize { .. })
        ));
        let mut short = record(2, 1, &[(1, 1)]);
        short.pages[0].data.pop();
        assert!(image.apply(&short).is_err());
        assert_eq!(image, before);
    }
}
