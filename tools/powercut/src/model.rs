//! The filesystem as two layers: what programs see (the page cache) and what a disk holds
//! (what was synced). A plain value with no FUSE, no I/O and no clock, unit-tested as such.
//!
//! The rules are POSIX's, read strictly (as LazyFS and SQLite's crash-test VFS read them):
//!
//! * writing, truncating or allocating a file changes only the cached layer;
//! * `fsync`/`fdatasync` of a file makes its cached content its disk content;
//! * creating, removing and renaming names change only the cached layer of the directories;
//! * `fsync` of a directory makes its cached names its disk names (a file or directory whose
//!   name reaches the disk this way exists there, empty, until it is synced itself);
//! * a power cut makes the disk layer the cached layer and forgets everything else: a file
//!   whose name never reached the disk is gone, a rename whose directory was not synced is
//!   undone, unsynced writes are lost.
//!
//! Every sync is counted per node, so a test can also assert what a write cost.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};

/// The root directory's node number (FUSE's).
pub const ROOT: u64 = 1;

/// An error, as the `errno` FUSE answers with.
pub type Errno = i32;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    File(Vec<u8>),
    Dir(BTreeMap<OsString, u64>),
}

impl Content {
    fn empty(kind: Kind) -> Self {
        match kind {
            Kind::File => Content::File(Vec::new()),
            Kind::Dir => Content::Dir(BTreeMap::new()),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Content::File(_) => Kind::File,
            Content::Dir(_) => Kind::Dir,
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    /// The name it was created or last renamed with (for the sync counts).
    name: OsString,
    mode: u32,
    cached: Content,
    disk: Option<Content>,
    syncs: u64,
}

/// A node's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Its number.
    pub ino: u64,
    /// File or directory.
    pub kind: Kind,
    /// Size in bytes (entries, for a directory).
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
}

/// The two-layer filesystem.
#[derive(Debug, Clone)]
pub struct Model {
    nodes: HashMap<u64, Node>,
    next: u64,
    cuts: u64,
    /// Syncs of files, by the file's name, over the model's whole life (a file removed or
    /// lost in a power cut keeps its count).
    file_syncs: HashMap<OsString, u64>,
}

impl Default for Model {
    fn default() -> Self {
        let root = Node {
            name: OsString::new(),
            mode: 0o755,
            cached: Content::empty(Kind::Dir),
            disk: Some(Content::empty(Kind::Dir)),
            syncs: 0,
        };
        Self {
            nodes: HashMap::from([(ROOT, root)]),
            next: ROOT + 1,
            cuts: 0,
            file_syncs: HashMap::new(),
        }
    }
}

impl Model {
    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn children(&self, dir: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.node(dir)?.cached {
            Content::Dir(children) => Ok(children),
            Content::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn children_mut(&mut self, dir: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match &mut self.node_mut(dir)?.cached {
            Content::Dir(children) => Ok(children),
            Content::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn data(&self, ino: u64) -> Result<&Vec<u8>, Errno> {
        match &self.node(ino)?.cached {
            Content::File(data) => Ok(data),
            Content::Dir(_) => Err(libc::EISDIR),
        }
    }

    fn data_mut(&mut self, ino: u64) -> Result<&mut Vec<u8>, Errno> {
        match &mut self.node_mut(ino)?.cached {
            Content::File(data) => Ok(data),
            Content::Dir(_) => Err(libc::EISDIR),
        }
    }

    /// The node called `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.children(parent)?
            .get(name)
            .copied()
            .ok_or(libc::ENOENT)
    }

    /// The attributes of `ino`.
    pub fn attr(&self, ino: u64) -> Result<Attr, Errno> {
        let node = self.node(ino)?;
        let size = match &node.cached {
            Content::File(data) => data.len() as u64,
            Content::Dir(children) => children.len() as u64,
        };
        Ok(Attr {
            ino,
            kind: node.cached.kind(),
            size,
            mode: node.mode,
        })
    }

    /// Creates `name` in `parent`.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        kind: Kind,
        mode: u32,
    ) -> Result<u64, Errno> {
        if self.children(parent)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                name: name.to_owned(),
                mode: mode & 0o7777,
                cached: Content::empty(kind),
                disk: None,
                syncs: 0,
            },
        );
        self.children_mut(parent)?.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// Removes the name `name` of a file (`dir` false) or an empty directory (`dir` true).
    pub fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (&self.node(ino)?.cached, dir) {
            (Content::File(_), true) => return Err(libc::ENOTDIR),
            (Content::Dir(_), false) => return Err(libc::EISDIR),
            (Content::Dir(children), true) if !children.is_empty() => {
                return Err(libc::ENOTEMPTY);
            }
            _ => {}
        }
        self.children_mut(parent)?.remove(name);
        Ok(())
    }

    /// Renames `name` in `parent` to `new_name` in `new_parent`, replacing a file or an
    /// empty directory there.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
    ) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        let kind = self.node(ino)?.cached.kind();
        if let Ok(existing) = self.lookup(new_parent, new_name) {
            if existing == ino {
                return Ok(());
            }
            match (&self.node(existing)?.cached, kind) {
                (Content::Dir(children), Kind::Dir) if !children.is_empty() => {
                    return Err(libc::ENOTEMPTY);
                }
                (Content::Dir(_), Kind::File) => return Err(libc::EISDIR),
                (Content::File(_), Kind::Dir) => return Err(libc::ENOTDIR),
                _ => {}
            }
        }
        self.children(new_parent)?;
        self.children_mut(parent)?.remove(name);
        self.children_mut(new_parent)?
            .insert(new_name.to_owned(), ino);
        self.node_mut(ino)?.name = new_name.to_owned();
        Ok(())
    }

    /// Up to `size` bytes of `ino` from `offset`.
    pub fn read(&self, ino: u64, offset: u64, size: usize) -> Result<&[u8], Errno> {
        let data = self.data(ino)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = start.saturating_add(size).min(data.len());
        Ok(&data[start..end])
    }

    /// Writes `bytes` at `offset` (into the cache only).
    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<usize, Errno> {
        let data = self.data_mut(ino)?;
        let start = usize::try_from(offset).map_err(|_| libc::EFBIG)?;
        let end = start.checked_add(bytes.len()).ok_or(libc::EFBIG)?;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(bytes);
        Ok(bytes.len())
    }

    /// Sets the size of `ino` (into the cache only).
    pub fn set_size(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        let size = usize::try_from(size).map_err(|_| libc::EFBIG)?;
        self.data_mut(ino)?.resize(size, 0);
        Ok(())
    }

    /// Makes sure `ino` is at least `end` bytes long (`fallocate`).
    pub fn allocate(&mut self, ino: u64, end: u64) -> Result<(), Errno> {
        let end = usize::try_from(end).map_err(|_| libc::EFBIG)?;
        let data = self.data_mut(ino)?;
        if data.len() < end {
            data.resize(end, 0);
        }
        Ok(())
    }

    /// Sets the permission bits of `ino`.
    pub fn set_mode(&mut self, ino: u64, mode: u32) -> Result<(), Errno> {
        self.node_mut(ino)?.mode = mode & 0o7777;
        Ok(())
    }

    /// `fsync` of `ino`: a file's content, or a directory's names, reach the disk.
    pub fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        node.syncs += 1;
        node.disk = Some(node.cached.clone());
        if node.cached.kind() == Kind::File {
            let name = node.name.clone();
            *self.file_syncs.entry(name).or_default() += 1;
        }
        let node = self.node_mut(ino)?;
        if let Content::Dir(children) = &node.cached {
            // A name on disk means its node exists on disk, empty until synced itself.
            let children: Vec<u64> = children.values().copied().collect();
            for child in children {
                let child = self.node_mut(child)?;
                if child.disk.is_none() {
                    child.disk = Some(Content::empty(child.cached.kind()));
                }
            }
        }
        Ok(())
    }

    /// `syncfs`: everything reaches the disk.
    pub fn sync_all(&mut self) {
        for node in self.nodes.values_mut() {
            node.disk = Some(node.cached.clone());
        }
    }

    /// The power goes: the disk layer becomes what programs see, and what was not synced is
    /// forgotten.
    pub fn cut_power(&mut self) {
        self.cuts += 1;
        self.nodes.retain(|_, node| node.disk.is_some());
        for node in self.nodes.values_mut() {
            if let Some(disk) = &node.disk {
                node.cached = disk.clone();
            }
        }
        // Only what the disk's names reach survives.
        let mut reachable = HashSet::from([ROOT]);
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if let Some(Node {
                cached: Content::Dir(children),
                ..
            }) = self.nodes.get(&ino)
            {
                for child in children.values() {
                    if self.nodes.contains_key(child) && reachable.insert(*child) {
                        stack.push(*child);
                    }
                }
            }
        }
        self.nodes.retain(|ino, _| reachable.contains(ino));
        let live: HashSet<u64> = self.nodes.keys().copied().collect();
        for node in self.nodes.values_mut() {
            if let Content::Dir(children) = &mut node.cached {
                children.retain(|_, child| live.contains(child));
            }
        }
    }

    /// How many power cuts there were.
    pub fn cuts(&self) -> u64 {
        self.cuts
    }

    /// The names in directory `dir`, with their nodes and kinds.
    pub fn entries(&self, dir: u64) -> Result<Vec<(OsString, u64, Kind)>, Errno> {
        Ok(self
            .children(dir)?
            .iter()
            .filter_map(|(name, ino)| {
                let kind = self.nodes.get(ino)?.cached.kind();
                Some((name.clone(), *ino, kind))
            })
            .collect())
    }

    /// Syncs of the node at `path` (names separated by `/`, relative to the root), if it
    /// exists.
    pub fn syncs_at(&self, path: &str) -> Option<u64> {
        let mut ino = ROOT;
        for name in path.split('/').filter(|name| !name.is_empty()) {
            ino = self.lookup(ino, OsStr::new(name)).ok()?;
        }
        self.nodes.get(&ino).map(|node| node.syncs)
    }

    /// Syncs of every file (not directory) whose name ends with `suffix`, added up over the
    /// model's life: files since removed, or lost in a power cut, count too.
    pub fn file_syncs_ending(&self, suffix: &str) -> u64 {
        self.file_syncs
            .iter()
            .filter(|(name, _)| name.to_string_lossy().ends_with(suffix))
            .map(|(_, count)| count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> &OsStr {
        OsStr::new(text)
    }

    #[test]
    fn unsynced_writes_are_lost_synced_ones_stay() {
        let mut fs = Model::default();
        let file = fs.create(ROOT, name("a"), Kind::File, 0o644).unwrap();
        fs.sync(ROOT).unwrap();
        fs.write(file, 0, b"kept").unwrap();
        fs.sync(file).unwrap();
        fs.write(file, 4, b" lost").unwrap();
        assert_eq!(fs.read(file, 0, 100).unwrap(), b"kept lost");
        fs.cut_power();
        assert_eq!(fs.lookup(ROOT, name("a")), Ok(file));
        assert_eq!(fs.read(file, 0, 100).unwrap(), b"kept");
        assert_eq!(fs.syncs_at("a"), Some(1));
        fs.remove(ROOT, name("a"), false).unwrap();
        fs.cut_power();
        fs.remove(ROOT, name("a"), false).unwrap();
        fs.sync(ROOT).unwrap();
        fs.cut_power();
        assert_eq!(
            fs.file_syncs_ending("a"),
            1,
            "counted over the model's life"
        );
    }

    #[test]
    fn a_file_whose_directory_was_not_synced_is_gone() {
        let mut fs = Model::default();
        let dir = fs.create(ROOT, name("d"), Kind::Dir, 0o755).unwrap();
        fs.sync(ROOT).unwrap();
        let file = fs.create(dir, name("f"), Kind::File, 0o644).unwrap();
        fs.write(file, 0, b"data").unwrap();
        fs.sync(file).unwrap();
        fs.cut_power();
        assert_eq!(fs.lookup(dir, name("f")), Err(libc::ENOENT));
        // Synced both ways, it survives.
        let file = fs.create(dir, name("f"), Kind::File, 0o644).unwrap();
        fs.write(file, 0, b"data").unwrap();
        fs.sync(file).unwrap();
        fs.sync(dir).unwrap();
        fs.cut_power();
        assert_eq!(
            fs.read(fs.lookup(dir, name("f")).unwrap(), 0, 9).unwrap(),
            b"data"
        );
    }

    #[test]
    fn a_name_synced_before_its_file_exists_empty() {
        let mut fs = Model::default();
        let file = fs.create(ROOT, name("f"), Kind::File, 0o644).unwrap();
        fs.write(file, 0, b"unsynced").unwrap();
        fs.sync(ROOT).unwrap();
        fs.cut_power();
        assert_eq!(
            fs.attr(fs.lookup(ROOT, name("f")).unwrap()).unwrap().size,
            0
        );
    }

    #[test]
    fn renames_and_removals_without_a_directory_sync_are_undone() {
        let mut fs = Model::default();
        let old = fs.create(ROOT, name("key"), Kind::File, 0o644).unwrap();
        fs.write(old, 0, b"old").unwrap();
        fs.sync(old).unwrap();
        fs.sync(ROOT).unwrap();
        // Write a replacement the careful way, but forget the directory sync.
        let tmp = fs.create(ROOT, name("key.tmp"), Kind::File, 0o644).unwrap();
        fs.write(tmp, 0, b"new").unwrap();
        fs.sync(tmp).unwrap();
        fs.rename(ROOT, name("key.tmp"), ROOT, name("key")).unwrap();
        assert_eq!(
            fs.read(fs.lookup(ROOT, name("key")).unwrap(), 0, 9)
                .unwrap(),
            b"new"
        );
        fs.cut_power();
        assert_eq!(
            fs.read(fs.lookup(ROOT, name("key")).unwrap(), 0, 9)
                .unwrap(),
            b"old"
        );
        assert_eq!(fs.lookup(ROOT, name("key.tmp")), Err(libc::ENOENT));
        // A removal is undone the same way.
        fs.remove(ROOT, name("key"), false).unwrap();
        fs.cut_power();
        assert!(fs.lookup(ROOT, name("key")).is_ok());
    }

    #[test]
    fn sync_all_keeps_everything_and_errors_are_posix() {
        let mut fs = Model::default();
        let dir = fs.create(ROOT, name("d"), Kind::Dir, 0o755).unwrap();
        let file = fs.create(dir, name("f"), Kind::File, 0o644).unwrap();
        fs.write(file, 0, b"x").unwrap();
        assert_eq!(
            fs.create(dir, name("f"), Kind::File, 0o644),
            Err(libc::EEXIST)
        );
        assert_eq!(fs.remove(ROOT, name("d"), true), Err(libc::ENOTEMPTY));
        assert_eq!(fs.remove(ROOT, name("d"), false), Err(libc::EISDIR));
        assert_eq!(fs.write(dir, 0, b"x"), Err(libc::EISDIR));
        fs.sync_all();
        fs.cut_power();
        assert_eq!(
            fs.read(fs.lookup(dir, name("f")).unwrap(), 0, 1).unwrap(),
            b"x"
        );
        assert_eq!(fs.cuts(), 1);
    }
}
