//! Three nodes in three network namespaces joined by a bridge find each other by mDNS alone
//! (no --join) and converge. Needs root (network namespaces) and iproute2; skips with a
//! printed reason otherwise. CI runs as root, so there it runs.

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const NS: [&str; 3] = ["ate-mdns-1", "ate-mdns-2", "ate-mdns-3"];
const BRIDGE_NS: &str = "ate-mdns-br";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Creates the namespaces and removes them again on drop.
struct Net;

impl Net {
    fn up() -> Option<Net> {
        Net::down();
        let net = Net;
        let mut ok = ip(&["netns", "add", BRIDGE_NS])
            && ip(&["-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge"])
            // Link-local multicast (mDNS) must reach every port from the first packet on.
            && ip(&["-n", BRIDGE_NS, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"])
            && ip(&["-n", BRIDGE_NS, "link", "set", "br0", "up"]);
        for (i, ns) in NS.iter().enumerate() {
            let host = format!("veth{i}");
            ok = ok
                && ip(&["netns", "add", ns])
                && ip(&[
                    "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &host,
                    "netns", BRIDGE_NS,
                ])
                && ip(&["-n", BRIDGE_NS, "link", "set", &host, "master", "br0"])
                && ip(&["-n", BRIDGE_NS, "link", "set", &host, "up"])
                && ip(&[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("10.77.0.{}/24", i + 1),
                    "dev",
                    "eth0",
                ])
                && ip(&["-n", ns, "link", "set", "eth0", "up"])
                && ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ok.then_some(net)
    }

    fn down() {
        for ns in NS.iter().chain([&BRIDGE_NS]) {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        Net::down();
    }
}

#[test]
fn three_nodes_find_each_other_by_mdns_in_namespaces() {
    if !is_root() || !have("ip") {
        eprintln!(
            "SKIP three_nodes_find_each_other_by_mdns_in_namespaces: needs root and iproute2 for network namespaces"
        );
        return;
    }
    let Some(_net) = Net::up() else {
        eprintln!(
            "SKIP three_nodes_find_each_other_by_mdns_in_namespaces: cannot create network namespaces here"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api = "127.0.0.1:4180";
    let mut nodes = Vec::new();
    for (i, ns) in NS.iter().enumerate() {
        let listen = format!("/ip4/10.77.0.{}/tcp/4100", i + 1);
        nodes.push(node(
            Some(ns),
            &["--listen", &listen, "--api", api],
            &dir.path().join(format!("{ns}.log")),
        ));
    }
    // The three find each other by mDNS alone: every node has a peer and the mesh is connected
    // (with three nodes: some node sees both others). Convergence below proves the rest.
    let peers = |ns: &str| -> Option<u64> {
        let out = ate(Some(ns), &["status", "--json", "--api", api]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["peers"].as_u64()
    };
    let found = std::panic::catch_unwind(|| {
        wait_for(
            "a connected mesh found by mDNS",
            Duration::from_secs(30),
            || {
                let counts: Vec<u64> = NS.iter().filter_map(|ns| peers(ns)).collect();
                (counts.len() == 3
                    && counts.iter().all(|&c| c >= 1)
                    && counts.iter().any(|&c| c >= 2))
                .then_some(())
            },
        )
    });
    if found.is_err() {
        for n in NS {
            let log =
                std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap_or_default();
            eprintln!("---- {n} log ----\n{log}");
        }
        panic!("the nodes did not find each other by mDNS");
    }
    let key = dir.path().join("root.key");
    ok(&ate(None, &["key", "new", key.to_str().unwrap()]));
    let k = key.to_str().unwrap();
    let chain = ok(&ate(
        Some(NS[0]),
        &["chain", "new", "mdns-test", "--key", k, "--api", api],
    ));
    for ns in &NS[1..] {
        ok(&ate(Some(ns), &["follow", &chain, "--api", api]));
    }
    ok(&ate(
        Some(NS[0]),
        &[
            "put",
            &chain,
            "where",
            r#""namespaces""#,
            "--key",
            k,
            "--api",
            api,
        ],
    ));
    let v = wait_for("node 3 to read the put", Duration::from_secs(20), || {
        let out = ate(Some(NS[2]), &["get", &chain, "where", "--api", api]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    assert_eq!(v, r#""namespaces""#);
    wait_for("equal digests", Duration::from_secs(20), || {
        let d: Vec<String> = NS.iter().filter_map(|ns| digest(Some(ns), api)).collect();
        (d.len() == 3 && d.iter().all(|x| x == &d[0])).then_some(())
    });
}
