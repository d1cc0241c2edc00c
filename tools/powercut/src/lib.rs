//! A filesystem that forgets what was not synced, for power-loss tests.
//!
//! [`PowerCut::mount`] mounts a FUSE filesystem held in memory in two layers ([`model`]):
//! what programs see, and what a disk would hold because it was synced (`fsync`,
//! `fdatasync` of a file; `fsync` of a directory for its names). [`PowerCut::cut_power`]
//! throws away everything that was not synced, as a machine losing power does: after it, the
//! mount shows exactly what a disk would. Every sync is counted, so a test can also assert
//! what a write cost ([`PowerCut::file_syncs_ending`]).
//!
//! ```no_run
//! let disk = durable_powercut::PowerCut::mount(std::path::Path::new("/tmp/mnt"))?;
//! std::fs::write(disk.path().join("a"), b"never synced")?;
//! disk.cut_power();
//! assert!(!disk.path().join("a").exists());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Rules of use: cut the power only while no process has files open on the mount (kill the
//! processes first, as the power would); the kernel is told to cache no names or attributes,
//! and reopening a file drops its cached pages, so what runs after the cut sees the disk.
//!
//! What it cannot see: `syncfs(2)` is not passed to FUSE servers by the kernel (it returns
//! success without asking), so a program that relies on `syncfs` for durability looks, here,
//! as if it never synced; `durable-storage` syncs WALs one by one on FUSE filesystems for
//! that reason. Mounting needs root (the tests run as root, as `.ci/run` does).

pub mod model;

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};

use crate::model::{Attr, Kind, Model};

/// Nothing is cached by the kernel: after a power cut, every lookup asks again.
const TTL: Duration = Duration::ZERO;

/// A mounted power-cut filesystem; unmounted on drop.
pub struct PowerCut {
    path: PathBuf,
    model: Arc<Mutex<Model>>,
    session: Option<fuser::BackgroundSession>,
}

impl std::fmt::Debug for PowerCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerCut")
            .field("path", &self.path)
            .finish()
    }
}

impl PowerCut {
    /// Mounts an empty power-cut filesystem on the (existing, empty) folder `path`.
    pub fn mount(path: &Path) -> io::Result<Self> {
        let model = Arc::new(Mutex::new(Model::default()));
        let fs = Fs {
            model: Arc::clone(&model),
        };
        let options = [
            MountOption::FSName("durable-powercut".to_owned()),
            MountOption::RW,
        ];
        let session = fuser::spawn_mount2(fs, path, &options)?;
        Ok(Self {
            path: path.to_path_buf(),
            model,
            session: Some(session),
        })
    }

    /// [`mount`](Self::mount) for a test: `None` (after saying why on stderr) where mounting
    /// is not possible (not root, no `/dev/fuse`), unless the environment variable `CI` is
    /// set, where that is a failure: CI must run the power-loss tests.
    pub fn mount_for_test(path: &Path) -> Option<Self> {
        match Self::mount(path) {
            Ok(disk) => Some(disk),
            Err(err) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "mounting the power-cut filesystem failed: {err}"
                );
                eprintln!("skipped: mounting needs root and /dev/fuse ({err})");
                None
            }
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The power goes: everything not synced is forgotten.
    pub fn cut_power(&self) {
        self.model().cut_power();
    }

    /// Syncs of the node at `path`, relative to the mount point.
    pub fn syncs_at(&self, path: &str) -> Option<u64> {
        self.model().syncs_at(path)
    }

    /// Syncs of every file whose name ends with `suffix` (`"-wal"`), added up.
    pub fn file_syncs_ending(&self, suffix: &str) -> u64 {
        self.model().file_syncs_ending(suffix)
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            session.join();
        }
    }
}

/// The FUSE side: each request is one call on the model.
struct Fs {
    model: Arc<Mutex<Model>>,
}

fn file_attr(attr: Attr) -> FileAttr {
    let (kind, nlink) = match attr.kind {
        Kind::File => (FileType::RegularFile, 1),
        Kind::Dir => (FileType::Directory, 2),
    };
    FileAttr {
        ino: attr.ino,
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm: u16::try_from(attr.mode & 0o7777).unwrap_or(0o644),
        nlink,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Fs {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, made: Result<u64, i32>, reply: ReplyEntry) {
        let model = self.model();
        match made.and_then(|ino| model.attr(ino)) {
            Ok(attr) => reply.entry(&TTL, &file_attr(attr), 0),
            Err(errno) => reply.error(errno),
        }
    }
}

fn done(result: Result<(), i32>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(errno) => reply.error(errno),
    }
}

impl Filesystem for Fs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let found = self.model().lookup(parent, name);
        self.entry(found, reply);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.model().attr(ino) {
            Ok(attr) => reply.attr(&TTL, &file_attr(attr)),
            Err(errno) => reply.error(errno),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let mut model = self.model();
        let changed = (|| {
            if let Some(size) = size {
                model.set_size(ino, size)?;
            }
            if let Some(mode) = mode {
                model.set_mode(ino, mode)?;
            }
            model.attr(ino)
        })();
        match changed {
            Ok(attr) => reply.attr(&TTL, &file_attr(attr)),
            Err(errno) => reply.error(errno),
        }
    }

    fn mknod(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(libc::EPERM);
            return;
        }
        let made = self.model().create(parent, name, Kind::File, mode);
        self.entry(made, reply);
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let made = self.model().create(parent, name, Kind::Dir, mode);
        self.entry(made, reply);
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        done(self.model().remove(parent, name, false), reply);
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        done(self.model().remove(parent, name, true), reply);
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        if flags != 0 {
            // RENAME_EXCHANGE, RENAME_NOREPLACE: nothing here uses them.
            reply.error(libc::EINVAL);
            return;
        }
        done(
            self.model().rename(parent, name, new_parent, new_name),
            reply,
        );
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let model = self.model();
        let offset = u64::try_from(offset).unwrap_or(0);
        match model.read(ino, offset, size as usize) {
            Ok(data) => reply.data(data),
            Err(errno) => reply.error(errno),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let offset = u64::try_from(offset).unwrap_or(0);
        match self.model().write(ino, offset, data) {
            Ok(written) => reply.written(u32::try_from(written).unwrap_or(u32::MAX)),
            Err(errno) => reply.error(errno),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        done(self.model().sync(ino), reply);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.model().entries(ino) {
            Ok(entries) => entries,
            Err(errno) => {
                reply.error(errno);
                return;
            }
        };
        let mut all = vec![
            (OsStr::new(".").to_owned(), ino, Kind::Dir),
            (OsStr::new("..").to_owned(), ino, Kind::Dir),
        ];
        all.extend(entries);
        let skip = usize::try_from(offset).unwrap_or(0);
        for (index, (name, child, kind)) in all.into_iter().enumerate().skip(skip) {
            let kind = match kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            if reply.add(
                child,
                i64::try_from(index + 1).unwrap_or(i64::MAX),
                kind,
                &name,
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        done(self.model().sync(ino), reply);
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        // Plenty of room: full-disk behaviour is tested elsewhere.
        let blocks = 1 << 24;
        reply.statfs(blocks, blocks, blocks, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&mut self, _req: &Request<'_>, _ino: u64, _mask: i32, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut model = self.model();
        match model
            .create(parent, name, Kind::File, mode)
            .and_then(|ino| model.attr(ino))
        {
            Ok(attr) => reply.created(&TTL, &file_attr(attr), 0, 0, 0),
            Err(errno) => reply.error(errno),
        }
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            reply.error(libc::EOPNOTSUPP);
            return;
        }
        let end = u64::try_from(offset.saturating_add(length)).unwrap_or(0);
        done(self.model().allocate(ino, end), reply);
    }

    fn open(&mut self, _req: &Request<'_>, _ino: u64, _flags: i32, reply: ReplyOpen) {
        reply.opened(0, 0);
    }
}
