//! An in-memory [`Backend`]: fast tests and benchmarks without a disk. Everything written is
//! "durable" (there is no crash to lose it); use [`crate::FaultBackend`] to test crashes.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::backend::{Backend, SegmentFile};

type Files = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// An in-memory backend. Clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct MemBackend {
    files: Arc<Mutex<Files>>,
}

fn not_found(dir: &str, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{dir}/{name}: no such file"),
    )
}

fn lock(files: &Mutex<Files>) -> MutexGuard<'_, Files> {
    // A panic in another test thread must not cascade; the map itself is always consistent.
    files.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of a file's bytes, if it exists.
    pub fn file(&self, dir: &str, name: &str) -> Option<Vec<u8>> {
        lock(&self.files).get(dir)?.get(name).cloned()
    }

    /// Replaces (or creates) a file with `bytes`, creating `dir` as needed.
    pub fn put_file(&self, dir: &str, name: &str, bytes: Vec<u8>) {
        lock(&self.files)
            .entry(dir.to_owned())
            .or_default()
            .insert(name.to_owned(), bytes);
    }
}

#[derive(Debug)]
struct MemFile {
    files: Arc<Mutex<Files>>,
    dir: String,
    name: String,
}

impl SegmentFile for MemFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut files = lock(&self.files);
        let file = files
            .get_mut(&self.dir)
            .and_then(|d| d.get_mut(&self.name))
            .ok_or_else(|| not_found(&self.dir, &self.name))?;
        file.extend_from_slice(data);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Backend for MemBackend {
    fn list_dirs(&self) -> io::Result<Vec<String>> {
        Ok(lock(&self.files).keys().cloned().collect())
    }

    fn create_dir(&self, dir: &str) -> io::Result<()> {
        lock(&self.files).entry(dir.to_owned()).or_default();
        Ok(())
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        Ok(lock(&self.files)
            .get(dir)
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default())
    }

    fn file_len(&self, dir: &str, name: &str) -> io::Result<u64> {
        let files = lock(&self.files);
        let file = files.get(dir).and_then(|d| d.get(name));
        file.map(|f| f.len() as u64)
            .ok_or_else(|| not_found(dir, name))
    }

    fn read_at(&self, dir: &str, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let files = lock(&self.files);
        let file = files
            .get(dir)
            .and_then(|d| d.get(name))
            .ok_or_else(|| not_found(dir, name))?;
        Ok(copy_at(file, offset, buf))
    }

    fn create(&self, dir: &str, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        let mut files = lock(&self.files);
        let d = files.get_mut(dir).ok_or_else(|| not_found(dir, ""))?;
        if d.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{dir}/{name} exists"),
            ));
        }
        d.insert(name.to_owned(), Vec::new());
        Ok(Box::new(MemFile {
            files: Arc::clone(&self.files),
            dir: dir.to_owned(),
            name: name.to_owned(),
        }))
    }

    fn open_append(&self, dir: &str, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        self.file_len(dir, name)?;
        Ok(Box::new(MemFile {
            files: Arc::clone(&self.files),
            dir: dir.to_owned(),
            name: name.to_owned(),
        }))
    }

    fn truncate(&self, dir: &str, name: &str, len: u64) -> io::Result<()> {
        let mut files = lock(&self.files);
        let file = files
            .get_mut(dir)
            .and_then(|d| d.get_mut(name))
            .ok_or_else(|| not_found(dir, name))?;
        file.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }

    fn sync_dir(&self, _dir: &str) -> io::Result<()> {
        Ok(())
    }

    fn remove(&self, dir: &str, name: &str) -> io::Result<()> {
        let mut files = lock(&self.files);
        let removed = files.get_mut(dir).and_then(|d| d.remove(name));
        removed.map(drop).ok_or_else(|| not_found(dir, name))
    }
}

/// Copies `file[offset..]` into `buf` as far as both reach; returns the count.
pub(crate) fn copy_at(file: &[u8], offset: u64, buf: &mut [u8]) -> usize {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(file.len());
    let src = file.get(start..).unwrap_or_default();
    let n = src.len().min(buf.len());
    if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
        dst.copy_from_slice(src);
    }
    n
}
