//! Building the next valid event for a writer.
//!
//! Given a signing key and a replica, [`Writer`] fills in what the rules demand: parents are the
//! replica's heads (at most 16, the most recent first), `prev`/`seq` continue the author's own
//! chain, `clock` is one above the parents', and a put continues the key's current record. The
//! CLI, the library API, the tests and the simulator all build events this way.

use crate::event::{
    Body, BodyKind, Event, Genesis, Grant, Header, MAX_PARENTS, Params, Put, PutValue, Revoke,
    Rights, Rotate, VERSION,
};
use serde::{Deserialize, Serialize};

use crate::ids::{ChainId, EventId, PublicKey, SecretKey};
use crate::replica::Replica;

/// Builds and signs a chain's genesis event. Its roots cannot rotate; see
/// [`genesis_with_next`] for a chain whose roots can.
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
    sign_genesis(name, key, roots, Vec::new(), params, nonce, time_ms)
}

/// Builds and signs a genesis whose roots pre-commit to their next keys (KERI pre-rotation):
/// `next` is [`crate::event::next_key_commitment`] of the signer's next root key, and each
/// extra root comes with its own commitment. A root later hands its authority to the committed
/// key with [`Writer::rotate`].
pub fn genesis_with_next(
    name: &str,
    key: &SecretKey,
    next: [u8; 32],
    extra_roots: &[(PublicKey, [u8; 32])],
    params: Params,
    nonce: u64,
    time_ms: u64,
) -> Event {
    let mut pairs: Vec<(PublicKey, [u8; 32])> = extra_roots.to_vec();
    pairs.retain(|(k, _)| *k != key.public());
    pairs.push((key.public(), next));
    pairs.sort();
    pairs.dedup_by_key(|p| p.0);
    let (roots, next) = pairs.into_iter().unzip();
    sign_genesis(name, key, roots, next, params, nonce, time_ms)
}

fn sign_genesis(
    name: &str,
    key: &SecretKey,
    roots: Vec<PublicKey>,
    next: Vec<[u8; 32]>,
    params: Params,
    nonce: u64,
    time_ms: u64,
) -> Event {
    let body = Body::Genesis(Genesis {
        name: name.to_string(),
        roots,
        params,
        nonce,
        next,
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

/// Everything a writer needs from a replica to build its next valid event: parents (the
/// heads, at most 16, most recent first), the Lamport clock, the author's own `prev`/`seq`,
/// and for a put the key's current latest version. A node serves this to remote writers so
/// they can sign locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The chain.
    pub chain: ChainId,
    /// Parents, sorted.
    pub parents: Vec<EventId>,
    /// 1 + the parents' highest clock.
    pub clock: u64,
    /// The author's latest event.
    pub prev: Option<EventId>,
    /// The author's next seq.
    pub seq: u64,
    /// For puts: the latest version of the key's record and its record seq.
    pub previous: Option<(EventId, u64)>,
}

impl Template {
    /// The template for `author`'s next event on `replica` (and for a put of `key`).
    pub fn for_writer(replica: &Replica, author: &PublicKey, key: Option<&str>) -> Template {
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
        let (prev, seq) = match replica.author_head(author) {
            Some((id, seq)) => (Some(id), seq + 1),
            None => (None, 0),
        };
        let previous = key.and_then(|k| replica.latest_slot_info(k));
        Template {
            chain: replica.chain(),
            parents,
            clock,
            prev,
            seq,
            previous,
        }
    }
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
        self.build(
            &Template::for_writer(replica, &self.key.public(), None),
            body,
            time_ms,
        )
    }

    /// Builds and signs an event from a template (which may come from a remote node's API:
    /// the writer's key never leaves the writer).
    pub fn build(&self, t: &Template, body: Body, time_ms: u64) -> Event {
        let header = self.header(t, body.kind(), time_ms);
        Event::sign(Some(&t.chain), header, &body, &self.key)
    }

    /// The header [`Writer::build`] signs, before its body hash is filled in.
    pub(crate) fn header(&self, t: &Template, body_kind: BodyKind, time_ms: u64) -> Header {
        Header {
            version: VERSION,
            author: self.key.public(),
            seq: t.seq,
            prev: t.prev,
            parents: t.parents.clone(),
            clock: t.clock,
            time_ms,
            body_hash: [0; 32],
            body_kind,
        }
    }

    /// A root rotation: this writer (a current root) hands its authority to `next_root`, whose
    /// commitment it published earlier, and commits to the key after it.
    pub fn rotate(
        &self,
        replica: &Replica,
        next_root: PublicKey,
        next_commitment: [u8; 32],
        time_ms: u64,
    ) -> Event {
        self.event(
            replica,
            Body::Rotate(Rotate {
                next_root,
                next_commitment,
            }),
            time_ms,
        )
    }

    /// A put continuing the key's current record (or starting one).
    pub fn put(&self, replica: &Replica, key: &str, value: PutValue, time_ms: u64) -> Event {
        let t = Template::for_writer(replica, &self.key.public(), Some(key));
        self.put_from(&t, key, value, time_ms)
    }

    /// A put built from a template made for this key (see [`Template::for_writer`]).
    pub fn put_from(&self, t: &Template, key: &str, value: PutValue, time_ms: u64) -> Event {
        let (previous, seq) = match t.previous {
            Some((id, seq)) => (Some(id), seq + 1),
            None => (None, 0),
        };
        let body = Body::Put(Put {
            key: key.to_string(),
            previous,
            seq,
            value,
        });
        self.build(t, body, time_ms)
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
