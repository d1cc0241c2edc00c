//! The free space of the data folder's disk: whether it is full, and the reserve file that
//! lets deletes run when it is.
//!
//! A full disk must not stop an operator (or the objects themselves) from freeing space, yet
//! in WAL mode a `DELETE` writes pages too. So the node keeps `<data>/RESERVE`, a file of
//! [`DiskSpace::reserve_bytes`] allocated bytes, and watches the free space:
//!
//! * when the free space drops below four times the reserve's size, space is *low*:
//!   [`DiskSpace::episodes`] changes, and the runtime copies every WAL it can into its
//!   database and truncates it (a checkpoint needs room for the database to grow, which is
//!   why this happens before the disk is full, not after);
//! * when a write fails for lack of space, or the free space drops below the reserve's size,
//!   the disk is *full*: the reserve is deleted (its space is what deletes use), and writes
//!   that add rows, and new databases, are refused with
//!   [`SqlError::DiskFull`](crate::SqlError::DiskFull) before they touch SQLite;
//! * when [`DiskSpace::poll`] finds three reserves' worth of space free again, the reserve is
//!   allocated anew and writes resume by themselves.
//!
//! The decision is a plain function of the free space ([`next_state`]), unit-tested as such;
//! the rest is the file and `statvfs`.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::layout::DataLayout;

/// The least free space below which the disk counts as full, whatever the reserve's size.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// What the free space says the state should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceState {
    /// Writes are accepted.
    Available,
    /// Writes are accepted; WALs are truncated to give space back.
    Low,
    /// Writes that add rows are refused; deletes run on the reserve's space.
    Full,
}

/// The state after one look at the free space, for a low-water mark of `low` bytes: full
/// below `low` (and until three times `low` is free again, so recreating the reserve does not
/// make it full at once), low below four times `low`, else available.
pub fn next_state(current: SpaceState, available: u64, low: u64) -> SpaceState {
    if current == SpaceState::Full && available < low.saturating_mul(3) {
        return SpaceState::Full;
    }
    if available < low {
        SpaceState::Full
    } else if available < low.saturating_mul(4) {
        SpaceState::Low
    } else {
        SpaceState::Available
    }
}

/// The data folder's disk space, shared by every database of the node.
#[derive(Debug)]
pub struct DiskSpace {
    root: PathBuf,
    reserve: PathBuf,
    reserve_bytes: u64,
    full: AtomicBool,
    low: AtomicBool,
    episodes: AtomicU64,
}

impl DiskSpace {
    /// Watches the disk of `layout`'s folder, keeping a reserve of `reserve_bytes` (0: none).
    /// Touches nothing until [`start`](Self::start).
    pub fn new(layout: &DataLayout, reserve_bytes: u64) -> Self {
        Self {
            root: layout.root().to_path_buf(),
            reserve: layout.reserve_file(),
            reserve_bytes,
            full: AtomicBool::new(false),
            low: AtomicBool::new(false),
            episodes: AtomicU64::new(0),
        }
    }

    /// Allocates the reserve if it is missing; if there is no room for it, the disk starts
    /// out full.
    pub fn start(&self) {
        if self.reserve_bytes == 0 || self.reserve.exists() {
            return;
        }
        if let Err(err) = allocate(&self.reserve, self.reserve_bytes) {
            tracing::error!(path = %self.reserve.display(), error = %err, "the disk reserve could not be allocated; the disk counts as full");
            self.enter_full("the disk reserve could not be allocated");
        }
    }

    /// The size of the reserve.
    pub fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes
    }

    /// Free space below which the disk counts as full.
    pub fn low_water(&self) -> u64 {
        self.reserve_bytes.max(MIN_FREE_BYTES)
    }

    /// True while the disk is full: writes that grow a database are refused.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// How many times space ran low; a change asks for WALs to be truncated.
    pub fn episodes(&self) -> u64 {
        self.episodes.load(Ordering::SeqCst)
    }

    /// Bytes an unprivileged writer may still use on the data folder's disk.
    pub fn available(&self) -> io::Result<u64> {
        available(&self.root)
    }

    /// After a write failed with "full" or an I/O error: true (and the disk becomes full) if
    /// the failure was the disk running out of space.
    pub fn on_write_failure(&self) -> bool {
        if self.is_full() {
            return true;
        }
        match self.available() {
            Ok(free) if free < self.low_water() => {
                self.enter_full("a write failed for lack of space");
                true
            }
            _ => false,
        }
    }

    /// Looks at the free space: asks for WALs to be truncated when it runs low, becomes full
    /// below the low-water mark, available again (with the reserve allocated anew) once
    /// there is room. Returns the state after the look.
    pub fn poll(&self) -> SpaceState {
        let Ok(free) = self.available() else {
            return self.state();
        };
        let current = self.state();
        let next = next_state(current, free, self.low_water());
        if next == SpaceState::Full {
            self.enter_full("free space ran low");
            return SpaceState::Full;
        }
        if current == SpaceState::Full {
            if self.reserve_bytes > 0
                && let Err(err) = allocate(&self.reserve, self.reserve_bytes)
            {
                tracing::warn!(path = %self.reserve.display(), error = %err, "the disk reserve could not be allocated again; writes stay refused");
                return SpaceState::Full;
            }
            self.full.store(false, Ordering::SeqCst);
            tracing::info!(
                available_bytes = free,
                "disk space is available again; writes resume"
            );
        }
        let low = next == SpaceState::Low;
        if low && !self.low.swap(true, Ordering::SeqCst) {
            self.episodes.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(
                available_bytes = free,
                "disk space is running low: truncating the WALs of open objects"
            );
        } else if !low {
            self.low.store(false, Ordering::SeqCst);
        }
        next
    }

    /// The state as last decided.
    pub fn state(&self) -> SpaceState {
        if self.is_full() {
            SpaceState::Full
        } else if self.low.load(Ordering::SeqCst) {
            SpaceState::Low
        } else {
            SpaceState::Available
        }
    }

    /// Marks the disk full and releases the reserve for deletes.
    pub fn enter_full(&self, why: &str) {
        if self.full.swap(true, Ordering::SeqCst) {
            return;
        }
        self.low.store(true, Ordering::SeqCst);
        match fs::remove_file(&self.reserve) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(path = %self.reserve.display(), error = %err, "the disk reserve could not be released");
            }
        }
        let free = self.available().unwrap_or(0);
        tracing::error!(
            reason = why,
            available_bytes = free,
            reserve_bytes = self.reserve_bytes,
            "disk full: writes are refused, reads and deletes still work; free space on the data folder's disk and writes resume by themselves"
        );
    }
}

/// Free bytes for unprivileged writers on the filesystem holding `path`.
pub fn available(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Writes a file of `bytes` allocated bytes at `path` (through a temporary file and a
/// rename, so a crash leaves no half reserve behind).
fn allocate(path: &Path, bytes: u64) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let file = File::create(&tmp)?;
        // Allocated, not sparse: the point is that the blocks are taken now.
        if rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, bytes).is_err() {
            write_zeros(&file, bytes)?;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_zeros(mut file: &File, bytes: u64) -> io::Result<()> {
    use std::io::Write;
    let chunk = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_below_low_water_low_below_four_times_it_available_again_at_three_times() {
        use SpaceState::{Available, Full, Low};
        let cases = [
            (Available, 20, 5, Available),
            (Available, 19, 5, Low),
            (Low, 5, 5, Low),
            (Low, 4, 5, Full),
            (Available, 4, 5, Full),
            (Full, 4, 5, Full),
            (Full, 14, 5, Full),
            (Full, 15, 5, Low),
            (Full, 20, 5, Available),
            (Low, 20, 5, Available),
            (Available, 0, 0, Available),
        ];
        for (current, free, low, expected) in cases {
            assert_eq!(
                next_state(current, free, low),
                expected,
                "{current:?} {free} {low}"
            );
        }
    }

    #[test]
    fn the_reserve_is_allocated_released_and_allocated_again() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        let space = DiskSpace::new(&layout, 256 * 1024);
        space.start();
        assert_eq!(
            fs::metadata(layout.reserve_file()).unwrap().len(),
            256 * 1024
        );
        assert!(!space.is_full());
        space.enter_full("test");
        assert!(space.is_full());
        assert_eq!(space.state(), SpaceState::Full);
        assert!(!layout.reserve_file().exists());
        // This disk has room: the next look makes writes possible again.
        assert_ne!(space.poll(), SpaceState::Full);
        assert!(layout.reserve_file().exists());
        assert!(
            !space.on_write_failure(),
            "a failure with room is not a full disk"
        );
    }
}
