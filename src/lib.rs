//! # ate
//!
//! A peer-to-peer replicated datastore: every node keeps a view of each chain it follows,
//! gossips signed events, accepts only those whose signatures trace back to the chain's root
//! through grants, and converges on the same view as every other node.
//!
//! This facade is what applications depend on:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ate::prelude::*;
//! let node = ate::Node::start(ate::NodeConfig::local()).await?;
//! let key = SecretKey::from_seed([7; 32]); // use ate::random_key() in real programs
//! let chain = ate::Chain::create(&node, "notes", key).await?;
//! chain.put("users/alice", serde_json::json!({"age": 31})).await?;
//! let alice = chain.get("users/alice").await?;
//! let mut changes = chain.subscribe().await?;
//! # Ok(()) }
//! ```
//!
//! Sealed values (DESIGN §6) and root rotation: give a chain a reader identity with
//! [`Chain::with_reader`], then [`Chain::share`] / [`Chain::unshare`] a scope,
//! [`Chain::put_sealed`] and [`Chain::get_opened`]; [`Chain::create_rotatable`] and
//! [`Chain::rotate`] hand root authority to a pre-committed key. Keys stay in this process:
//! the node stores and forwards sealed values without being able to open them.
//!
//! The protocol core is re-exported as [`protocol`] for code that drives replicas directly
//! (simulations, custom transports).

pub use ate_node::{Client, Node, NodeConfig, NodeError};
pub use ate_protocol as protocol;
use ate_protocol::event::ReadKeyShare;
use ate_protocol::replica::{Verdict, ViewChange};
use ate_protocol::seal::{self, Reader, ReaderSecret, SealWith};
use ate_protocol::{
    ChainId, Condition, Event, Order, PublicKey, PutValue, SecretKey, Version, Writer,
};

/// The names most programs need.
pub mod prelude {
    pub use ate_protocol::{
        Body, ChainId, Condition, Config, Event, EventId, Input, Order, Output, PeerId, PublicKey,
        PutValue, Replica, Rights, SecretKey, SyncMsg, Verdict, Version, Writer, genesis,
    };
}

/// Errors of the facade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node refused or could not do it.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The event was refused (the message says why, e.g. no grant).
    #[error("write refused: {0}")]
    Refused(String),
    /// Sealing or opening failed (no key material in the message).
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    /// A reader operation on a chain handle without a reader identity.
    #[error("this chain handle has no reader key; call Chain::with_reader first")]
    NoReader,
    /// No read key of the scope is held (not shared with this reader, or removed from it).
    #[error("no current read key for scope `{0}` (ask an admin of the scope to share it)")]
    NoReadKey(String),
}

/// 32 bytes from the OS RNG.
fn os_random() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut seed)?;
    Ok(seed)
}

/// A fresh secret key from the OS RNG.
pub fn random_key() -> std::io::Result<SecretKey> {
    os_random().map(SecretKey::from_seed)
}

/// A fresh reader (ML-KEM-768) key from the OS RNG.
pub fn random_reader() -> std::io::Result<ReaderSecret> {
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(&os_random()?);
    seed[32..].copy_from_slice(&os_random()?);
    Ok(ReaderSecret::from_seed(seed))
}

fn rng_error(e: std::io::Error) -> Error {
    Error::Refused(format!("cannot read the OS RNG: {e}"))
}

/// A random genesis nonce, so two chains of one name and root differ.
fn genesis_nonce() -> Result<u64, Error> {
    let seed = os_random().map_err(rng_error)?;
    let mut nonce = [0u8; 8];
    nonce.copy_from_slice(&seed[..8]);
    Ok(u64::from_le_bytes(nonce))
}

/// A chain on an in-process node, with a writer key (and optionally a reader key).
#[derive(Debug, Clone)]
pub struct Chain {
    client: Client,
    id: ChainId,
    writer: Writer,
    reader: Option<ReaderSecret>,
}

impl Chain {
    /// Creates a chain whose root is `key`, on `node`.
    pub async fn create(node: &Node, name: &str, key: SecretKey) -> Result<Chain, Error> {
        let g = ate_protocol::genesis(
            name,
            &key,
            &[],
            Default::default(),
            genesis_nonce()?,
            now_ms(),
        );
        Self::start(node, &g, key).await
    }

    /// Creates a chain whose root `key` pre-commits to its next key (KERI pre-rotation):
    /// `next` is [`protocol::next_key_commitment`] of that key's public half.
    pub async fn create_rotatable(
        node: &Node,
        name: &str,
        key: SecretKey,
        next: [u8; 32],
    ) -> Result<Chain, Error> {
        let g = ate_protocol::genesis_with_next(
            name,
            &key,
            next,
            &[],
            Default::default(),
            genesis_nonce()?,
            now_ms(),
        );
        Self::start(node, &g, key).await
    }

    /// Creates the chain of genesis `g` on `node`, with `key` (its root) as the writer.
    async fn start(node: &Node, g: &ate_protocol::Event, key: SecretKey) -> Result<Chain, Error> {
        let id = node.client().create_chain(g.encode()).await?;
        Ok(Chain {
            client: node.client(),
            id,
            writer: Writer::new(key),
            reader: None,
        })
    }

    /// This handle with a reader identity (see [`random_reader`]).
    pub fn with_reader(mut self, reader: ReaderSecret) -> Chain {
        self.reader = Some(reader);
        self
    }

    /// The public reader identity of this handle (what an admin passes to [`Chain::share`]).
    pub fn reader(&self) -> Option<Reader> {
        Some(Reader {
            id: self.writer.public(),
            kem: self.reader.as_ref()?.public(),
        })
    }

    async fn submit_one(&self, ev: Event) -> Result<(), Error> {
        match self.client.submit(self.id, vec![ev]).await?.pop() {
            Some(Verdict::Valid | Verdict::Duplicate) => Ok(()),
            Some(Verdict::Invalid(r)) => Err(Error::Refused(r.to_string())),
            other => Err(Error::Refused(format!("{other:?}"))),
        }
    }

    async fn publish_shares(&self, shares: Vec<ReadKeyShare>) -> Result<(), Error> {
        for s in shares {
            let w = self.writer.clone();
            let ev = self
                .client
                .read(self.id, move |r| w.share(r, s, now_ms()))
                .await?;
            self.submit_one(ev).await?;
        }
        Ok(())
    }

    /// Gives `reader` the read key of `scope` (this handle must be an `Admin` of it, with a
    /// reader key): the current epoch's key, or a new epoch if there is none yet.
    pub async fn share(&self, reader: &Reader, scope: &str) -> Result<(), Error> {
        let secret = self.reader.clone().ok_or(Error::NoReader)?;
        let me = self.reader().ok_or(Error::NoReader)?;
        let seed = os_random().map_err(rng_error)?;
        let (reader, scope_s) = (reader.clone(), scope.to_string());
        let shares = self
            .client
            .read(self.id, move |r| {
                let ring = r.keyring(&me.id, &secret);
                seal::plan_share(r, &ring, &me, &scope_s, &reader, &seed)
            })
            .await??;
        self.publish_shares(shares).await
    }

    /// Removes `reader` from `scope`: starts a new epoch shared with every other reader.
    /// The removed reader keeps what it could open, and opens nothing written afterwards.
    pub async fn unshare(&self, reader: &PublicKey, scope: &str) -> Result<(), Error> {
        let me = self.reader().ok_or(Error::NoReader)?;
        let seed = os_random().map_err(rng_error)?;
        let (reader, scope_s) = (*reader, scope.to_string());
        let shares = self
            .client
            .read(self.id, move |r| {
                seal::plan_unshare(r, &me, &scope_s, &reader, &seed)
            })
            .await??;
        self.publish_shares(shares).await
    }

    /// Writes `value` under `key`, sealed under the current read key of `scope`.
    pub async fn put_sealed(
        &self,
        key: &str,
        value: serde_json::Value,
        scope: &str,
    ) -> Result<(), Error> {
        let secret = self.reader.clone().ok_or(Error::NoReader)?;
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&os_random().map_err(rng_error)?[..24]);
        let (w, k, s) = (self.writer.clone(), key.to_string(), scope.to_string());
        let ev = self
            .client
            .read(self.id, move |r| {
                let ring = r.keyring(&w.public(), &secret);
                let current = r.read_epoch(&s).map(|e| e.epoch);
                let (epoch, key) = ring
                    .newest(&s)
                    .filter(|(e, _)| Some(*e) == current)
                    .ok_or_else(|| Error::NoReadKey(s.clone()))?;
                let with = SealWith {
                    scope: &s,
                    epoch,
                    key,
                };
                Ok::<_, Error>(w.put_sealed(r, &k, &value, with, nonce, now_ms())?)
            })
            .await??;
        self.submit_one(ev).await
    }

    /// The latest version of `key`, with a sealed value opened if this handle's reader key
    /// holds its epoch key (otherwise it reads as sealed, `value: None`).
    pub async fn get_opened(&self, key: &str) -> Result<Option<Version>, Error> {
        let secret = self.reader.clone().ok_or(Error::NoReader)?;
        let (me, k) = (self.writer.public(), key.to_string());
        Ok(self
            .client
            .read(self.id, move |r| {
                let ring = r.keyring(&me, &secret);
                r.view_as(&ring).get_latest(&k)
            })
            .await?)
    }

    /// Hands this root's authority to `next_root` (which the genesis or the last rotation
    /// committed to) and commits to the key after it. Afterwards this handle can no longer
    /// write: follow the chain with the new key.
    pub async fn rotate(
        &self,
        next_root: PublicKey,
        next_commitment: [u8; 32],
    ) -> Result<(), Error> {
        let w = self.writer.clone();
        let ev = self
            .client
            .read(self.id, move |r| {
                w.rotate(r, next_root, next_commitment, now_ms())
            })
            .await?;
        self.submit_one(ev).await
    }

    /// Follows an existing chain by id, writing (when granted) with `key`.
    pub async fn follow(node: &Node, id: ChainId, key: SecretKey) -> Result<Chain, Error> {
        node.client().follow(id).await?;
        Ok(Chain {
            client: node.client(),
            id,
            writer: Writer::new(key),
            reader: None,
        })
    }

    /// The chain id.
    pub fn id(&self) -> ChainId {
        self.id
    }

    /// Writes a JSON value under `key` and waits until the node has accepted it.
    pub async fn put(&self, key: &str, value: serde_json::Value) -> Result<(), Error> {
        self.write(key, PutValue::Json(value.to_string())).await
    }

    /// Deletes `key` (writes a tombstone version).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        self.write(key, PutValue::Tombstone).await
    }

    async fn write(&self, key: &str, value: PutValue) -> Result<(), Error> {
        let (w, k) = (self.writer.clone(), key.to_string());
        let ev = self
            .client
            .read(self.id, move |r| w.put(r, &k, value, now_ms()))
            .await?;
        self.submit_one(ev).await
    }

    /// The latest version of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Version>, Error> {
        let k = key.to_string();
        Ok(self
            .client
            .read(self.id, move |r| r.view().get_latest(&k))
            .await?)
    }

    /// verifiable-storage-go's ListLatest: pre-filter, latest per record, condition.
    pub async fn list_latest(
        &self,
        pre: Condition,
        condition: Condition,
        order: Option<Order>,
        limit: Option<usize>,
    ) -> Result<Vec<Version>, Error> {
        Ok(self
            .client
            .read(self.id, move |r| {
                r.view()
                    .list_latest(&pre, &condition, order.as_ref(), limit)
            })
            .await?)
    }

    /// Every version matching `condition`.
    pub async fn select(
        &self,
        condition: Condition,
        order: Option<Order>,
        limit: Option<usize>,
    ) -> Result<Vec<Version>, Error> {
        Ok(self
            .client
            .read(self.id, move |r| {
                r.view().select(&condition, order.as_ref(), limit)
            })
            .await?)
    }

    /// The view digest (equal on two nodes iff their views are equal).
    pub async fn digest(&self) -> Result<String, Error> {
        Ok(self.client.read(self.id, |r| r.view().digest_hex()).await?)
    }

    /// A stream of changes to the view.
    pub async fn subscribe(&self) -> Result<tokio::sync::broadcast::Receiver<ViewChange>, Error> {
        Ok(self.client.subscribe(self.id).await?)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
