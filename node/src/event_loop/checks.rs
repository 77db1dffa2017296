//! Signature checks off the event loop: batches go to blocking threads and come back, in
//! order, with their verdicts (see `crate::preverify`).

use super::*;
use crate::preverify;

impl EventLoop {
    pub(super) fn enqueue(&mut self, chain: ChainId, work: Work) {
        let seq = self.next_job;
        self.next_job += 1;
        self.to_check.push_back(Job { seq, chain, work });
        self.start_checks();
    }

    /// Sends queued jobs to blocking threads, up to the limit.
    pub(super) fn start_checks(&mut self) {
        while self.checking < max_check_jobs() {
            let Some(job) = self.to_check.pop_front() else {
                return;
            };
            self.checking += 1;
            let tx = self.checked_tx.clone();
            tokio::task::spawn_blocking(move || {
                let verdicts = match &job.work {
                    Work::Gossip { events, .. } | Work::Sync { events, .. } => {
                        preverify::check_envelopes(&job.chain, events)
                    }
                    Work::Local { events, .. } => preverify::check_events(events),
                };
                // The loop is gone only at shutdown; the batch is then moot.
                let _ = tx.send(Checked { job, verdicts });
            });
        }
    }

    /// A job's signatures are checked: feed it (and any later ones already done) in order.
    pub(super) fn on_checked(&mut self, done: Checked) {
        self.checking = self.checking.saturating_sub(1);
        self.checked.insert(done.job.seq, done);
        while let Some(next) = self.checked.remove(&self.next_feed) {
            self.next_feed += 1;
            self.checker.install(next.verdicts);
            let chain = next.job.chain;
            match next.job.work {
                Work::Local { events, reply } => {
                    let result = self.finish_submit(chain, events);
                    self.after_durable(Action::Reply(reply, result));
                }
                Work::Gossip {
                    events,
                    waiting,
                    tallies,
                    tags,
                } => self.validate_gossip(chain, events, waiting, tallies, tags),
                Work::Sync { from, events } => {
                    self.sync_jobs = self.sync_jobs.saturating_sub(1);
                    self.progress.entry(chain).or_default().received += events.len() as u64;
                    let more = false;
                    let msg = SyncMsg::Events { events, more };
                    self.feed(chain, Input::Sync { from, msg }, None);
                }
            }
            self.checker.clear();
        }
        self.release_more();
        self.start_checks();
    }
}
