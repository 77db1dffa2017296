//! The libp2p behaviour: gossipsub (one topic per chain), mDNS, identify and the sync
//! request-response protocol, over TCP + noise + yamux and QUIC.

use std::time::Duration;

use ate_protocol::ChainId;
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{Swarm, identify, mdns, noise, tcp, yamux};

use crate::node::NodeConfig;
use crate::wire::{PROTOCOL, SyncCodec};

/// Gossip messages can carry events up to the hard cap on event size.
const MAX_GOSSIP_BYTES: usize = ate_protocol::event::HARD_MAX_EVENT_BYTES + 1024;

/// Connections a node accepts: plenty for a large LAN or mesh, too few for one peer to tie up
/// the node (each connection may carry up to 512 sync streams).
pub(crate) const MAX_CONNECTIONS_PER_PEER: u32 = 4;
const MAX_INCOMING_CONNECTIONS: u32 = 1024;
const MAX_PENDING_INCOMING: u32 = 128;

/// The node's composed behaviour.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) sync: request_response::Behaviour<SyncCodec>,
}

/// The gossip topic of a chain: `ate/1/<chain-id>`.
pub(crate) fn topic_for(chain: &ChainId) -> IdentTopic {
    IdentTopic::new(format!("ate/1/{chain}"))
}

fn gossip_config(mesh: Option<usize>) -> anyhow::Result<gossipsub::Config> {
    let mut b = gossipsub::ConfigBuilder::default();
    if let Some(n) = mesh {
        // gossipsub's rules: outbound_min ≤ mesh_n_low ≤ mesh_n ≤ mesh_n_high, and
        // outbound_min ≤ mesh_n / 2.
        b.mesh_n(n)
            .mesh_n_low(n - 1)
            .mesh_n_high(2 * n)
            .mesh_outbound_min((n / 2).min(2));
    }
    b.heartbeat_interval(Duration::from_millis(500))
        // Events are signed by their authors; gossipsub's own signatures would only cost time.
        .validation_mode(ValidationMode::Anonymous)
        // The replica validates; gossipsub forwards only what it accepts.
        .validate_messages()
        // Message id = blake3 of the whole envelope (event id and signature included): content
        // addressed, and a copy with a forged signature cannot shadow the genuine event.
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(&blake3::hash(&m.data).as_bytes()[..20])
        })
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .connection_handler_queue_len(50_000)
        .build()
        .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))
}

fn identity(config: &NodeConfig) -> anyhow::Result<Keypair> {
    Ok(match config.identity_seed {
        Some(mut seed) => Keypair::ed25519_from_bytes(&mut seed)?,
        None => Keypair::generate_ed25519(),
    })
}

pub(crate) fn build_swarm(config: &NodeConfig) -> anyhow::Result<Swarm<Behaviour>> {
    let gossip_cfg = gossip_config(config.gossip_mesh)?;
    let use_mdns = config.mdns;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(identity(config)?)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_cfg)?;
            let mdns = if use_mdns {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            let identify =
                identify::Behaviour::new(identify::Config::new("/ate/1".into(), key.public()));
            let sync = request_response::Behaviour::new(
                [(PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(30))
                    .with_max_concurrent_streams(512),
            );
            let limits = connection_limits::Behaviour::new(
                ConnectionLimits::default()
                    .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                    .with_max_established_incoming(Some(MAX_INCOMING_CONNECTIONS))
                    .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
            );
            Ok(Behaviour {
                limits,
                gossipsub,
                mdns: Toggle::from(mdns),
                identify,
                sync,
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    Ok(swarm)
}
