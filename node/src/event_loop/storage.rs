//! The event loop's durability side (DESIGN §7): opening and replaying redo logs at start,
//! snapshots, holding acknowledgements, publishes and notifications until the journal says
//! the events are durable, compaction and backups.

use super::*;

/// Envelopes replayed into a replica per call at start-up.
const REPLAY_CHUNK: usize = 4096;

impl EventLoop {
    /// Starts serving every chain that has a log in the data directory.
    pub(crate) fn load_chains(&mut self) -> anyhow::Result<()> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let chains = journal.chains()?;
        for chain in chains {
            match self.open_log(chain, None, None) {
                Ok(replica) => {
                    self.install_chain(replica);
                }
                Err(e) => tracing::error!(
                    chain = %chain.short(),
                    "not serving this chain: {e}"
                ),
            }
        }
        Ok(())
    }

    /// Opens a chain's log and rebuilds its replica: from the chain's snapshot plus the log
    /// frames after it when there is a good one, else by replaying the whole log into
    /// `replica` (or into a replica made from the log's first frame, its genesis).
    pub(super) fn open_log(
        &mut self,
        chain: ChainId,
        genesis: Option<&[u8]>,
        replica: Option<Replica>,
    ) -> Result<Replica, String> {
        let started = Instant::now();
        let from_snapshot = self.restore_snapshot(chain, genesis);
        let used_snapshot = from_snapshot.is_some();
        let (replica, skip) = match from_snapshot {
            Some((r, info)) => (Some(r), Some(info)),
            None => (replica, None),
        };
        match self.replay_log(chain, genesis, replica, skip)? {
            Some(r) => {
                if used_snapshot {
                    Metrics::add(&self.metrics.snapshots_restored, 1);
                }
                self.log_opened(chain, &r, started, used_snapshot);
                Ok(r)
            }
            None => {
                // The snapshot did not line up with the log: forget it and replay everything.
                tracing::warn!(
                    chain = %chain.short(),
                    "the snapshot does not match the redo log; replaying the whole log"
                );
                if let Some(j) = &self.journal {
                    j.drop_snapshot(&chain);
                }
                Metrics::add(&self.metrics.snapshots_ignored, 1);
                let fresh = match genesis {
                    Some(g) => Some(self.new_replica(g).map_err(|e| e.to_string())?),
                    None => None,
                };
                let r = self
                    .replay_log(chain, genesis, fresh, None)?
                    .ok_or("the log could not be replayed")?;
                self.log_opened(chain, &r, started, false);
                Ok(r)
            }
        }
    }

    pub(super) fn new_replica(
        &self,
        genesis: &[u8],
    ) -> Result<Replica, ate_protocol::replica::GenesisError> {
        let checker: Arc<dyn ate_protocol::verify::SignatureCheck> = self.checker.clone();
        Replica::with_checker(genesis, self.replica_config.clone(), checker)
    }

    /// The replica from the chain's snapshot file, if it has a good one.
    pub(super) fn restore_snapshot(
        &self,
        chain: ChainId,
        genesis: Option<&[u8]>,
    ) -> Option<(Replica, SnapshotInfo)> {
        let j = self.journal.as_ref()?;
        let bytes = j.read_snapshot(&chain)?;
        let genesis = match genesis {
            Some(g) => g.to_vec(),
            None => j.first_frame(&chain)?,
        };
        let checker: Arc<dyn ate_protocol::verify::SignatureCheck> = self.checker.clone();
        let restored = SnapshotInfo::read(&bytes).and_then(|info| {
            Replica::restore(&genesis, &bytes, self.replica_config.clone(), checker)
                .map(|r| (r, info))
        });
        match restored {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(chain = %chain.short(), "ignoring the snapshot: {e}");
                Metrics::add(&self.metrics.snapshots_ignored, 1);
                None
            }
        }
    }

    /// Replays the log into a replica, skipping the frames a snapshot covers. `Ok(None)` when
    /// the log does not hold what the snapshot says it covers.
    pub(super) fn replay_log(
        &mut self,
        chain: ChainId,
        genesis: Option<&[u8]>,
        replica: Option<Replica>,
        snapshot: Option<SnapshotInfo>,
    ) -> Result<Option<Replica>, String> {
        let mut state = ReplayState {
            replica,
            chunk: Vec::new(),
            checker: self.checker.clone(),
            config: self.replica_config.clone(),
            error: None,
            invalid: 0,
            seen: 0,
            skip: snapshot.map_or(0, |i| i.events),
            last: snapshot.map(|i| i.last),
            mismatch: std::rc::Rc::new(std::cell::Cell::new(false)),
        };
        let mismatch = state.mismatch.clone();
        let mut last_log = Instant::now();
        let mut progress = |done: u64, total: u64| {
            if last_log.elapsed() >= Duration::from_secs(2) {
                last_log = Instant::now();
                tracing::info!(
                    chain = %chain.short(),
                    "replaying the log: {} of {} MiB",
                    done >> 20,
                    total >> 20
                );
            }
        };
        let Some(journal) = self.journal.as_mut() else {
            return Err("the node has no data directory".into());
        };
        let root = journal.root().display().to_string();
        let skip = state.skip;
        let mut replay = |bytes: &[u8]| state.push(bytes);
        let mut accept =
            |r: &ate_store::Recovery| skip == 0 || (r.frames >= skip && !mismatch.get());
        let opened = journal
            .open(chain, genesis, &mut replay, &mut progress, &mut accept)
            .map_err(|e| {
                format!(
                    "{e} (logs in {root}; `ate node run --repair` cuts a corrupt log at the damage)"
                )
            })?;
        let Some(opened) = opened else {
            return Ok(None);
        };
        state.flush();
        if let Some(e) = state.error {
            return Err(e);
        }
        let Some(replica) = state.replica else {
            return Err("the log holds no genesis".into());
        };
        let r = &opened.recovery;
        if let Some(t) = &r.torn_tail {
            tracing::warn!(
                chain = %chain.short(),
                "cut a torn tail of the log: {} bytes at {}:{} ({:?})",
                t.bytes_cut, t.segment, t.offset, t.problem
            );
        }
        if let Some(rep) = &r.repaired {
            tracing::warn!(chain = %chain.short(), "repaired the log: {rep:?}");
        }
        if state.invalid > 0 {
            tracing::warn!(
                chain = %chain.short(),
                "{} logged events did not validate on replay and were skipped",
                state.invalid
            );
        }
        Ok(Some(replica))
    }

    pub(super) fn log_opened(&self, chain: ChainId, r: &Replica, started: Instant, snapshot: bool) {
        tracing::info!(
            chain = %chain.short(),
            events = r.len(),
            snapshot,
            "chain loaded in {:.2?}",
            started.elapsed()
        );
    }

    /// Runs `a` once everything accepted so far is durable (at once without a data dir).
    pub(super) fn after_durable(&mut self, a: Action) {
        if self.last_ticket <= self.durable_ticket {
            self.act(a, None);
        } else {
            self.held.push_back((self.last_ticket, a));
        }
    }

    /// A ticket completed: release what waited for it. A failed ticket's actions are
    /// cancelled (writers get an error, nothing is published or forwarded).
    pub(super) fn on_durable(&mut self, done: Done) {
        self.durable_ticket = self.durable_ticket.max(done.ticket);
        while let Some((t, _)) = self.held.front() {
            if *t > done.ticket {
                break;
            }
            let Some((t, a)) = self.held.pop_front() else {
                break;
            };
            let failed = match &done.result {
                Err(e) if t == done.ticket => Some(e.clone()),
                _ => None,
            };
            self.act(a, failed);
        }
    }

    pub(super) fn act(&mut self, a: Action, failed: Option<String>) {
        let Some(e) = failed else {
            match a {
                Action::Publish(chain, bundle) => self.publish(chain, bundle),
                Action::Change(chain, change) => self.subscribers.publish(&chain, change),
                Action::Validate(id, source, acceptance) => self.validate(&id, &source, acceptance),
                Action::Reply(reply, result) => {
                    let _ = reply.send(result);
                }
                Action::Snapshot(job) => self.write_snapshot(*job),
                Action::Compacted(chain, reply, mut report) => {
                    if let Some(j) = &self.journal {
                        report.log_bytes_after = j.log_bytes(&chain);
                    }
                    let _ = reply.send(Ok(report));
                }
            }
            return;
        };
        match a {
            Action::Publish(chain, _) | Action::Change(chain, _) => self.mark_broken(chain, &e),
            Action::Validate(id, source, _) => {
                self.validate(&id, &source, MessageAcceptance::Ignore)
            }
            Action::Reply(reply, _) => {
                let _ = reply.send(Err(NodeError::NotDurable(e)));
            }
            Action::Compacted(chain, reply, _) => {
                self.mark_broken(chain, &e);
                let _ = reply.send(Err(NodeError::Storage(chain, e)));
            }
            Action::Snapshot(job) => {
                job.busy.store(false, std::sync::atomic::Ordering::SeqCst);
                if let Some(r) = job.reply {
                    let _ = r.send(Err(NodeError::NotDurable(e)));
                }
            }
        }
    }

    /// Takes a snapshot of `chain` now; it is written once the log holds everything in it.
    pub(super) fn take_snapshot(
        &mut self,
        chain: ChainId,
        reply: Option<oneshot::Sender<Result<(), NodeError>>>,
    ) {
        let Some(c) = self.chains.get_mut(&chain) else {
            if let Some(r) = reply {
                let _ = r.send(Err(NodeError::UnknownChain(chain)));
            }
            return;
        };
        if self.journal.is_none() || self.broken.contains_key(&chain) {
            if let Some(r) = reply {
                let _ = r.send(Err(NodeError::NoData));
            }
            return;
        }
        let started = Instant::now();
        let bytes = c.replica.snapshot();
        tracing::debug!(
            chain = %chain.short(),
            events = c.replica.len(),
            bytes = bytes.len(),
            "snapshot taken in {:.2?}",
            started.elapsed()
        );
        c.snapshot_at = c.replica.len();
        c.snapshot_busy
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let busy = c.snapshot_busy.clone();
        self.after_durable(Action::Snapshot(Box::new(SnapshotJob {
            chain,
            bytes,
            busy,
            reply,
        })));
    }

    pub(super) fn write_snapshot(&mut self, job: SnapshotJob) {
        let Some(j) = &self.journal else {
            return;
        };
        let (path, dir) = j.snapshot_target(&job.chain);
        tokio::task::spawn_blocking(move || {
            let r = crate::journal::write_snapshot(&path, &dir, &job.bytes);
            if let Err(e) = &r {
                tracing::warn!(chain = %job.chain.short(), "cannot write the snapshot {}: {e}", path.display());
            }
            job.busy.store(false, std::sync::atomic::Ordering::SeqCst);
            if let Some(reply) = job.reply {
                let _ = reply.send(r.map_err(|e| NodeError::Storage(job.chain, e.to_string())));
            }
        });
    }

    /// Compacts a chain in memory, then rewrites its log (and snapshots it: the old snapshot
    /// numbers the old log's frames).
    pub(super) fn compact(
        &mut self,
        chain: ChainId,
        reply: oneshot::Sender<Result<crate::node::CompactReport, NodeError>>,
    ) {
        if let Some(e) = self.broken.get(&chain) {
            let _ = reply.send(Err(NodeError::Storage(chain, e.clone())));
            return;
        }
        let Some(c) = self.chains.get_mut(&chain) else {
            let _ = reply.send(Err(NodeError::UnknownChain(chain)));
            return;
        };
        let done = c.replica.compact();
        let mut report = crate::node::CompactReport {
            pruned: done.pruned.len(),
            unsettled: done.unsettled,
            compacted_total: c.replica.compacted_len(),
            bytes_freed: done.bytes_freed,
            log_bytes_before: 0,
            log_bytes_after: 0,
        };
        let genesis = c.replica.event(&EventId(chain.0)).map(|g| g.encode());
        let payloads: Option<Vec<Vec<u8>>> = match (&self.journal, genesis) {
            (Some(_), Some(g)) if report.pruned > 0 => Some(
                std::iter::once(g)
                    .chain(c.replica.envelopes_in_order())
                    .collect(),
            ),
            _ => None,
        };
        if let Some(j) = self.journal.as_mut() {
            report.log_bytes_before = j.log_bytes(&chain);
            report.log_bytes_after = report.log_bytes_before;
            if let Some(p) = payloads {
                self.last_ticket = j.rewrite(chain, p);
                self.take_snapshot(chain, None);
            }
        }
        self.after_durable(Action::Compacted(chain, reply, report));
    }

    /// Snapshots every chain; answers once all are written.
    pub(super) fn checkpoint(&mut self, reply: oneshot::Sender<Result<usize, NodeError>>) {
        let chains: Vec<ChainId> = self.chains.keys().copied().collect();
        let mut waits = Vec::new();
        for chain in chains {
            let (tx, rx) = oneshot::channel();
            self.take_snapshot(chain, Some(tx));
            waits.push(rx);
        }
        tokio::spawn(async move {
            let mut n = 0;
            for w in waits {
                match w.await {
                    Ok(Ok(())) => n += 1,
                    Ok(Err(e)) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                    Err(_) => {
                        let _ = reply.send(Err(NodeError::Closed));
                        return;
                    }
                }
            }
            let _ = reply.send(Ok(n));
        });
    }

    pub(super) fn backup(
        &mut self,
        chain: ChainId,
        reply: oneshot::Sender<Result<crate::journal::BackupSource, NodeError>>,
    ) {
        if !self.chains.contains_key(&chain) {
            let _ = reply.send(Err(NodeError::UnknownChain(chain)));
            return;
        }
        let Some(j) = &self.journal else {
            let _ = reply.send(Err(NodeError::NoData));
            return;
        };
        // The writer thread answers; relay its answer without holding up the loop.
        let (tx, rx) = oneshot::channel();
        j.backup(chain, tx);
        tokio::spawn(async move {
            let r = match rx.await {
                Ok(r) => r.map_err(|e| NodeError::Storage(chain, e)),
                Err(_) => Err(NodeError::Closed),
            };
            let _ = reply.send(r);
        });
    }

    pub(super) fn mark_broken(&mut self, chain: ChainId, e: &str) {
        if let std::collections::btree_map::Entry::Vacant(v) = self.broken.entry(chain) {
            tracing::error!(
                chain = %chain.short(),
                "the redo log failed ({e}); refusing writes to this chain until restart"
            );
            v.insert(e.to_string());
        }
    }
}

/// Feeds a log's envelopes to a replica in chunks while the log is read.
struct ReplayState {
    replica: Option<Replica>,
    chunk: Vec<Vec<u8>>,
    checker: Arc<Prechecked>,
    config: ate_protocol::Config,
    error: Option<String>,
    invalid: u64,
    /// Frames read so far, and how many a restored snapshot already covers.
    seen: u64,
    skip: u64,
    last: Option<EventId>,
    mismatch: std::rc::Rc<std::cell::Cell<bool>>,
}

impl ReplayState {
    fn push(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        // Frames a snapshot covers are already in the replica; the last of them must be the
        // event the snapshot names, or the two do not belong together.
        if self.seen < self.skip {
            self.seen += 1;
            if self.seen == self.skip {
                let id = self
                    .replica
                    .as_ref()
                    .and_then(|r| ate_protocol::event::envelope_id(Some(&r.chain()), bytes))
                    .map(|(id, _)| id);
                let genesis_only = self.skip == 1;
                if !genesis_only && id != self.last {
                    self.mismatch.set(true);
                }
            }
            return;
        }
        if self.replica.is_none() {
            let checker: Arc<dyn ate_protocol::verify::SignatureCheck> = self.checker.clone();
            match Replica::with_checker(bytes, self.config.clone(), checker) {
                Ok(r) => self.replica = Some(r),
                Err(e) => self.error = Some(format!("the log's first frame is not a genesis: {e}")),
            }
            return;
        }
        self.chunk.push(bytes.to_vec());
        if self.chunk.len() >= REPLAY_CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        if self.chunk.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.chunk);
        for o in r.handle(0, Input::Replay(events)) {
            if let Output::Verdict {
                verdict: Verdict::Invalid(_),
                ..
            } = o
            {
                self.invalid += 1;
            }
        }
    }
}
