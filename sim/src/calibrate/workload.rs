//! The scenario's workload, played against real nodes over their HTTP API: the root creates
//! the chain on node 0 and grants `Write` to the writers (nodes `1..=writers`), then puts go
//! out at the scenario's rate, round robin over the writers, each signed here from a template
//! the writer's node serves (as `ate put` does), with the scenario's key count and value size.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ate_protocol::event::Grant;
use ate_protocol::{
    Body, ChainId, EventId, Params, PutValue, Rights, SecretKey, Template, Writer, genesis,
};

use crate::cluster::{Cluster, wait_for};
use crate::http;

/// One put the harness made.
#[derive(Debug, Clone)]
pub(crate) struct Put {
    pub(crate) id: EventId,
    /// The node it was written on.
    pub(crate) node: usize,
    /// When the API acknowledged it.
    pub(crate) acked: Instant,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tiny deterministic generator for keys and values (splitmix64).
#[derive(Debug)]
pub(crate) struct Mix(pub(crate) u64);

impl Mix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn key(&mut self) -> SecretKey {
        let mut seed = [0u8; 32];
        for c in seed.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        SecretKey::from_seed(seed)
    }
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn template(api: SocketAddr, chain: &ChainId, w: &Writer, key: Option<&str>) -> Result<Template> {
    let mut path = format!("/v1/chains/{chain}/template?author={}", w.public());
    if let Some(k) = key {
        path.push_str(&format!("&key={k}"));
    }
    let v = http::ok(api, "GET", &path, None)?;
    serde_json::from_value(v).context("the node's template does not parse")
}

fn submit(api: SocketAddr, chain: &ChainId, ev: &ate_protocol::Event) -> Result<()> {
    let body = serde_json::json!({ "events": [hex(&ev.encode())] }).to_string();
    let v = http::ok(
        api,
        "POST",
        &format!("/v1/chains/{chain}/events"),
        Some(&body),
    )?;
    let verdict = v["results"][0]["verdict"].as_str().unwrap_or("?");
    if verdict != "valid" {
        bail!("node {api} answered {verdict} to {}: {v}", ev.id.short());
    }
    Ok(())
}

/// Creates the chain on node 0, has every node follow it, grants the writers, and waits until
/// every node holds all of that.
pub(crate) fn setup(c: &Cluster, writers: usize, rng: &mut Mix) -> Result<(ChainId, Vec<Writer>)> {
    let root_key = rng.key();
    let nonce = rng.next();
    let g = genesis(
        "calibrate",
        &root_key,
        &[],
        Params::default(),
        nonce,
        wall_ms(),
    );
    let root = Writer::new(root_key);
    let body = serde_json::json!({ "genesis": hex(&g.encode()) }).to_string();
    let v = http::ok(c.layout.api(0), "POST", "/v1/chains", Some(&body))?;
    let chain: ChainId = v["chain"]
        .as_str()
        .context("no chain id in the answer")?
        .parse()?;
    for i in 1..c.nodes {
        let path = format!("/v1/chains/{chain}/follow");
        http::ok(c.layout.api(i), "POST", &path, Some("{}"))?;
    }
    let ws: Vec<Writer> = (0..writers).map(|_| Writer::new(rng.key())).collect();
    let api0 = c.layout.api(0);
    for w in &ws {
        let t = template(api0, &chain, &root, None)?;
        let body = Body::Grant(Grant {
            to: w.public(),
            scope: String::new(),
            rights: Rights::Write,
        });
        submit(api0, &chain, &root.build(&t, body, wall_ms()))?;
    }
    let want = 1 + writers as u64;
    for i in 0..c.nodes {
        let mut last = serde_json::Value::Null;
        let res = wait_for(
            &format!("node {i} to hold the genesis and the grants"),
            Duration::from_secs(60),
            || {
                let s = c.status(i)?;
                let ch = &s["chains"][0];
                // (The chain's `peers` is not waited for: a node that follows a chain by id
                // does not count peers that subscribed before its genesis arrived.)
                let ok = ch["events"].as_u64()? >= want;
                last = ch.clone();
                ok.then_some(())
            },
        );
        res.with_context(|| format!("last status of the chain on node {i}: {last}"))?;
    }
    Ok((chain, ws))
}

/// The puts: `events` of them at `rate_per_s`, writer `seq % writers` on node `1 + that`.
pub(crate) fn puts(
    c: &Cluster,
    chain: &ChainId,
    writers: &[Writer],
    wl: &ate_sim::scenario::Workload,
    rng: &mut Mix,
) -> Result<Vec<Put>> {
    let gap = Duration::from_secs_f64(1.0 / wl.rate_per_s);
    let pad = "x".repeat(wl.value_bytes.saturating_sub(20));
    let start = Instant::now();
    let mut out = Vec::with_capacity(wl.events);
    for seq in 0..wl.events {
        let due = start + gap * seq as u32;
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let w = seq % writers.len();
        let node = 1 + w;
        let api = c.layout.api(node);
        let key = format!("k{:05}", rng.next() % wl.keys as u64);
        let value = serde_json::json!({ "n": seq, "pad": pad }).to_string();
        let t = template(api, chain, &writers[w], Some(&key))?;
        let ev = writers[w].put_from(&t, &key, PutValue::Json(value), wall_ms());
        submit(api, chain, &ev)?;
        out.push(Put {
            id: ev.id,
            node,
            acked: Instant::now(),
        });
    }
    Ok(out)
}
