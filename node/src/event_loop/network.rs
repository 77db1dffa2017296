//! The event loop's network side: swarm events, gossip bundles in and out (validated in
//! batches), and the `/ate/sync/1` requests and responses.

use super::*;

/// Listen addresses kept per peer from identify.
const MAX_ADDRS_PER_PEER: usize = 16;

impl EventLoop {
    pub(super) fn publish(&mut self, chain: ChainId, bytes: Vec<u8>) {
        let Some(c) = self.chains.get(&chain) else {
            return;
        };
        let topic = c.topic.clone();
        let len = bytes.len() as u64;
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, bytes.clone())
        {
            Ok(_) => {
                Metrics::add(&self.metrics.gossip_out_msgs, 1);
                Metrics::add(&self.metrics.gossip_out_bytes, len);
            }
            Err(gossipsub::PublishError::AllQueuesFull(_)) => {
                // Backpressure: keep it and retry on the next tick; never drop a local write
                // (it is stored either way, and sync reaches peers that miss the gossip).
                Metrics::add(&self.metrics.gossip_backpressure, 1);
                if self.retry.len() < MAX_RETRY {
                    self.retry.push_back((chain, bytes));
                }
            }
            Err(e) => tracing::debug!(chain = %chain.short(), "publish: {e}"),
        }
    }

    pub(super) fn send_request(&mut self, peer: libp2p::PeerId, chain: ChainId, msg: SyncMsg) {
        Metrics::add(&self.metrics.sync_out_msgs, 1);
        Metrics::add(&self.metrics.sync_out_bytes, wire_len(&msg) as u64);
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest { chain, msg });
        self.in_flight.insert(id, chain);
    }

    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossip(e),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.on_sync(e),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let addrs = found.iter().map(|(_, a)| a.clone()).collect();
                for (peer, addr) in found {
                    let entry = self
                        .lan_peers
                        .entry(peer)
                        .or_insert_with(|| (Vec::new(), Instant::now()));
                    if !entry.0.contains(&addr) {
                        entry.0.push(addr);
                    }
                }
                self.dial(addrs);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                for (peer, _) in gone {
                    self.lan_peers.remove(&peer);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                libp2p::identify::Event::Received { peer_id, info, .. },
            )) => {
                // A peer reports a handful of addresses; a long list is cut, not trusted.
                for addr in info.listen_addrs.into_iter().take(MAX_ADDRS_PER_PEER) {
                    self.peer_addrs.insert(addr.clone(), peer_id);
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!("listening on {address}"),
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::info!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                if endpoint.is_dialer() {
                    (self.peer_addrs).insert(endpoint.get_remote_address().clone(), peer_id);
                }
                let wanted: Vec<ChainId> = self.wanted.iter().copied().collect();
                for chain in wanted {
                    self.send_request(
                        peer_id,
                        chain,
                        SyncMsg::GetEvents {
                            ids: vec![chain.into()],
                        },
                    );
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.last_sync_in.retain(|(_, p), _| *p != peer_id);
                self.peer_addrs.retain(|_, p| *p != peer_id);
                tracing::info!(peer = %peer_id, "disconnected");
                let n = self.peers.num(&peer_id);
                let chains: Vec<ChainId> = self.chains.keys().copied().collect();
                for chain in chains {
                    if let Some(c) = self.chains.get_mut(&chain) {
                        c.peers.remove(&peer_id);
                    }
                    self.feed(chain, Input::PeerDown(n), None);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "outgoing connection failed: {error}");
            }
            _ => {}
        }
    }

    pub(super) fn on_gossip(&mut self, e: gossipsub::Event) {
        match e {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                Metrics::add(&self.metrics.gossip_in_msgs, 1);
                Metrics::add(&self.metrics.gossip_in_bytes, message.data.len() as u64);
                let Some(&chain) = self.topics.get(&message.topic) else {
                    self.validate(&message_id, &propagation_source, MessageAcceptance::Ignore);
                    return;
                };
                match crate::bundle::decode(&message.data) {
                    Ok(events) => {
                        Metrics::add(&self.metrics.gossip_in_events, events.len() as u64);
                        self.gossip_events += events.len();
                        self.gossip.push(Gossiped {
                            chain,
                            source: propagation_source,
                            msg_id: message_id,
                            events,
                        });
                    }
                    Err(e) => {
                        tracing::debug!(peer = %propagation_source, "rejecting gossip: {e}");
                        self.validate(&message_id, &propagation_source, MessageAcceptance::Reject);
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                if let Some(&chain) = self.topics.get(&topic) {
                    if let Some(c) = self.chains.get_mut(&chain) {
                        c.peers.insert(peer_id);
                    }
                    // One end starts on subscription (two sessions would each find the
                    // difference, and each end would send it); a follower also starts one
                    // itself when it installs the chain.
                    if self.peer_id() < peer_id {
                        let n = self.peers.num(&peer_id);
                        self.feed(chain, Input::PeerUp(n), None);
                    }
                }
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                if let Some(c) = self
                    .topics
                    .get(&topic)
                    .and_then(|id| self.chains.get_mut(id))
                {
                    c.peers.remove(&peer_id);
                }
            }
            _ => {}
        }
    }

    pub(super) fn validate(
        &mut self,
        id: &MessageId,
        source: &libp2p::PeerId,
        a: MessageAcceptance,
    ) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, a);
    }

    /// Validates the buffered gossip messages, one replica call per chain, and reports each
    /// message's verdict to gossipsub: all valid (or known) → forward; anything waiting on a
    /// missing dependency, or nothing new → ignore; anything invalid → reject (the sender is
    /// penalised).
    pub(super) fn flush_gossip(&mut self) {
        if self.gossip.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.gossip);
        self.gossip_events = 0;
        Metrics::add(&self.metrics.gossip_batches, 1);
        let mut by_chain: BTreeMap<ChainId, Vec<Gossiped>> = BTreeMap::new();
        for g in batch {
            by_chain.entry(g.chain).or_default().push(g);
        }
        for (chain, msgs) in by_chain {
            // Verdicts name the event id; match them back to messages by id.
            let mut waiting: HashMap<_, VecDeque<usize>> = HashMap::new();
            let mut events = Vec::new();
            let mut tags = Vec::with_capacity(msgs.len());
            let mut tallies = vec![Tally::default(); msgs.len()];
            for (i, m) in msgs.into_iter().enumerate() {
                for data in m.events {
                    match ate_protocol::event::envelope_id(Some(&chain), &data) {
                        Some((id, _)) => waiting.entry(id).or_default().push_back(i),
                        None => tallies[i].undecided += 1,
                    }
                    events.push(data);
                }
                tags.push((m.msg_id, m.source));
            }
            self.enqueue(
                chain,
                Work::Gossip {
                    events,
                    waiting,
                    tallies,
                    tags,
                },
            );
        }
    }

    /// Feeds a checked gossip batch to its replica and reports each message's verdict.
    pub(super) fn validate_gossip(
        &mut self,
        chain: ChainId,
        events: Vec<Vec<u8>>,
        mut waiting: HashMap<ate_protocol::EventId, VecDeque<usize>>,
        mut tallies: Vec<Tally>,
        tags: Vec<(MessageId, libp2p::PeerId)>,
    ) {
        let source = tags.first().map(|m| m.1);
        let from = source.map(|s| self.peers.num(&s)).unwrap_or(PeerId(0));
        let outputs = self.feed(chain, Input::Fetched { from, events }, None);
        // Events of this batch waiting for a dependency → the messages carrying them.
        let mut pending: HashMap<ate_protocol::EventId, Vec<usize>> = HashMap::new();
        for o in outputs {
            let Output::Verdict {
                id: Some(id),
                verdict,
                ..
            } = o
            else {
                continue;
            };
            if let Some(i) = waiting.get_mut(&id).and_then(VecDeque::pop_front) {
                let t = &mut tallies[i];
                match verdict {
                    Verdict::Valid => t.valid += 1,
                    Verdict::Invalid(_) => t.invalid += 1,
                    Verdict::Pending { .. } => {
                        t.waiting += 1;
                        pending.entry(id).or_default().push(i);
                    }
                    Verdict::Overloaded => t.dropped += 1,
                    Verdict::Duplicate => {}
                }
            } else if !matches!(verdict, Verdict::Pending { .. })
                && let Some(msgs) = pending.remove(&id)
            {
                // It waited for another event of the same batch, which came first.
                for i in msgs {
                    let t = &mut tallies[i];
                    t.waiting -= 1;
                    match verdict {
                        Verdict::Valid | Verdict::Duplicate => t.valid += 1,
                        Verdict::Invalid(_) => t.invalid += 1,
                        _ => t.dropped += 1,
                    }
                }
            }
        }
        // Ids that never got a verdict: the replica could not read them.
        for idxs in waiting.values() {
            for &i in idxs {
                tallies[i].undecided += 1;
            }
        }
        let mut waits: Vec<Vec<ate_protocol::EventId>> = vec![Vec::new(); tallies.len()];
        for (id, msgs) in pending {
            for i in msgs {
                waits[i].push(id);
            }
        }
        let now = std::time::Instant::now();
        for (((msg_id, source), t), ids) in tags.into_iter().zip(tallies).zip(waits) {
            // Only a message that would be forwarded once its waiting events are stored is
            // held (see `waiting`); the rest are judged now.
            let holdable = t.waiting > 0 && t.invalid == 0 && t.undecided == 0 && t.dropped == 0;
            if holdable
                && self
                    .waiting_gossip
                    .hold(chain, msg_id.clone(), source, &ids, now)
            {
                continue;
            }
            self.after_durable(Action::Validate(msg_id, source, t.acceptance()));
        }
    }

    pub(super) fn on_sync(&mut self, e: request_response::Event<SyncRequest, SyncResponse>) {
        match e {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let chain = self.in_flight.remove(&request_id);
                    if let Some(chain) = chain {
                        self.on_response(peer, chain, response);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                self.in_flight.remove(&request_id);
                Metrics::add(&self.metrics.sync_failures, 1);
                tracing::debug!(%peer, "sync request failed: {error}");
            }
            request_response::Event::InboundFailure { error, peer, .. } => {
                Metrics::add(&self.metrics.sync_failures, 1);
                tracing::debug!(%peer, "inbound sync failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    pub(super) fn on_request(
        &mut self,
        peer: libp2p::PeerId,
        req: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        Metrics::add(&self.metrics.sync_in_msgs, 1);
        Metrics::add(&self.metrics.sync_in_bytes, wire_len(&req.msg) as u64);
        let n = self.peers.num(&peer);
        let response = if !self.chains.contains_key(&req.chain) {
            SyncResponse {
                msgs: Vec::new(),
                unknown_chain: true,
            }
        } else if let SyncMsg::Events { events, more } = req.msg {
            self.on_sync_events(peer, req.chain, events, more);
            SyncResponse::default()
        } else {
            let outputs = self.feed(
                req.chain,
                Input::Sync {
                    from: n,
                    msg: req.msg,
                },
                Some(n),
            );
            let msgs: Vec<SyncMsg> = outputs
                .into_iter()
                .filter_map(|o| match o {
                    Output::Send { msg, .. } => Some(msg),
                    _ => None,
                })
                .collect();
            SyncResponse {
                msgs,
                unknown_chain: false,
            }
        };
        let bytes: u64 = response.msgs.iter().map(|m| wire_len(m) as u64).sum();
        Metrics::add(&self.metrics.sync_out_bytes, bytes);
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    pub(super) fn on_response(&mut self, peer: libp2p::PeerId, chain: ChainId, resp: SyncResponse) {
        let bytes: u64 = resp.msgs.iter().map(|m| wire_len(m) as u64).sum();
        Metrics::add(&self.metrics.sync_in_bytes, bytes);
        let n = self.peers.num(&peer);
        if resp.unknown_chain {
            // The peer does not follow it: forget any session we started with it there.
            self.feed(chain, Input::PeerDown(n), None);
            return;
        }
        for msg in resp.msgs {
            if !self.chains.contains_key(&chain) && self.wanted.contains(&chain) {
                self.try_genesis(chain, &msg);
            }
            if !self.chains.contains_key(&chain) {
                continue;
            }
            match msg {
                SyncMsg::Events { events, more } => self.on_sync_events(peer, chain, events, more),
                msg => {
                    self.feed(chain, Input::Sync { from: n, msg }, None);
                }
            }
        }
    }

    /// Synced events go through the signature-check pipeline like gossip. A stream's next
    /// batch is asked for at once (it crosses the network while this one is checked) unless
    /// `MAX_SYNC_JOBS` batches already wait, in which case it is asked for when they drain:
    /// the receiver's checks pace the sender.
    pub(super) fn on_sync_events(
        &mut self,
        peer: libp2p::PeerId,
        chain: ChainId,
        events: Vec<Vec<u8>>,
        more: bool,
    ) {
        let from = self.peers.num(&peer);
        self.last_sync_in.insert((chain, peer), Instant::now());
        if !events.is_empty() {
            self.sync_jobs += 1;
            self.enqueue(chain, Work::Sync { from, events });
        }
        if more {
            self.more_due.push_back((peer, chain));
            self.release_more();
        }
    }

    /// Asks for the next batch of waiting streams while the check pipeline has room.
    pub(super) fn release_more(&mut self) {
        while self.sync_jobs < MAX_SYNC_JOBS {
            let Some((peer, chain)) = self.more_due.pop_front() else {
                return;
            };
            if self.swarm.is_connected(&peer) {
                self.send_request(peer, chain, SyncMsg::More);
            }
        }
    }

    /// A response to a genesis request for a wanted chain: start following it.
    pub(super) fn try_genesis(&mut self, chain: ChainId, msg: &SyncMsg) {
        let SyncMsg::Events { events, .. } = msg else {
            return;
        };
        for bytes in events {
            let is_it = Event::decode(
                None,
                bytes,
                &Params {
                    max_event_bytes: 1 << 20,
                    max_key_bytes: 1 << 20,
                },
            )
            .is_ok_and(|e| e.id.0 == chain.0);
            if is_it && self.add_chain(bytes).is_ok() {
                return;
            }
        }
    }
}
