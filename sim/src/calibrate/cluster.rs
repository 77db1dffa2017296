//! Real processes on loopback: one dnsmasq answering the join name with every node's
//! address, and `ate node run` per node, each on its own 127.0.0.x address. Every child is
//! killed and reaped when its [`Proc`] is dropped, so an error or a panic anywhere in the
//! harness still leaves nothing running.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::http;

/// A child process, killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Fails if the process has already exited (a bind error, a bad flag).
    fn check_alive(&mut self, what: &str, log: &Path) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!("{what} exited with {status}; last log lines: {tail:?}");
        }
        Ok(())
    }
}

/// Where the cluster lives.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The `ate` binary.
    pub(crate) ate: PathBuf,
    /// Node `i` listens on `base_ip + i`.
    pub(crate) base_ip: Ipv4Addr,
    /// libp2p TCP port (same on every address).
    pub(crate) p2p_port: u16,
    /// HTTP API port (same on every address).
    pub(crate) api_port: u16,
    /// dnsmasq's port, on `base_ip - 1`.
    pub(crate) dns_port: u16,
    /// Logs and the hosts file.
    pub(crate) dir: PathBuf,
    /// Extra arguments for every `ate node run`.
    pub(crate) node_args: Vec<String>,
}

impl Layout {
    pub(crate) fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base_ip) + i as u32)
    }
    pub(crate) fn api(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.ip(i), self.api_port))
    }
    fn dns(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::from(u32::from(self.base_ip) - 1), self.dns_port))
    }
}

/// The running cluster (dropping it stops everything).
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) layout: Layout,
    pub(crate) nodes: usize,
    procs: Vec<Proc>,
}

const JOIN_NAME: &str = "calibrate.ate.test";

/// Starts dnsmasq, then the nodes, and waits until every node is connected to every other.
pub(crate) fn start(layout: Layout, nodes: usize) -> Result<Cluster> {
    std::fs::create_dir_all(&layout.dir)
        .with_context(|| format!("cannot create {}", layout.dir.display()))?;
    let mut c = Cluster {
        layout,
        nodes,
        procs: Vec::new(),
    };
    c.start_dns()?;
    for i in 0..nodes {
        c.start_node(i)?;
    }
    let deadline = Duration::from_secs(60);
    for i in 0..nodes {
        let api = c.layout.api(i);
        wait_for(
            &format!("node {i} to see {} peers", nodes - 1),
            deadline,
            || {
                let v = http::ok(api, "GET", "/v1/status", None).ok()?;
                (v["peers"].as_u64()? as usize >= nodes - 1).then_some(())
            },
        )?;
        let log = c.layout.dir.join(format!("node{i}.log"));
        c.procs[i + 1].check_alive(&format!("node {i}"), &log)?;
    }
    Ok(c)
}

impl Cluster {
    fn start_dns(&mut self) -> Result<()> {
        let hosts = self.layout.dir.join("hosts");
        let lines: String = (0..self.nodes)
            .map(|i| format!("{} {JOIN_NAME}\n", self.layout.ip(i)))
            .collect();
        std::fs::write(&hosts, lines)?;
        let dns = self.layout.dns();
        let log = self.layout.dir.join("dnsmasq.log");
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            &format!("--addn-hosts={}", hosts.display()),
            &format!("--listen-address={}", dns.ip()),
            "--bind-interfaces",
            &format!("--port={}", dns.port()),
            "--pid-file=",
            "--log-facility=-",
        ]);
        if is_root() {
            cmd.arg("--user=root");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start dnsmasq (install dnsmasq-base)")?;
        let mut p = Proc { child };
        std::thread::sleep(Duration::from_millis(200));
        p.check_alive("dnsmasq", &log)?;
        self.procs.push(p);
        Ok(())
    }

    fn start_node(&mut self, i: usize) -> Result<()> {
        let l = &self.layout;
        let listen = format!("/ip4/{}/tcp/{}", l.ip(i), l.p2p_port);
        let log = l.dir.join(format!("node{i}.log"));
        let child = Command::new(&l.ate)
            .args(["node", "run", "--listen", &listen, "--no-mdns"])
            .args(["--api", &l.api(i).to_string()])
            .args(["--join", &format!("{JOIN_NAME}:{}", l.p2p_port)])
            .args(["--dns-server", &l.dns().to_string()])
            // One resolution at start is enough: every later node dials the earlier ones.
            .args(["--join-interval-secs", "3600"])
            .args(&l.node_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", l.ate.display()))?;
        self.procs.push(Proc { child });
        let api = l.api(i);
        wait_for(
            &format!("node {i}'s API on {api}"),
            Duration::from_secs(20),
            || http::ok(api, "GET", "/v1/status", None).ok().map(|_| ()),
        )
    }

    /// CPU time (user + system) the node processes have used so far, ms.
    pub(crate) fn nodes_cpu_ms(&self) -> f64 {
        self.procs[1..]
            .iter()
            .map(|p| proc_cpu_ms(p.child.id()))
            .sum()
    }

    /// Every node's status.
    pub(crate) fn status(&self, i: usize) -> Option<serde_json::Value> {
        http::ok(self.layout.api(i), "GET", "/v1/status", None).ok()
    }
}

/// User + system CPU time of a process, ms (from `/proc/<pid>/stat`, 100 Hz ticks).
pub(crate) fn proc_cpu_ms(pid: u32) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at `) `.
    let rest = text.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 * 10.0
}

/// Busy and total CPU time of the whole machine so far, ms (from `/proc/stat`).
pub(crate) fn machine_cpu_ms() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else {
        return (0.0, 0.0);
    };
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = f.iter().sum();
    // idle and iowait are the 4th and 5th numbers.
    let idle = f.get(3).copied().unwrap_or(0.0) + f.get(4).copied().unwrap_or(0.0);
    ((total - idle) * 10.0, total * 10.0)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Polls `f` every 20 ms until it returns `Some`, or fails after `deadline`.
pub(crate) fn wait_for<T>(
    what: &str,
    deadline: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
