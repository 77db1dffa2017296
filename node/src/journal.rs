//! The node's redo logs (DESIGN §7): one `ate-store` log per chain under `DATA/chains/`,
//! written by one thread that groups appends and syncs them together (group commit), so the
//! event loop never waits on the disk.
//!
//! The contract with the event loop: every batch of accepted events gets a *ticket*; tickets
//! complete in the order they were issued, and an event is acknowledged to its writer,
//! published to peers, forwarded in gossip and shown to subscribers only once its ticket is
//! durable. A failed write or sync fails its ticket: nothing in it is acknowledged, and the
//! chain's log refuses further writes until the node is restarted (a failed fsync may have
//! dropped dirty pages; see `ate_store::Log`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use ate_protocol::ChainId;
use ate_store::{
    Backend, BackupError, BackupPoint, BackupSummary, FsBackend, Log, Options, Progress, Recovery,
    SyncPolicy,
};
use tokio::sync::{mpsc, oneshot};

/// When appended events are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// fsync before anything is acknowledged; concurrent batches share one fsync. The default.
    #[default]
    Always,
    /// Like `Always`, but wait up to this long for more batches to share the fsync (fewer
    /// syncs, more latency; nothing acknowledged is lost either way).
    Batch(Duration),
    /// Never fsync (tests and benchmarks: a crash of the machine loses recent writes).
    Never,
}

impl std::str::FromStr for Fsync {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Fsync::Always),
            "never" => Ok(Fsync::Never),
            _ => match s.strip_prefix("batch:").map(str::parse::<u64>) {
                Some(Ok(ms)) if ms <= 10_000 => Ok(Fsync::Batch(Duration::from_millis(ms))),
                _ => Err(format!(
                    "`{s}` is not an fsync policy: use `always`, `never` or `batch:MS` (MS ≤ 10000)"
                )),
            },
        }
    }
}

enum Req {
    /// Start writing this chain's (already opened) log.
    Adopt(ChainId, Box<Log>),
    /// Append these envelopes (possibly none: a barrier) and report the ticket.
    Append {
        ticket: u64,
        chain: ChainId,
        payloads: Vec<Vec<u8>>,
    },
    /// Replace a chain's log with these envelopes (a compacted copy of the same events).
    Rewrite {
        ticket: u64,
        chain: ChainId,
        payloads: Vec<Vec<u8>>,
    },
    /// Take a consistent backup point of a chain's log (after every earlier append).
    Backup {
        chain: ChainId,
        reply: oneshot::Sender<Result<BackupSource, String>>,
    },
}

/// A consistent point in a live log and what is needed to copy the log up to it. Appends only
/// add bytes after the point, so the copy can run while the node keeps writing.
#[derive(Debug, Clone)]
pub struct BackupSource {
    backend: Arc<dyn Backend>,
    point: BackupPoint,
    max_payload_bytes: u32,
}

impl BackupSource {
    /// Frames the backup will hold.
    pub fn frames(&self) -> u64 {
        self.point.frames
    }

    /// Writes the backup file (blocking I/O: run it on a blocking thread).
    pub fn copy_to(
        &self,
        out: &mut dyn std::io::Write,
        progress: &mut dyn Progress,
    ) -> Result<BackupSummary, BackupError> {
        ate_store::backup(
            &*self.backend,
            &self.point,
            self.max_payload_bytes,
            out,
            progress,
        )
    }
}

/// A completed ticket.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) ticket: u64,
    /// `Err` names what failed; nothing in the ticket is durable.
    pub(crate) result: Result<(), String>,
}

/// The writer side, owned by the event loop.
#[derive(Debug)]
pub(crate) struct Journal {
    backend: Arc<dyn Backend>,
    options: Options,
    root: PathBuf,
    snapshots: PathBuf,
    /// `None` only while dropping.
    tx: Option<std_mpsc::Sender<Req>>,
    thread: Option<std::thread::JoinHandle<()>>,
    next_ticket: u64,
}

impl Drop for Journal {
    /// Lets the writer finish what it was given, so a stopped node leaves complete logs.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What opening a chain's log found.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) recovery: Recovery,
}

impl Journal {
    /// Starts the writer thread for logs under `data/chains`. Completions arrive on `done`.
    pub(crate) fn start(
        data: &Path,
        storage: Option<Arc<dyn Backend>>,
        fsync: Fsync,
        repair: bool,
        done: mpsc::UnboundedSender<Done>,
    ) -> anyhow::Result<Journal> {
        let root = data.join("chains");
        let snapshots = data.join("snapshots");
        let backend: Arc<dyn Backend> = match storage {
            Some(b) => b,
            None => {
                std::fs::create_dir_all(&root).map_err(|e| {
                    anyhow::anyhow!("cannot create log directory {}: {e}", root.display())
                })?;
                Arc::new(FsBackend::new(&root))
            }
        };
        let options = Options {
            // The writer thread syncs explicitly before completing a ticket.
            sync: match fsync {
                Fsync::Never => SyncPolicy::Never,
                _ => SyncPolicy::Batch {
                    max_delay_ms: u64::MAX,
                },
            },
            repair,
            ..Options::default()
        };
        let (tx, rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ate-journal".into())
            .spawn(move || writer(rx, done, fsync))
            .map_err(|e| anyhow::anyhow!("cannot start the journal thread: {e}"))?;
        Ok(Journal {
            backend,
            options,
            root,
            snapshots,
            tx: Some(tx),
            thread: Some(thread),
            next_ticket: 1,
        })
    }

    /// Chains that have a log on disk.
    pub(crate) fn chains(&self) -> anyhow::Result<Vec<ChainId>> {
        ate_store::chains(&*self.backend)
            .map_err(|e| anyhow::anyhow!("cannot list logs in {}: {e}", self.root.display()))
    }

    /// The first frame of a chain's log (its genesis), if there is one.
    pub(crate) fn first_frame(&self, chain: &ChainId) -> Option<Vec<u8>> {
        let mut frames =
            ate_store::dump(&*self.backend, chain, self.options.max_payload_bytes).ok()?;
        let f = frames.next()?.ok()?;
        f.crc_ok.then_some(f.payload)
    }

    fn snapshot_path(&self, chain: &ChainId) -> PathBuf {
        self.snapshots.join(format!("{chain}.snap"))
    }

    /// The chain's last snapshot file, if any.
    pub(crate) fn read_snapshot(&self, chain: &ChainId) -> Option<Vec<u8>> {
        std::fs::read(self.snapshot_path(chain)).ok()
    }

    /// Removes a snapshot that did not match the log (it would be tried again otherwise).
    pub(crate) fn drop_snapshot(&self, chain: &ChainId) {
        let _ = std::fs::remove_file(self.snapshot_path(chain));
    }

    /// Where a new snapshot of `chain` goes, and the directory to create first.
    pub(crate) fn snapshot_target(&self, chain: &ChainId) -> (PathBuf, PathBuf) {
        (self.snapshot_path(chain), self.snapshots.clone())
    }

    /// Opens (or creates) a chain's log, passing every stored envelope to `replay` in order,
    /// then hands the log to the writer thread. A new log gets `genesis` as its first frame,
    /// durably, before this returns. `accept` sees the recovery report first and may refuse
    /// the log (the caller then opens it again differently); a refused log is not adopted.
    pub(crate) fn open(
        &mut self,
        chain: ChainId,
        genesis: Option<&[u8]>,
        replay: &mut dyn FnMut(&[u8]),
        progress: &mut dyn ate_store::Progress,
        accept: &mut dyn FnMut(&Recovery) -> bool,
    ) -> Result<Option<Opened>, String> {
        let (mut log, recovery) =
            Log::open(self.backend.clone(), chain, &self.options, replay, progress)
                .map_err(|e| e.to_string())?;
        if !accept(&recovery) {
            return Ok(None);
        }
        if recovery.frames == 0 {
            let Some(genesis) = genesis else {
                return Err("the log is empty and no genesis is known".into());
            };
            let _appended = log.append(0, &[genesis]).map_err(|e| e.to_string())?;
            if self.options.sync != SyncPolicy::Never {
                log.sync().map_err(|e| e.to_string())?;
            }
        }
        self.tx
            .as_ref()
            .ok_or("the journal is closing")?
            .send(Req::Adopt(chain, Box::new(log)))
            .map_err(|_| "the journal thread has stopped".to_string())?;
        Ok(Some(Opened { recovery }))
    }

    /// Queues envelopes for a chain; returns the ticket that completes once they are durable.
    /// An empty batch is a barrier: it completes once everything before it has.
    pub(crate) fn append(&mut self, chain: ChainId, payloads: Vec<Vec<u8>>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        // If the thread is gone the ticket never completes; its actions stay held (nothing
        // unsafe is acknowledged). The thread only stops when the loop drops the journal.
        if let Some(tx) = &self.tx {
            let _ = tx.send(Req::Append {
                ticket,
                chain,
                payloads,
            });
        }
        ticket
    }

    /// Queues a rewrite of a chain's log (compaction); the ticket completes once the new copy
    /// is durable and the old segments are gone.
    pub(crate) fn rewrite(&mut self, chain: ChainId, payloads: Vec<Vec<u8>>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if let Some(tx) = &self.tx {
            let _ = tx.send(Req::Rewrite {
                ticket,
                chain,
                payloads,
            });
        }
        ticket
    }

    /// Bytes of a chain's log segments on disk.
    pub(crate) fn log_bytes(&self, chain: &ChainId) -> u64 {
        let dir = chain.to_string();
        self.backend
            .list(&dir)
            .unwrap_or_default()
            .iter()
            .map(|n| self.backend.file_len(&dir, n).unwrap_or(0))
            .sum()
    }

    /// Asks the writer thread for a backup point of `chain`; the answer goes to `reply`.
    pub(crate) fn backup(
        &self,
        chain: ChainId,
        reply: oneshot::Sender<Result<BackupSource, String>>,
    ) {
        if let Some(tx) = &self.tx
            && let Err(std_mpsc::SendError(Req::Backup { reply, .. })) =
                tx.send(Req::Backup { chain, reply })
        {
            let _ = reply.send(Err("the journal thread has stopped".into()));
        }
    }

    /// The path of the logs (for messages).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// Most requests taken into one group commit.
const MAX_GROUP: usize = 4096;

fn writer(rx: std_mpsc::Receiver<Req>, done: mpsc::UnboundedSender<Done>, fsync: Fsync) {
    let mut logs: BTreeMap<ChainId, Box<Log>> = BTreeMap::new();
    let started = Instant::now();
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        if let Fsync::Batch(delay) = fsync {
            let deadline = Instant::now() + delay;
            while group.len() < MAX_GROUP {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
        }
        let now_ms = started.elapsed().as_millis() as u64;
        // Append everything, then sync each touched log once; a ticket is good only if its
        // append and its log's sync both succeeded.
        let mut tickets: Vec<(u64, ChainId, Result<(), String>)> = Vec::new();
        for req in group {
            match req {
                Req::Adopt(chain, log) => {
                    logs.insert(chain, log);
                }
                Req::Rewrite {
                    ticket,
                    chain,
                    payloads,
                } => {
                    let result = match logs.get_mut(&chain) {
                        Some(log) => {
                            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                            log.rewrite(&refs)
                                .map(|_| ())
                                .map_err(|e| format!("rewriting the log failed: {e}"))
                        }
                        None => Err("the chain has no open log".into()),
                    };
                    tickets.push((ticket, chain, result));
                }
                Req::Backup { chain, reply } => {
                    let r = match logs.get(&chain) {
                        Some(log) => Ok(BackupSource {
                            backend: log.backend().clone(),
                            point: log.backup_point(),
                            max_payload_bytes: log.options().max_payload_bytes,
                        }),
                        None => Err("the chain has no open log".to_string()),
                    };
                    let _ = reply.send(r);
                }
                Req::Append {
                    ticket,
                    chain,
                    payloads,
                } => {
                    let result = if payloads.is_empty() {
                        Ok(())
                    } else {
                        match logs.get_mut(&chain) {
                            Some(log) => {
                                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                                log.append(now_ms, &refs)
                                    .map(|_| ())
                                    .map_err(|e| format!("append to the log failed: {e}"))
                            }
                            None => Err("the chain has no open log".into()),
                        }
                    };
                    tickets.push((ticket, chain, result));
                }
            }
        }
        let mut synced: BTreeMap<ChainId, Result<(), String>> = BTreeMap::new();
        for (_, chain, result) in &tickets {
            if result.is_err() || synced.contains_key(chain) || fsync == Fsync::Never {
                continue;
            }
            let r = match logs.get_mut(chain) {
                Some(log) if log.durable_frames() < log.frames() => log
                    .sync()
                    .map(|_| ())
                    .map_err(|e| format!("fsync of the log failed: {e}")),
                _ => Ok(()),
            };
            synced.insert(*chain, r);
        }
        for (ticket, chain, result) in tickets {
            let result = result.and_then(|()| match synced.get(&chain) {
                Some(Err(e)) => Err(e.clone()),
                _ => Ok(()),
            });
            // The loop may be gone (shutting down): keep writing what was handed over anyway.
            let _ = done.send(Done { ticket, result });
        }
    }
}

/// Writes a snapshot file durably: a temporary file, fsync, rename over the old one, fsync
/// of the directory. A crash leaves the old snapshot or the new one, never a torn one (and a
/// torn one would fail its checksum and be ignored anyway).
pub(crate) fn write_snapshot(path: &Path, dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    // A unique temporary name: two snapshots of one chain may be written at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("snap.{}.{n}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
