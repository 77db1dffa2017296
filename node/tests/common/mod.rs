//! Helpers for node tests: real `ate` processes, in-process nodes, waiting on conditions.
#![allow(dead_code, unreachable_pub, clippy::expect_used)] // test helpers: a failed spawn should fail the test loudly

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Polls `f` every 25 ms until it returns `Some`, panicking after `deadline` with `what`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Async variant of [`wait_for`].
pub async fn wait_async<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    deadline: Duration,
    mut f: impl FnMut() -> Fut,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The addresses an in-process node listens on, once it has some.
pub async fn listen_addrs(node: &ate_node::Node) -> Vec<libp2p::Multiaddr> {
    wait_async("a listen address", Duration::from_secs(10), || async {
        let s = node.client().status().await.ok()?;
        let a: Vec<libp2p::Multiaddr> = s.listen.iter().filter_map(|a| a.parse().ok()).collect();
        (!a.is_empty()).then_some(a)
    })
    .await
}

pub fn ate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ate")
}

/// Runs an `ate` client command (optionally inside a network namespace).
pub fn ate(netns: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, ate_bin()]);
            c
        }
        None => Command::new(ate_bin()),
    };
    cmd.args(args).output().expect("run ate")
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ate failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ate node run` with `args`, logging to `log`.
pub fn node(netns: Option<&str>, args: &[&str], log: &Path) -> Proc {
    let file = std::fs::File::create(log).expect("log file");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, ate_bin()]);
            c
        }
        None => Command::new(ate_bin()),
    };
    cmd.args(["node", "run"]).args(args);
    cmd.env("RUST_LOG", "info,libp2p_mdns=warn,libp2p_gossipsub=warn");
    cmd.stdout(Stdio::null()).stderr(file);
    Proc(cmd.spawn().expect("spawn ate node run"))
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The `digest` of the first chain in `ate status --json`.
pub fn digest(netns: Option<&str>, api: &str) -> Option<String> {
    let out = ate(netns, &["status", "--json", "--api", api]);
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["chains"][0]["digest"].as_str().map(String::from)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An HTTP client that returns error statuses as responses.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Whether the API at `api` answers.
pub fn api_up(api: &str) -> bool {
    agent()
        .get(&format!("http://{api}/v1/status"))
        .call()
        .is_ok()
}

/// (events, digest) of the first chain, if the API answers and follows a chain.
pub fn chain_status(api: &str) -> Option<(usize, String)> {
    let mut r = agent()
        .get(&format!("http://{api}/v1/status"))
        .call()
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
    let c = &v["chains"][0];
    Some((
        c["events"].as_u64()? as usize,
        c["digest"].as_str()?.to_string(),
    ))
}

/// Creates a chain from its genesis through the API.
pub fn post_genesis(api: &str, genesis: &[u8]) {
    let body = serde_json::json!({ "genesis": hex(genesis) }).to_string();
    let r = agent()
        .post(&format!("http://{api}/v1/chains"))
        .header("content-type", "application/json")
        .send(&body)
        .expect("create chain");
    assert_eq!(r.status().as_u16(), 200);
}

/// Submits envelopes; `Some(response)` when the node answered 200.
pub fn post_events(
    api: &str,
    chain: &ate_protocol::ChainId,
    envelopes: &[Vec<u8>],
) -> Option<serde_json::Value> {
    let events: Vec<String> = envelopes.iter().map(|e| hex(e)).collect();
    let body = serde_json::json!({ "events": events }).to_string();
    let mut r = agent()
        .post(&format!("http://{api}/v1/chains/{chain}/events"))
        .header("content-type", "application/json")
        .send(&body)
        .ok()?;
    if r.status().as_u16() != 200 {
        return None;
    }
    serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
}

/// Whether a submit response holds `n` verdicts, each valid or duplicate.
pub fn accepted_all(v: &serde_json::Value, n: usize) -> bool {
    v["results"].as_array().is_some_and(|a| {
        a.len() == n
            && a.iter()
                .all(|x| matches!(x["verdict"].as_str(), Some("valid" | "duplicate")))
    })
}

/// Starts `ate node run` on loopback (no mDNS) with its API on `api`, plus `extra` flags, and
/// waits until the API answers.
pub fn loopback_node(api: &str, extra: &[&str], log: &Path) -> Proc {
    let mut args = vec![
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--api",
        api,
        "--no-mdns",
    ];
    args.extend_from_slice(extra);
    let proc = node(None, &args, log);
    wait_for("the API", Duration::from_secs(20), || {
        api_up(api).then_some(())
    });
    proc
}
