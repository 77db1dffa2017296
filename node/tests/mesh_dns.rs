//! Three real `ate node run` processes on 127.0.0.11–13, same port, that find each other only
//! through `--join mesh.test` answered by a real DNS server (dnsmasq) this test starts.
//! Skips (with a printed reason) when dnsmasq is not installed; `.ci/run` installs it.

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn three_processes_join_by_dns_and_converge() {
    if !have("dnsmasq") {
        eprintln!(
            "SKIP three_processes_join_by_dns_and_converge: dnsmasq is not installed (apt-get install dnsmasq-base)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.11 mesh.test\n127.0.0.12 mesh.test\n127.0.0.13 mesh.test\n",
    )
    .unwrap();
    let dns_port = 15353;
    let mut dns = std::process::Command::new("dnsmasq");
    dns.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        &format!("--addn-hosts={}", hosts.display()),
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        &format!("--port={dns_port}"),
        "--pid-file=",
        "--log-facility=-",
    ]);
    if is_root() {
        dns.arg("--user=root");
    }
    let _dns = Proc(
        dns.stderr(std::process::Stdio::null())
            .spawn()
            .expect("start dnsmasq"),
    );

    let dns_server = format!("127.0.0.1:{dns_port}");
    let apis = ["127.0.0.1:14181", "127.0.0.1:14182", "127.0.0.1:14183"];
    let mut nodes = Vec::new();
    for (i, api) in apis.iter().enumerate() {
        let listen = format!("/ip4/127.0.0.{}/tcp/4100", 11 + i);
        let data = dir.path().join(format!("n{i}"));
        nodes.push(node(
            None,
            &[
                "--listen",
                &listen,
                "--api",
                api,
                "--join",
                "mesh.test",
                "--dns-server",
                &dns_server,
                "--no-mdns",
                "--join-interval-secs",
                "2",
                "--data",
                data.to_str().unwrap(),
            ],
            &dir.path().join(format!("n{i}.log")),
        ));
    }
    // Every node sees both others (found only through DNS).
    for api in apis {
        wait_for(
            &format!("{api} to see 2 peers"),
            Duration::from_secs(30),
            || {
                let out = ate(None, &["status", "--json", "--api", api]);
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
                (v["peers"].as_u64()? >= 2).then_some(())
            },
        );
    }
    let key = dir.path().join("root.key");
    ok(&ate(None, &["key", "new", key.to_str().unwrap()]));
    let chain = ok(&ate(
        None,
        &[
            "chain",
            "new",
            "dns-test",
            "--key",
            key.to_str().unwrap(),
            "--api",
            apis[0],
        ],
    ));
    for api in &apis[1..] {
        ok(&ate(None, &["follow", &chain, "--api", api]));
    }
    for api in &apis[1..] {
        wait_for(
            "followers to get the genesis",
            Duration::from_secs(20),
            || digest(None, api),
        );
    }
    ok(&ate(
        None,
        &[
            "put",
            &chain,
            "greeting",
            r#"{"hello":"world"}"#,
            "--key",
            key.to_str().unwrap(),
            "--api",
            apis[0],
        ],
    ));
    let start = Instant::now();
    let value = wait_for("node 3 to read the put", Duration::from_secs(2), || {
        let out = ate(None, &["get", &chain, "greeting", "--api", apis[2]]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    println!(
        "node 3 read the put {:?} after it was acknowledged by node 1",
        start.elapsed()
    );
    assert_eq!(value, r#"{"hello":"world"}"#);
    let d: Vec<String> = apis
        .iter()
        .map(|a| wait_for("digest", Duration::from_secs(5), || digest(None, a)))
        .collect();
    wait_for("equal digests", Duration::from_secs(5), || {
        let d: Vec<String> = apis.iter().filter_map(|a| digest(None, a)).collect();
        (d.len() == 3 && d.iter().all(|x| x == &d[0])).then_some(())
    });
    assert_eq!(d.len(), 3);

    // `--join` resolves the name again every 2 s and dials what it finds; a peer it is
    // connected to is not dialled again, so connections do not pile up: after three more
    // rounds each node has at most two per peer (one dialled each way).
    let log = dir.path().join("n0.log");
    let rounds = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches("resolved join name").count()
    };
    let seen = rounds();
    wait_for("three more join rounds", Duration::from_secs(30), || {
        (rounds() >= seen + 3).then_some(())
    });
    for api in apis {
        let out = ate(None, &["status", "--json", "--api", api]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (peers, conns) = (
            v["peers"].as_u64().unwrap(),
            v["connections"].as_u64().unwrap(),
        );
        assert_eq!(peers, 2, "{api}");
        assert!(
            conns <= 2 * peers,
            "{api}: {conns} connections to {peers} peers"
        );
    }
}
