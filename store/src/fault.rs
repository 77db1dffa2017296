//! A fault-injecting in-memory [`Backend`] for crash and corruption tests.
//!
//! Each file keeps its *live* bytes (what reads see) and how long a prefix of them is *durable*
//! (reached the disk through a successful sync). A simulated [`FaultBackend::crash`] throws away
//! everything that is not durable, including files whose directory entry was never synced: the
//! state a machine finds after a power cut. On top of that, tests can tear the last write at any
//! byte, make the next write short, flip a bit anywhere, and make syncs fail.
//!
//! The model keeps durable data a prefix of the live data (writes are appends), so a torn write is
//! always a prefix of what was written. Real disks may also persist later pages before earlier
//! ones; that case appears to recovery as mid-file corruption, which it refuses rather than guess
//! about (see the crate docs).

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::backend::{Backend, SegmentFile};
use crate::mem::copy_at;

#[derive(Debug, Default)]
struct FaultFile {
    live: Vec<u8>,
    durable_len: usize,
    entry_durable: bool,
}

#[derive(Debug, Default)]
struct State {
    dirs: BTreeMap<String, BTreeMap<String, FaultFile>>,
    fail_syncs: u32,
    short_write: Option<usize>,
    last_written: Option<(String, String)>,
    syncs: u64,
}

impl State {
    fn file_mut(&mut self, dir: &str, name: &str) -> io::Result<&mut FaultFile> {
        self.dirs
            .get_mut(dir)
            .and_then(|d| d.get_mut(name))
            .ok_or_else(|| not_found(dir, name))
    }
}

fn not_found(dir: &str, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{dir}/{name}: no such file"),
    )
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fault-injecting backend. Clones share the same files and fault plan, so a test keeps one
/// clone to inject faults and crash while the log under test holds another.
#[derive(Debug, Clone, Default)]
pub struct FaultBackend {
    state: Arc<Mutex<State>>,
}

impl FaultBackend {
    /// An empty backend with no faults planned.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a power cut: every file falls back to its durable prefix, and files created
    /// since their directory was last synced disappear.
    pub fn crash(&self) {
        self.crash_tearing(0);
    }

    /// Like [`crash`](Self::crash), but the most recently written file keeps up to `keep` bytes
    /// of its unsynced tail: the last write was torn after `keep` bytes.
    pub fn crash_tearing(&self, keep: usize) {
        let mut state = lock(&self.state);
        let last = state.last_written.take();
        for (dir, files) in state.dirs.iter_mut() {
            files.retain(|_, f| f.entry_durable);
            for (name, file) in files.iter_mut() {
                let is_last = last.as_ref().is_some_and(|(d, n)| d == dir && n == name);
                let extra = if is_last { keep } else { 0 };
                let len = file.durable_len.saturating_add(extra).min(file.live.len());
                file.live.truncate(len);
                file.durable_len = len;
            }
        }
    }

    /// How many bytes of the file are written but not yet durable.
    pub fn unsynced_len(&self, dir: &str, name: &str) -> usize {
        let mut state = lock(&self.state);
        state
            .file_mut(dir, name)
            .map_or(0, |f| f.live.len() - f.durable_len)
    }

    /// Makes the next `count` syncs fail (their data stays non-durable).
    pub fn fail_next_syncs(&self, count: u32) {
        lock(&self.state).fail_syncs = count;
    }

    /// Makes the next write store only its first `keep` bytes and then fail, as a full disk does.
    pub fn short_next_write(&self, keep: usize) {
        lock(&self.state).short_write = Some(keep);
    }

    /// Flips bit `bit % 8` of the byte at `offset` (both live and durable: media corruption).
    /// Returns false if the file or offset does not exist.
    pub fn flip_bit(&self, dir: &str, name: &str, offset: u64, bit: u8) -> bool {
        let mut state = lock(&self.state);
        let Ok(file) = state.file_mut(dir, name) else {
            return false;
        };
        let index = usize::try_from(offset).unwrap_or(usize::MAX);
        match file.live.get_mut(index) {
            Some(byte) => {
                *byte ^= 1 << (bit % 8);
                true
            }
            None => false,
        }
    }

    /// A copy of a file's live bytes.
    pub fn file(&self, dir: &str, name: &str) -> Option<Vec<u8>> {
        lock(&self.state)
            .dirs
            .get(dir)?
            .get(name)
            .map(|f| f.live.clone())
    }

    /// Writes a whole file, durably (to plant garbage or foreign files).
    pub fn put_file(&self, dir: &str, name: &str, bytes: Vec<u8>) {
        let len = bytes.len();
        let file = FaultFile {
            live: bytes,
            durable_len: len,
            entry_durable: true,
        };
        lock(&self.state)
            .dirs
            .entry(dir.to_owned())
            .or_default()
            .insert(name.to_owned(), file);
    }

    /// How many syncs have succeeded so far.
    pub fn syncs(&self) -> u64 {
        lock(&self.state).syncs
    }
}

#[derive(Debug)]
struct FaultHandle {
    state: Arc<Mutex<State>>,
    dir: String,
    name: String,
}

impl SegmentFile for FaultHandle {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut state = lock(&self.state);
        let short = state.short_write.take();
        state.last_written = Some((self.dir.clone(), self.name.clone()));
        let file = state.file_mut(&self.dir, &self.name)?;
        match short {
            Some(keep) => {
                file.live
                    .extend_from_slice(data.get(..keep.min(data.len())).unwrap_or_default());
                Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "injected short write",
                ))
            }
            None => {
                file.live.extend_from_slice(data);
                Ok(())
            }
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = lock(&self.state);
        if state.fail_syncs > 0 {
            state.fail_syncs -= 1;
            return Err(io::Error::other("injected fsync failure"));
        }
        state.syncs += 1;
        let file = state.file_mut(&self.dir, &self.name)?;
        file.durable_len = file.live.len();
        Ok(())
    }
}

impl Backend for FaultBackend {
    fn list_dirs(&self) -> io::Result<Vec<String>> {
        Ok(lock(&self.state).dirs.keys().cloned().collect())
    }

    fn create_dir(&self, dir: &str) -> io::Result<()> {
        lock(&self.state).dirs.entry(dir.to_owned()).or_default();
        Ok(())
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let state = lock(&self.state);
        Ok(state
            .dirs
            .get(dir)
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default())
    }

    fn file_len(&self, dir: &str, name: &str) -> io::Result<u64> {
        let mut state = lock(&self.state);
        Ok(state.file_mut(dir, name)?.live.len() as u64)
    }

    fn read_at(&self, dir: &str, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = lock(&self.state);
        Ok(copy_at(&state.file_mut(dir, name)?.live, offset, buf))
    }

    fn create(&self, dir: &str, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        let mut state = lock(&self.state);
        let d = state.dirs.get_mut(dir).ok_or_else(|| not_found(dir, ""))?;
        if d.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{dir}/{name} exists"),
            ));
        }
        d.insert(name.to_owned(), FaultFile::default());
        Ok(Box::new(FaultHandle {
            state: Arc::clone(&self.state),
            dir: dir.to_owned(),
            name: name.to_owned(),
        }))
    }

    fn open_append(&self, dir: &str, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        lock(&self.state).file_mut(dir, name)?;
        Ok(Box::new(FaultHandle {
            state: Arc::clone(&self.state),
            dir: dir.to_owned(),
            name: name.to_owned(),
        }))
    }

    fn truncate(&self, dir: &str, name: &str, len: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        let file = state.file_mut(dir, name)?;
        file.live
            .truncate(usize::try_from(len).unwrap_or(usize::MAX));
        file.durable_len = file.live.len();
        Ok(())
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        let mut state = lock(&self.state);
        for file in state
            .dirs
            .get_mut(dir)
            .into_iter()
            .flat_map(|d| d.values_mut())
        {
            file.entry_durable = true;
        }
        Ok(())
    }

    fn remove(&self, dir: &str, name: &str) -> io::Result<()> {
        let mut state = lock(&self.state);
        let removed = state.dirs.get_mut(dir).and_then(|d| d.remove(name));
        removed.map(drop).ok_or_else(|| not_found(dir, name))
    }
}
