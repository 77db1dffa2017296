//! Deterministic generated chains, for benchmarks, the simulator and load tests.
//!
//! [`generate`] writes a chain the way a busy deployment would: a root grants `Admin` over a
//! scope to one writer and `Write` to the others; then writers take turns updating records (each update continues its key's record),
//! and every few events one merges two heads so the DAG is not a plain line. Everything is a
//! function of the [`Spec`], so two runs produce byte-identical events. Generating does not go
//! through a replica (that would verify every signature twice); the bench then ingests the
//! result through a real one, which checks it all.

use crate::det::HashMap;

use crate::event::{Body, BodyKind, Event, Header, Params, Put, PutValue, Rights, VERSION};
use crate::ids::{ChainId, EventId, PublicKey, SecretKey};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Number of events after the genesis (grants included).
    pub events: usize,
    /// Writers granted by the root.
    pub writers: usize,
    /// Distinct record keys.
    pub keys: usize,
    /// Approximate JSON value size in bytes.
    pub value_bytes: usize,
    /// Seed for keys and values.
    pub seed: u64,
    /// The root writes the last event (a put of `acks/root`), so every earlier event is in
    /// the causal past of an event by each admin but writer 1: what compaction waits for
    /// before it drops a superseded value (see [`crate::Replica::compact`]).
    pub root_acks: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            events: 10_000,
            writers: 8,
            keys: 1000,
            value_bytes: 100,
            seed: 1,
            root_acks: false,
        }
    }
}

/// A generated chain: the genesis envelope and the other envelopes in causal order.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The genesis envelope.
    pub genesis: Vec<u8>,
    /// Every other event, dependencies first.
    pub events: Vec<Vec<u8>>,
    /// Sum of body bytes of `events`.
    pub body_bytes: usize,
}

struct Author {
    key: SecretKey,
    last: Option<(EventId, u64)>,
}

struct Gen {
    chain: ChainId,
    authors: Vec<Author>,
    /// The two most recent events with their clocks.
    recent: Vec<(EventId, u64)>,
    records: HashMap<String, (EventId, u64)>,
    out: Vec<Vec<u8>>,
    body_bytes: usize,
}

impl Gen {
    fn emit(&mut self, author: usize, body: Body, merge: bool) {
        let take = if merge { 2 } else { 1 };
        let parents_c: Vec<(EventId, u64)> = self.recent.iter().rev().take(take).copied().collect();
        let clock = 1 + parents_c.iter().map(|p| p.1).max().unwrap_or(0);
        let mut parents: Vec<EventId> = parents_c.iter().map(|p| p.0).collect();
        parents.sort();
        parents.dedup();
        let a = &self.authors[author];
        let (prev, seq) = match a.last {
            Some((id, s)) => (Some(id), s + 1),
            None => (None, 0),
        };
        let header = Header {
            version: VERSION,
            author: a.key.public(),
            seq,
            prev,
            parents,
            clock,
            time_ms: 1_700_000_000_000 + clock,
            body_hash: [0; 32],
            body_kind: BodyKind::Put,
        };
        let ev = Event::sign(Some(&self.chain), header, &body, &a.key);
        self.authors[author].last = Some((ev.id, seq));
        if let Body::Put(p) = &body {
            self.records.insert(p.key.clone(), (ev.id, p.seq));
        }
        self.recent.push((ev.id, clock));
        if self.recent.len() > 2 {
            self.recent.remove(0);
        }
        self.body_bytes += ev.body_bytes.len();
        self.out.push(ev.encode());
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x
}

/// Generates a chain per `spec`.
pub fn generate(spec: &Spec) -> Generated {
    let root = SecretKey::from_seed(seed_bytes(spec.seed, 0));
    let genesis = crate::builder::genesis(
        "bench",
        &root,
        &[],
        Params::default(),
        spec.seed,
        1_700_000_000_000,
    );
    let writers = spec.writers.max(1);
    let mut authors = vec![Author {
        key: root,
        last: Some((genesis.id, 0)),
    }];
    for i in 0..writers {
        authors.push(Author {
            key: SecretKey::from_seed(seed_bytes(spec.seed, i as u64 + 1)),
            last: None,
        });
    }
    let mut g = Gen {
        chain: ChainId(genesis.id.0),
        authors,
        recent: vec![(genesis.id, 0)],
        records: HashMap::default(),
        out: Vec::with_capacity(spec.events),
        body_bytes: 0,
    };
    // The root grants: writer 1 is an admin of "users/", the others write everywhere.
    let publics: Vec<PublicKey> = g.authors.iter().map(|a| a.key.public()).collect();
    for (i, pk) in publics.iter().enumerate().skip(1) {
        if g.out.len() >= spec.events {
            break;
        }
        let rights = if i == 1 { Rights::Admin } else { Rights::Write };
        let scope = if i == 1 { "users/" } else { "" };
        g.emit(
            0,
            Body::Grant(crate::event::Grant {
                to: *pk,
                scope: scope.into(),
                rights,
            }),
            false,
        );
    }
    let filler = "x".repeat(spec.value_bytes.saturating_sub(40));
    let mut n = 0u64;
    let last = spec.events.saturating_sub(usize::from(spec.root_acks));
    while g.out.len() < last {
        n += 1;
        let author = 1 + (mix(spec.seed ^ n) as usize % writers);
        let key = format!(
            "users/{}",
            mix(spec.seed.wrapping_add(n)) as usize % spec.keys.max(1)
        );
        let (previous, seq) = match g.records.get(&key) {
            Some((id, s)) => (Some(*id), s + 1),
            None => (None, 0),
        };
        let value = format!("{{\"n\":{n},\"author\":{author},\"pad\":\"{filler}\"}}");
        let body = Body::Put(Put {
            key,
            previous,
            seq,
            value: PutValue::Json(value),
        });
        g.emit(author, body, n.is_multiple_of(4));
    }
    if spec.root_acks && g.out.len() < spec.events {
        let body = Body::Put(Put {
            key: "acks/root".into(),
            previous: None,
            seq: 0,
            value: PutValue::Json(format!("{{\"seen\":{}}}", g.out.len())),
        });
        g.emit(0, body, false);
    }
    Generated {
        genesis: genesis.encode(),
        events: g.out,
        body_bytes: g.body_bytes,
    }
}

fn seed_bytes(seed: u64, i: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (j, chunk) in out.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&mix(seed ^ mix(i.wrapping_add(j as u64 * 0x9e37))).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::{Config, Input, Output, Replica, Verdict};

    #[test]
    fn generated_chains_are_valid_and_deterministic() {
        let spec = Spec {
            events: 500,
            writers: 4,
            keys: 20,
            ..Spec::default()
        };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.events, b.events);
        let mut r = Replica::new(&a.genesis, Config::default()).unwrap();
        let out = r.handle(
            0,
            Input::Fetched {
                from: crate::PeerId(1),
                events: a.events.clone(),
            },
        );
        let valid = out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Verdict {
                        verdict: Verdict::Valid,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(valid, 500);
        assert_eq!(r.view().record_count(), 20);
    }
}
