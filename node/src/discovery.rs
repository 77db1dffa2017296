//! Join by DNS: resolve `NAME[:PORT]` (A and AAAA) and dial *every* address, again and again,
//! so members added to the name later are found. (libp2p's own DNS transport dials only one
//! address of a name.) A name that does not resolve is a log line and a retry with backoff,
//! never an exit.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use crate::node::Client;

/// Default port of `--join` names (A records carry no port).
pub const DEFAULT_PORT: u16 = 4100;

/// Splits `NAME[:PORT]`.
pub fn parse_join(text: &str) -> anyhow::Result<(String, u16)> {
    match text.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() => {
            let port = port
                .parse()
                .map_err(|_| anyhow::anyhow!("bad port in --join {text}: expected NAME[:PORT]"))?;
            Ok((name.to_string(), port))
        }
        _ if !text.is_empty() => Ok((text.to_string(), DEFAULT_PORT)),
        _ => anyhow::bail!("empty --join name"),
    }
}

fn resolver(dns_server: Option<SocketAddr>) -> anyhow::Result<TokioResolver> {
    match dns_server {
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            let config = ResolverConfig::from_name_servers(vec![ns]);
            Ok(Resolver::builder_with_config(config, TokioRuntimeProvider::default()).build()?)
        }
        None => Ok(Resolver::builder_tokio()?.build()?),
    }
}

/// The TCP multiaddr of an address.
pub fn tcp_addr(ip: IpAddr, port: u16) -> Multiaddr {
    let mut a = Multiaddr::empty();
    a.push(match ip {
        IpAddr::V4(v4) => Protocol::Ip4(v4),
        IpAddr::V6(v6) => Protocol::Ip6(v6),
    });
    a.push(Protocol::Tcp(port));
    a
}

/// Spawns the join loop for one name.
pub(crate) fn spawn_join(
    text: String,
    dns_server: Option<SocketAddr>,
    interval: Duration,
    client: Client,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (name, port) = parse_join(&text)?;
    let resolver = resolver(dns_server)?;
    Ok(tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        loop {
            // A trailing dot makes the name absolute, so no search domain is tried.
            let fqdn = if name.ends_with('.') {
                name.clone()
            } else {
                format!("{name}.")
            };
            match resolver.lookup_ip(fqdn.as_str()).await {
                Ok(found) => {
                    let addrs: Vec<Multiaddr> = found.iter().map(|ip| tcp_addr(ip, port)).collect();
                    tracing::info!(name = %name, addrs = ?addrs, "resolved join name; dialling every address");
                    client.dial(addrs).await;
                    backoff = Duration::from_millis(500);
                    tokio::time::sleep(interval).await;
                }
                Err(e) => {
                    tracing::warn!(name = %name, "cannot resolve join name ({e}); retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(interval);
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_names_parse_with_default_port() {
        assert_eq!(parse_join("mesh.test").unwrap(), ("mesh.test".into(), 4100));
        assert_eq!(
            parse_join("mesh.test:5000").unwrap(),
            ("mesh.test".into(), 5000)
        );
        assert!(parse_join("mesh.test:x").is_err());
        assert!(parse_join("").is_err());
    }
}
