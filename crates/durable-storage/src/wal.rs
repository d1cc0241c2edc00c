//! Reading back what a commit wrote: the WAL frames of each commit, checked, for the capture
//! point ([`CommitFrames`]).
//!
//! SQLite's WAL file is a 32-byte header followed by frames; a frame is a 24-byte header and
//! one page. A transaction appends the frames of the pages it changed, the last one marked as
//! a commit frame (it carries the database size in pages). Each frame carries the header's
//! two salts and a running checksum over everything before it, so a reader can tell a valid
//! frame of the current WAL generation from stale bytes (sqlite.org/fileformat2.html).
//!
//! The database's one connection tells us, through its WAL hook, how many frames the WAL
//! holds right after each commit; the reader keeps where the previous commit ended, so the
//! frames between the two are exactly this commit's. It checks them (salts, checksum chain,
//! a commit frame at the end) and refuses anything else: a mismatch means the WAL is not what
//! this connection wrote, and the object must stop rather than report the wrong change.
//!
//! When SQLite restarts the WAL (after a checkpoint copied every frame into the database, the
//! next writer starts again at the first frame with new salts), the reader notices the new
//! salts and starts again after the header.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoFailure, WalError};

const HEADER_BYTES: u64 = 32;
const FRAME_HEADER_BYTES: u64 = 24;
const MAGIC_LITTLE_ENDIAN: u32 = 0x377f_0682;
const FORMAT_VERSION: u32 = 3_007_000;

/// Where a commit ends in its object's WAL: enough for a log to match a local WAL later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalPosition {
    /// The WAL generation's salts (they change when SQLite restarts the WAL).
    pub salts: [u32; 2],
    /// The checkpoint sequence number in the WAL header.
    pub checkpoint_seq: u32,
    /// Frames in the WAL up to and including this commit's commit frame.
    pub frame_count: u32,
    /// The running checksum after the commit frame.
    pub checksum: [u32; 2],
}

/// One frame: a page number and the page's new content.
#[derive(Clone, PartialEq, Eq)]
pub struct WalFrame {
    /// The page number (1-based).
    pub page: u32,
    /// The page's content after the commit.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for WalFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalFrame")
            .field("page", &self.page)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// The WAL frames one commit wrote, in WAL order, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitFrames {
    /// The database's page size in bytes.
    pub page_size: u32,
    /// The size of the database after the commit, in pages.
    pub db_pages: u32,
    /// The frames, in the order SQLite wrote them (a page may appear more than once).
    pub frames: Vec<WalFrame>,
    /// Where the commit ends in the WAL.
    pub position: WalPosition,
}

impl CommitFrames {
    /// Each changed page once, with its final content, by page number. Writing these at
    /// `(page - 1) * page_size` into a copy of the database as it was before the commit, and
    /// cutting the copy to `db_pages` pages, gives the database after it.
    pub fn pages(&self) -> BTreeMap<u32, &[u8]> {
        self.frames
            .iter()
            .map(|frame| (frame.page, frame.data.as_slice()))
            .collect()
    }

    /// Bytes of page data the commit wrote.
    pub fn bytes(&self) -> usize {
        self.frames.iter().map(|frame| frame.data.len()).sum()
    }
}

/// The WAL header's fields that frames are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    big_endian: bool,
    page_size: u32,
    checkpoint_seq: u32,
    salts: [u32; 2],
    checksum: [u32; 2],
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// SQLite's WAL checksum: over 32-bit words (in the byte order the header's magic number
/// names), two running sums, continued from `seed`.
fn checksum(big_endian: bool, data: &[u8], seed: [u32; 2]) -> [u32; 2] {
    debug_assert!(
        data.len().is_multiple_of(8),
        "checksummed regions are multiples of 8 bytes"
    );
    let word = |bytes: &[u8]| {
        let bytes = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    };
    let [mut s0, mut s1] = seed;
    for pair in data.chunks_exact(8) {
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    [s0, s1]
}

fn parse_header(bytes: &[u8; HEADER_BYTES as usize]) -> Result<Header, &'static str> {
    let magic = be32(&bytes[0..4]);
    if magic & !1 != MAGIC_LITTLE_ENDIAN {
        return Err("wrong magic number");
    }
    if be32(&bytes[4..8]) != FORMAT_VERSION {
        return Err("unsupported format version");
    }
    let page_size = be32(&bytes[8..12]);
    if !page_size.is_power_of_two() || !(512..=65_536).contains(&page_size) {
        return Err("invalid page size");
    }
    let big_endian = magic & 1 == 1;
    let stored = [be32(&bytes[24..28]), be32(&bytes[28..32])];
    if checksum(big_endian, &bytes[..24], [0, 0]) != stored {
        return Err("header checksum mismatch");
    }
    Ok(Header {
        big_endian,
        page_size,
        checkpoint_seq: be32(&bytes[12..16]),
        salts: [be32(&bytes[16..20]), be32(&bytes[20..24])],
        checksum: stored,
    })
}

/// What [`cut_wal_after`] found in a WAL, and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalCut {
    /// The WAL holds exactly the commits up to the mark (or no valid frame at all, or no WAL
    /// file): nothing to do.
    Nothing,
    /// The WAL held `dropped` frames of commits after the mark; they were cut off.
    Cut {
        /// Frames cut off.
        dropped: u32,
    },
    /// The WAL holds fewer valid frames than the mark: commits the mark counts are missing
    /// from it (lost with an unsynced tail). Nothing was changed.
    Behind {
        /// Valid frames up to the WAL's last commit.
        has: u32,
        /// Frames the mark counts.
        marked: u32,
    },
    /// The WAL is of another generation than the mark's (its salts differ), holding `frames`
    /// valid frames. Nothing was changed.
    OtherGeneration {
        /// Valid frames up to its last commit.
        frames: u32,
    },
    /// The WAL has the mark's generation and enough frames, but its running checksum at the
    /// mark differs: another history. Nothing was changed.
    Diverged,
}

/// Cuts the WAL at `path` just after the commit that ended at `position` (its salts and
/// frame count), dropping the frames of later commits: what reopening an object must do when
/// those commits never reached its log. Call it before SQLite opens the database (SQLite
/// would replay them). The file is synced after a cut.
pub fn cut_wal_after(path: &Path, position: &WalPosition) -> Result<WalCut, WalError> {
    let mut reader = WalReader::open(path)?;
    let Some(cursor) = reader.cursor else {
        return Ok(WalCut::Nothing);
    };
    if cursor.header.salts != position.salts {
        return Ok(if cursor.frames == 0 {
            WalCut::Nothing
        } else {
            WalCut::OtherGeneration {
                frames: cursor.frames,
            }
        });
    }
    if cursor.frames < position.frame_count {
        return Ok(WalCut::Behind {
            has: cursor.frames,
            marked: position.frame_count,
        });
    }
    // The same history up to the mark: the running checksum there is the mark's.
    let mut running = cursor.header.checksum;
    for index in 0..position.frame_count {
        match reader.frame(&cursor.header, index, running)? {
            Some(frame) => running = frame.checksum,
            None => return Ok(WalCut::Diverged),
        }
    }
    if running != position.checksum {
        return Ok(WalCut::Diverged);
    }
    if cursor.frames == position.frame_count {
        return Ok(WalCut::Nothing);
    }
    let frame_bytes = FRAME_HEADER_BYTES + u64::from(cursor.header.page_size);
    let keep = HEADER_BYTES + u64::from(position.frame_count) * frame_bytes;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|err| reader.io(err))?;
    file.set_len(keep).map_err(|err| reader.io(err))?;
    file.sync_all().map_err(|err| reader.io(err))?;
    Ok(WalCut::Cut {
        dropped: cursor.frames - position.frame_count,
    })
}

/// The salts of the WAL at `path` (its generation), if it has a valid header.
pub fn wal_salts(path: &Path) -> Result<Option<[u32; 2]>, WalError> {
    Ok(WalReader::open(path)?
        .cursor
        .map(|cursor| cursor.header.salts))
}

/// Where the last commit read ended.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    header: Header,
    frames: u32,
    checksum: [u32; 2],
}

/// Reads the frames of each commit of one database, in order.
#[derive(Debug)]
pub(crate) struct WalReader {
    path: PathBuf,
    file: Option<Arc<File>>,
    cursor: Option<Cursor>,
}

/// A frame read and checked against the header and the running checksum.
struct ReadFrame {
    page: u32,
    db_pages: u32,
    data: Vec<u8>,
    checksum: [u32; 2],
}

impl WalReader {
    /// A reader for the WAL at `path`, positioned after the last valid commit already in it
    /// (a WAL left by a crash holds commits made before this connection opened).
    pub(crate) fn open(path: &Path) -> Result<Self, WalError> {
        match File::open(path) {
            Ok(file) => Self::open_on(path, Arc::new(file)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                path: path.to_path_buf(),
                file: None,
                cursor: None,
            }),
            Err(err) => Err(WalError::Io {
                path: path.to_path_buf(),
                source: IoFailure::new(err),
            }),
        }
    }

    /// [`open`](Self::open), reading through `file`, a descriptor of the WAL at `path`
    /// (the durability worker's: no second descriptor per database).
    pub(crate) fn open_on(path: &Path, file: Arc<File>) -> Result<Self, WalError> {
        let mut reader = Self {
            path: path.to_path_buf(),
            file: Some(file),
            cursor: None,
        };
        if let Some(header) = reader.header()? {
            let mut cursor = Cursor {
                header,
                frames: 0,
                checksum: header.checksum,
            };
            let mut scanned = cursor;
            while let Some(frame) = reader.frame(&header, scanned.frames, scanned.checksum)? {
                scanned.frames += 1;
                scanned.checksum = frame.checksum;
                if frame.db_pages != 0 {
                    cursor = scanned;
                }
            }
            reader.cursor = Some(cursor);
        }
        Ok(reader)
    }

    fn io(&self, err: std::io::Error) -> WalError {
        WalError::Io {
            path: self.path.clone(),
            source: IoFailure::new(err),
        }
    }

    fn file(&mut self) -> Result<&File, WalError> {
        if self.file.is_none() {
            let file = File::open(&self.path).map_err(|err| self.io(err))?;
            self.file = Some(Arc::new(file));
        }
        Ok(self.file.as_deref().expect("opened above"))
    }

    /// Reads `buf.len()` bytes at `offset`; false if the file ends first.
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> Result<bool, WalError> {
        match self.file()?.read_exact_at(buf, offset) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(err) => Err(self.io(err)),
        }
    }

    /// The current header, or `None` if the file holds no valid one (yet).
    fn header(&mut self) -> Result<Option<Header>, WalError> {
        let mut bytes = [0u8; HEADER_BYTES as usize];
        if !self.read_exact_at(&mut bytes, 0)? {
            return Ok(None);
        }
        Ok(parse_header(&bytes).ok())
    }

    /// Frame number `index` (0-based) if it is valid for `header` and continues `checksum`.
    fn frame(
        &mut self,
        header: &Header,
        index: u32,
        checksum_before: [u32; 2],
    ) -> Result<Option<ReadFrame>, WalError> {
        let page_size = u64::from(header.page_size);
        let offset = HEADER_BYTES + u64::from(index) * (FRAME_HEADER_BYTES + page_size);
        let mut bytes = vec![0u8; (FRAME_HEADER_BYTES + page_size) as usize];
        if !self.read_exact_at(&mut bytes, offset)? {
            return Ok(None);
        }
        let (head, data) = bytes.split_at(FRAME_HEADER_BYTES as usize);
        let page = be32(&head[0..4]);
        let salts = [be32(&head[8..12]), be32(&head[12..16])];
        if page == 0 || salts != header.salts {
            return Ok(None);
        }
        let sum = checksum(
            header.big_endian,
            data,
            checksum(header.big_endian, &head[..8], checksum_before),
        );
        if sum != [be32(&head[16..20]), be32(&head[20..24])] {
            return Ok(None);
        }
        let db_pages = be32(&head[4..8]);
        bytes.drain(..FRAME_HEADER_BYTES as usize);
        Ok(Some(ReadFrame {
            page,
            db_pages,
            data: bytes,
            checksum: sum,
        }))
    }

    /// The frames of the commit that just ended with `wal_frames` frames in the WAL.
    pub(crate) fn read_commit(&mut self, wal_frames: u32) -> Result<CommitFrames, WalError> {
        let Some(header) = self.header()? else {
            return Err(WalError::BadHeader {
                path: self.path.clone(),
                reason: "no valid header after a commit",
            });
        };
        let start = match self.cursor {
            Some(cursor) if cursor.header == header => cursor,
            // A new WAL generation: the commit's frames start after the header.
            _ => Cursor {
                header,
                frames: 0,
                checksum: header.checksum,
            },
        };
        let path = self.path.clone();
        let offset = HEADER_BYTES
            + u64::from(start.frames) * (FRAME_HEADER_BYTES + u64::from(header.page_size));
        let no_commit = move || WalError::NoCommit {
            path: path.clone(),
            offset,
        };
        if wal_frames <= start.frames {
            return Err(no_commit());
        }
        let mut frames = Vec::with_capacity((wal_frames - start.frames) as usize);
        let mut checksum = start.checksum;
        let mut db_pages = 0;
        for index in start.frames..wal_frames {
            let Some(frame) = self.frame(&header, index, checksum)? else {
                return Err(no_commit());
            };
            // The last frame of a transaction is its commit frame, and no commit frame comes
            // before it: anything else is not one commit of this connection.
            let last = index + 1 == wal_frames;
            if last != (frame.db_pages != 0) {
                return Err(no_commit());
            }
            checksum = frame.checksum;
            db_pages = frame.db_pages;
            frames.push(WalFrame {
                page: frame.page,
                data: frame.data,
            });
        }
        self.cursor = Some(Cursor {
            header,
            frames: wal_frames,
            checksum,
        });
        Ok(CommitFrames {
            page_size: header.page_size,
            db_pages,
            frames,
            position: WalPosition {
                salts: header.salts,
                checkpoint_seq: header.checkpoint_seq,
                frame_count: wal_frames,
                checksum,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_follows_sqlites_definition() {
        // Two words per step: s0 += x0 + s1; s1 += x1 + s0 (wrapping).
        let data = [1u8, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0];
        // s0 = 1, s1 = 2 + 1 = 3; then s0 = 1 + 3 + 3 = 7, s1 = 3 + 4 + 7 = 14.
        assert_eq!(checksum(false, &data, [0, 0]), [7, 14]);
        let be = [0u8, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(checksum(true, &be, [0, 0]), [1, 3]);
        assert_eq!(checksum(false, &[0xff; 8], [1, 1]), {
            let s0 = 1u32.wrapping_add(u32::MAX).wrapping_add(1);
            [s0, 1u32.wrapping_add(u32::MAX).wrapping_add(s0)]
        });
    }

    #[test]
    fn headers_are_checked() {
        let mut bytes = [0u8; 32];
        bytes[0..4].copy_from_slice(&MAGIC_LITTLE_ENDIAN.to_be_bytes());
        bytes[4..8].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        bytes[8..12].copy_from_slice(&4096u32.to_be_bytes());
        bytes[16..20].copy_from_slice(&7u32.to_be_bytes());
        let sum = checksum(false, &bytes[..24], [0, 0]);
        bytes[24..28].copy_from_slice(&sum[0].to_be_bytes());
        bytes[28..32].copy_from_slice(&sum[1].to_be_bytes());
        let header = parse_header(&bytes).unwrap();
        assert_eq!((header.page_size, header.salts), (4096, [7, 0]));

        let cases: [(usize, u8, &str); 3] = [
            (0, 0x11, "wrong magic number"),
            (7, 0x01, "unsupported format version"),
            (20, 0x01, "header checksum mismatch"),
        ];
        for (at, xor, expected) in cases {
            let mut broken = bytes;
            broken[at] ^= xor;
            assert_eq!(parse_header(&broken), Err(expected), "byte {at}");
        }
    }
}
