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
//! The protocol core is re-exported as [`protocol`] for code that drives replicas directly
//! (simulations, custom transports).

pub use ate_node::{Client, Node, NodeConfig, NodeError};
pub use ate_protocol as protocol;
use ate_protocol::replica::{Verdict, ViewChange};
use ate_protocol::{ChainId, Condition, Order, PutValue, SecretKey, Version, Writer};

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

/// A chain on an in-process node, with a writer key.
#[derive(Debug, Clone)]
pub struct Chain {
    client: Client,
    id: ChainId,
    writer: Writer,
}

impl Chain {
    /// Creates a chain whose root is `key`, on `node`.
    pub async fn create(node: &Node, name: &str, key: SecretKey) -> Result<Chain, Error> {
        let seed =
            os_random().map_err(|e| Error::Refused(format!("cannot read the OS RNG: {e}")))?;
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&seed[..8]);
        let g = ate_protocol::genesis(
            name,
            &key,
            &[],
            Default::default(),
            u64::from_le_bytes(nonce),
            now_ms(),
        );
        let id = node.client().create_chain(g.encode()).await?;
        Ok(Chain {
            client: node.client(),
            id,
            writer: Writer::new(key),
        })
    }

    /// Follows an existing chain by id, writing (when granted) with `key`.
    pub async fn follow(node: &Node, id: ChainId, key: SecretKey) -> Result<Chain, Error> {
        node.client().follow(id).await?;
        Ok(Chain {
            client: node.client(),
            id,
            writer: Writer::new(key),
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
        match self.client.submit(self.id, vec![ev]).await?.pop() {
            Some(Verdict::Valid | Verdict::Duplicate) => Ok(()),
            Some(Verdict::Invalid(r)) => Err(Error::Refused(r.to_string())),
            other => Err(Error::Refused(format!("{other:?}"))),
        }
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
