//! The filesystem through the kernel: files written with std, synced or not, then a power
//! cut. Mounting needs root and `/dev/fuse` (as `.ci/run` has); elsewhere these tests say so
//! and pass, unless `CI` is set.
#![allow(clippy::unwrap_used)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;

use durable_powercut::PowerCut;

fn mount(dir: &tempfile::TempDir) -> Option<PowerCut> {
    PowerCut::mount_for_test(dir.path())
}

fn sync_dir(path: &std::path::Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

#[test]
fn unsynced_files_and_names_are_lost_synced_ones_survive() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = mount(&dir) else { return };
    let root = disk.path();

    fs::create_dir(root.join("d")).unwrap();
    let mut kept = File::create(root.join("d/kept")).unwrap();
    kept.write_all(b"durable").unwrap();
    kept.sync_data().unwrap();
    kept.write_all(b" and more").unwrap();
    drop(kept);
    sync_dir(&root.join("d"));
    sync_dir(root);

    // Its name reaches the disk with its directory, its content does not.
    fs::write(root.join("name-only"), b"lost").unwrap();
    sync_dir(root);
    // Neither its name nor its content does.
    fs::write(root.join("never-synced"), b"gone").unwrap();

    let mut orphan = File::create(root.join("d/orphan")).unwrap();
    orphan.write_all(b"synced, but its name is not").unwrap();
    orphan.sync_all().unwrap();
    drop(orphan);

    disk.cut_power();
    assert_eq!(fs::read(root.join("name-only")).unwrap(), b"");
    assert!(!root.join("never-synced").exists());
    assert!(!root.join("d/orphan").exists());
    assert_eq!(fs::read(root.join("d/kept")).unwrap(), b"durable");
    assert_eq!(disk.syncs_at("d/kept"), Some(1));
    assert_eq!(disk.file_syncs_ending("kept"), 1);
}

#[test]
fn a_rename_without_a_directory_sync_is_undone() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = mount(&dir) else { return };
    let root = disk.path();
    let key = root.join("key");
    fs::write(&key, b"old").unwrap();
    File::open(&key).unwrap().sync_all().unwrap();
    sync_dir(root);

    // The careful replacement, minus the directory sync.
    let tmp = root.join("key.tmp");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .unwrap();
    file.write_all(b"new").unwrap();
    file.sync_all().unwrap();
    drop(file);
    fs::rename(&tmp, &key).unwrap();
    assert_eq!(fs::read(&key).unwrap(), b"new");
    disk.cut_power();
    assert_eq!(fs::read(&key).unwrap(), b"old");
    assert!(!tmp.exists());

    // With the directory synced, the replacement holds.
    fs::write(&tmp, b"new").unwrap();
    File::open(&tmp).unwrap().sync_all().unwrap();
    fs::rename(&tmp, &key).unwrap();
    sync_dir(root);
    disk.cut_power();
    assert_eq!(fs::read(&key).unwrap(), b"new");
}
