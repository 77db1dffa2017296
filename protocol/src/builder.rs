//! Building the next valid event for a writer.
//!
//! Given a signing key and a replica, [`Writer`] fills in what the rules demand: parents are the
//! replica's heads (at most 16, the most recent first), `prev`/`seq` continue the author's own
//! chain, `clock` is one above the parents', and a put continues the key's current record. The
//! CLI, the library API, the tests and the simulator all build events this way.

use crate::event::{
    Body, BodyKind, Event, Genesis, Grant, Header, MAX_PARENTS, Params, Put, PutValue, Revoke,
    Rights, VERSION,
};
use crate::ids::{ChainId, EventId, PublicKey, SecretKey};
use crate::replica::Replica;

/// Builds and signs a chain's genesis event.
pub fn genesis(
    name: &str,
    key: &SecretKey,
    extra_roots: &[PublicKey],
    params: Params,
    nonce: u64,
    time_ms: u64,
) -> Event {
    let mut roots: Vec<PublicKey> = extra_roots.to_vec();
    roots.push(key.public());
    roots.sort();
    roots.dedup();
    let body = Body::Genesis(Genesis {
        name: name.to_string(),
        roots,
        params,
        nonce,
    });
    let header = Header {
        version: VERSION,
        author: key.public(),
        seq: 0,
        prev: None,
        parents: Vec::new(),
        clock: 0,
        time_ms,
        body_hash: [0; 32],
        body_kind: BodyKind::Genesis,
    };
    Event::sign(None, header, &body, key)
}

/// A writer: a signing key that builds events on top of a replica's state.
#[derive(Debug, Clone)]
pub struct Writer {
    key: SecretKey,
}

impl Writer {
    /// A writer signing with `key`.
    pub fn new(key: SecretKey) -> Writer {
        Writer { key }
    }

    /// The writer's public key.
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// Builds the next event carrying `body` on top of `replica`'s current heads.
    pub fn event(&self, replica: &Replica, body: Body, time_ms: u64) -> Event {
        let mut heads: Vec<(u64, EventId)> = replica
            .heads()
            .into_iter()
            .map(|h| (replica.clock_of(&h).unwrap_or(0), h))
            .collect();
        heads.sort_by(|a, b| b.cmp(a));
        heads.truncate(MAX_PARENTS);
        let clock = 1 + heads.iter().map(|h| h.0).max().unwrap_or(0);
        let mut parents: Vec<EventId> = heads.into_iter().map(|h| h.1).collect();
        parents.sort();
        let (prev, seq) = match replica.author_head(&self.key.public()) {
            Some((id, seq)) => (Some(id), seq + 1),
            None => (None, 0),
        };
        let header = Header {
            version: VERSION,
            author: self.key.public(),
            seq,
            prev,
            parents,
            clock,
            time_ms,
            body_hash: [0; 32],
            body_kind: body.kind(),
        };
        let chain: ChainId = replica.chain();
        Event::sign(Some(&chain), header, &body, &self.key)
    }

    /// A put continuing the key's current record (or starting one).
    pub fn put(&self, replica: &Replica, key: &str, value: PutValue, time_ms: u64) -> Event {
        let (previous, seq) = match replica.latest_slot_info(key) {
            Some((id, seq)) => (Some(id), seq + 1),
            None => (None, 0),
        };
        let body = Body::Put(Put {
            key: key.to_string(),
            previous,
            seq,
            value,
        });
        self.event(replica, body, time_ms)
    }

    /// A put of a JSON value.
    pub fn put_json(
        &self,
        replica: &Replica,
        key: &str,
        value: &serde_json::Value,
        time_ms: u64,
    ) -> Event {
        self.put(replica, key, PutValue::Json(value.to_string()), time_ms)
    }

    /// A grant of `rights` over `scope` to `to`.
    pub fn grant(
        &self,
        replica: &Replica,
        to: PublicKey,
        scope: &str,
        rights: Rights,
        time_ms: u64,
    ) -> Event {
        self.event(
            replica,
            Body::Grant(Grant {
                to,
                scope: scope.to_string(),
                rights,
            }),
            time_ms,
        )
    }

    /// A revocation of `key`'s rights inside `scope`.
    pub fn revoke(&self, replica: &Replica, key: PublicKey, scope: &str, time_ms: u64) -> Event {
        self.event(
            replica,
            Body::Revoke(Revoke {
                key,
                scope: scope.to_string(),
            }),
            time_ms,
        )
    }
}
