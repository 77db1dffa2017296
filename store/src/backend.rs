//! The storage trait the log is written against, and its real-filesystem implementation.
//!
//! The log never touches `std::fs` directly: every file operation goes through [`Backend`], so
//! tests can swap in [`crate::MemBackend`] or the fault-injecting [`crate::FaultBackend`] (the
//! approach of redb's `StorageBackend` and its crash-consistency tests). The trait is
//! deliberately small and names files by `(dir, name)` relative to one data root, because a log
//! is exactly one directory of segment files per chain.
//!
//! Durability contract, which every implementation must honour because recovery relies on it:
//! * [`SegmentFile::write_all`] makes bytes *readable*, not durable;
//! * [`SegmentFile::sync_data`] returning `Ok` makes every byte written before it durable;
//! * [`Backend::create`] is only durable after [`Backend::sync_dir`];
//! * [`Backend::truncate`] and [`Backend::remove`] are durable when they return.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A file opened for appending (a segment being written).
pub trait SegmentFile: fmt::Debug + Send {
    /// Appends all of `data` at the end of the file. On error, a prefix of `data` may have been
    /// written (a short write); the caller must treat the file's tail as unknown.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;

    /// Makes everything written so far durable (`fdatasync`). An error means *nothing* written
    /// since the last successful sync may be assumed durable, even after a later successful sync
    /// (the PostgreSQL "fsyncgate" lesson: the kernel may have dropped the dirty pages).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// Named files inside per-chain directories under one data root.
pub trait Backend: fmt::Debug + Send + Sync {
    /// Lists the directories under the root (one per chain), sorted.
    fn list_dirs(&self) -> io::Result<Vec<String>>;

    /// Creates `dir` if it does not exist, durably (the root's entry is synced).
    fn create_dir(&self, dir: &str) -> io::Result<()>;

    /// Lists the regular files in `dir`, sorted by name. A missing `dir` lists as empty.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;

    /// The current length of a file in bytes.
    fn file_len(&self, dir: &str, name: &str) -> io::Result<u64>;

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, dir: &str, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Creates a new, empty file (failing if it exists) and opens it for appending.
    fn create(&self, dir: &str, name: &str) -> io::Result<Box<dyn SegmentFile>>;

    /// Opens an existing file for appending at its end.
    fn open_append(&self, dir: &str, name: &str) -> io::Result<Box<dyn SegmentFile>>;

    /// Cuts a file to `len` bytes, durably.
    fn truncate(&self, dir: &str, name: &str, len: u64) -> io::Result<()>;

    /// Makes the directory's entries (created files) durable.
    fn sync_dir(&self, dir: &str) -> io::Result<()>;

    /// Removes a file, durably.
    fn remove(&self, dir: &str, name: &str) -> io::Result<()>;
}

/// The real filesystem: `root/<dir>/<name>`.
#[derive(Debug, Clone)]
pub struct FsBackend {
    root: PathBuf,
}

impl FsBackend {
    /// A backend rooted at `root` (the node's `--data DIR`). The root is created on first use.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsBackend { root: root.into() }
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, dir: &str, name: &str) -> PathBuf {
        self.root.join(dir).join(name)
    }
}

#[derive(Debug)]
struct FsFile {
    file: File,
}

impl SegmentFile for FsFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Syncs a directory's entries. Only Unix can open a directory for this; elsewhere it is a no-op
/// (NTFS journals metadata).
fn sync_dir_path(path: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(path)?.sync_all()
    } else {
        Ok(())
    }
}

fn sorted_entries(path: &Path, want_dirs: bool) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let is_dir = entry.file_type()?.is_dir();
        let name = entry.file_name().into_string().ok();
        names.extend(name.filter(|_| is_dir == want_dirs));
    }
    names.sort();
    Ok(names)
}

impl Backend for FsBackend {
    fn list_dirs(&self) -> io::Result<Vec<String>> {
        sorted_entries(&self.root, true)
    }

    fn create_dir(&self, dir: &str) -> io::Result<()> {
        let path = self.root.join(dir);
        if path.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&path)?;
        sync_dir_path(&self.root)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        sorted_entries(&self.root.join(dir), false)
    }

    fn file_len(&self, dir: &str, name: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(dir, name))?.len())
    }

    fn read_at(&self, dir: &str, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        // Opening per call keeps the trait stateless; callers read in chunks of a megabyte or
        // more, so the open is noise next to the read.
        let mut file = File::open(self.path(dir, name))?;
        file.seek(SeekFrom::Start(offset))?;
        let mut done = 0;
        while done < buf.len() {
            let Some(rest) = buf.get_mut(done..) else {
                break;
            };
            match file.read(rest) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn create(&self, dir: &str, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.path(dir, name))?;
        Ok(Box::new(FsFile { file }))
    }

    fn open_append(&self, dir: &str, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().append(true).open(self.path(dir, name))?;
        Ok(Box::new(FsFile { file }))
    }

    fn truncate(&self, dir: &str, name: &str, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(self.path(dir, name))?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        sync_dir_path(&self.root.join(dir))
    }

    fn remove(&self, dir: &str, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(dir, name))?;
        sync_dir_path(&self.root.join(dir))
    }
}
