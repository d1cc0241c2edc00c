//! [`Bookmark`]: a point of one object's history, as a string that sorts in commit order
//! (what `Storage::get_current_bookmark` returns and point-in-time recovery takes).
//!
//! The text is the record's number and checksum in fixed-width hex, `0000000000000007-
//! 3f2a...`: numbers first, so bookmarks of one object sort as its commits do; the checksum
//! names the record itself, so a bookmark of another history (another object, a log that
//! was replaced) is refused instead of restoring something else.

use std::fmt;
use std::str::FromStr;

use crate::chain::Head;
use crate::record::Checksum;

/// A point of one object's history: its record number and that record's checksum.
///
/// ```
/// use durable_log::{Bookmark, Checksum};
///
/// let a = Bookmark::new(9, Checksum(0xabc));
/// let b = Bookmark::new(10, Checksum(0x1));
/// assert!(a.to_string() < b.to_string(), "bookmarks sort in commit order");
/// assert_eq!(a.to_string().parse::<Bookmark>().unwrap(), a);
/// assert!("yesterday".parse::<Bookmark>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bookmark {
    /// The record's number (0: before the object's first record).
    pub seq: u64,
    /// The record's checksum.
    pub checksum: Checksum,
}

impl Bookmark {
    /// The bookmark of record `seq` with `checksum`.
    pub fn new(seq: u64, checksum: Checksum) -> Self {
        Self { seq, checksum }
    }

    /// The bookmark of a chain's head.
    pub fn of_head(head: Head) -> Self {
        Self::new(head.seq, head.checksum)
    }
}

impl fmt::Display for Bookmark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{:016x}", self.seq, self.checksum.0)
    }
}

/// Text that is not a bookmark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a bookmark: a bookmark is 16 hex digits, '-', 16 hex digits, as get_current_bookmark() returns"
)]
pub struct BookmarkError(pub String);

impl FromStr for Bookmark {
    type Err = BookmarkError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BookmarkError(text.chars().take(80).collect());
        let (seq, sum) = text.split_once('-').ok_or_else(bad)?;
        let hex16 = |part: &str| {
            (part.len() == 16 && part.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u64::from_str_radix(part, 16).ok())
                .flatten()
        };
        let (seq, sum) = (hex16(seq).ok_or_else(bad)?, hex16(sum).ok_or_else(bad)?);
        Ok(Self::new(seq, Checksum(sum)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmarks_round_trip_and_sort_by_number() {
        let marks: Vec<Bookmark> = [(1, u64::MAX), (2, 0), (255, 7), (256, 1), (u64::MAX, 3)]
            .into_iter()
            .map(|(seq, sum)| Bookmark::new(seq, Checksum(sum)))
            .collect();
        let texts: Vec<String> = marks.iter().map(ToString::to_string).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, texts);
        for (mark, text) in marks.iter().zip(&texts) {
            assert_eq!(&text.parse::<Bookmark>().unwrap(), mark);
            assert_eq!(&text.to_uppercase().parse::<Bookmark>().unwrap(), mark);
        }
        for bad in [
            "",
            "-",
            "1-2",
            "000000000000000g-0000000000000000",
            "0000000000000001-00000000000000001",
            "0000000000000001_0000000000000000",
            "+000000000000001-0000000000000000",
        ] {
            assert!(bad.parse::<Bookmark>().is_err(), "{bad:?}");
        }
    }
}
