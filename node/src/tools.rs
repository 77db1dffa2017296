//! Redo-log tools: `ate log dump`, `ate backup`, `ate restore` (DESIGN §7).
//!
//! `log dump` and `restore` work on a data directory directly (dump is read-only and safe while
//! the node runs); `backup` asks the running node for a consistent copy over its HTTP API, so
//! it can be taken while the node keeps writing. Progress bars are drawn on stderr when it is a
//! terminal.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ate_protocol::replica::{Input, Output, Verdict};
use ate_protocol::{Body, ChainId, Config, Event, EventId, Params, Replica};
use ate_store::{Backend, FsBackend, Options};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    /// Prints every frame of the redo logs: where it is, its event id, author, kind, clock,
    /// and whether it is valid (the frames are replayed through a replica to judge them).
    #[command(
        after_help = "Examples:\n  ate log dump --data /var/lib/ate\n  ate log dump --data /var/lib/ate --chain chainabc… --json | jq .verdict"
    )]
    Dump(DumpArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// The node's data directory.
    #[arg(long)]
    data: PathBuf,
    /// Only this chain (default: every chain in the data directory).
    #[arg(long)]
    chain: Option<ChainId>,
    /// One JSON object per frame, one per line.
    #[arg(long)]
    json: bool,
    /// Stop after this many frames per chain.
    #[arg(long)]
    limit: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The chain to back up.
    chain: ChainId,
    /// The backup file to write (written to FILE.partial, renamed when complete).
    file: PathBuf,
    /// The node's HTTP API.
    #[arg(long, default_value = "127.0.0.1:4180")]
    api: String,
}

#[derive(Debug, Args)]
pub(crate) struct CompactArgs {
    /// The chain to compact.
    chain: ChainId,
    /// The node's HTTP API.
    #[arg(long, default_value = "127.0.0.1:4180")]
    api: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// A file written by `ate backup`.
    file: PathBuf,
    /// The data directory to restore into (the chain must not have a log there yet). Start a
    /// node on it afterwards: `ate node run --data DIR`.
    #[arg(long)]
    data: PathBuf,
}

fn bar(total: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    b.set_style(style);
    b.set_message(what.to_string());
    b
}

fn logs_backend(data: &Path) -> Arc<dyn Backend> {
    Arc::new(FsBackend::new(data.join("chains")))
}

pub(crate) fn log(cmd: LogCommand) -> anyhow::Result<()> {
    let LogCommand::Dump(a) = cmd;
    let backend = logs_backend(&a.data);
    let chains = match a.chain {
        Some(c) => vec![c],
        None => ate_store::chains(&*backend)
            .with_context(|| format!("cannot read {}", a.data.join("chains").display()))?,
    };
    if chains.is_empty() {
        bail!("no redo logs under {}", a.data.join("chains").display());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for chain in chains {
        dump_chain(&*backend, chain, &a, &mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// A frame waiting for the replica's verdict (frames are judged in chunks).
struct Row {
    json: serde_json::Value,
    id: Option<EventId>,
}

fn dump_chain(
    backend: &dyn Backend,
    chain: ChainId,
    a: &DumpArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let max = Options::default().max_payload_bytes;
    let frames = ate_store::dump(backend, &chain, max)
        .with_context(|| format!("cannot read the log of {chain}"))?;
    let mut total = 0u64;
    let dir = chain.to_string();
    for name in backend.list(&dir).unwrap_or_default() {
        total += backend.file_len(&dir, &name).unwrap_or(0);
    }
    let progress = bar(total, &chain.short());
    let params = Params {
        max_event_bytes: ate_protocol::event::HARD_MAX_EVENT_BYTES as u32,
        max_key_bytes: ate_protocol::event::HARD_MAX_EVENT_BYTES as u32,
    };
    let mut replica: Option<Replica> = None;
    let mut rows: Vec<Row> = Vec::new();
    let mut chunk: Vec<Vec<u8>> = Vec::new();
    let mut count = 0u64;
    if !a.json {
        writeln!(out, "chain {chain}")?;
    }
    for frame in frames {
        if a.limit.is_some_and(|l| count >= l) {
            break;
        }
        count += 1;
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let row = json!({ "chain": chain, "error": e.to_string() });
                rows.push(Row {
                    json: row,
                    id: None,
                });
                continue;
            }
        };
        progress.inc(u64::from(frame.len) + ate_store::FRAME_HEADER_LEN);
        let mut row = json!({
            "chain": chain,
            "segment": frame.segment,
            "offset": frame.offset,
            "len": frame.len,
            "crc_ok": frame.crc_ok,
        });
        let mut id = None;
        if frame.crc_ok {
            let decoded = if replica.is_none() {
                Event::decode(None, &frame.payload, &params)
            } else {
                Event::decode(Some(&chain), &frame.payload, &params)
            };
            match decoded {
                Ok(ev) => {
                    row["id"] = json!(ev.id);
                    row["author"] = json!(ev.header.author);
                    row["seq"] = json!(ev.header.seq);
                    row["clock"] = json!(ev.header.clock);
                    row["kind"] = json!(kind(&ev));
                    if let Some(Body::Put(p)) = &ev.body {
                        row["key"] = json!(p.key);
                    }
                    id = Some(ev.id);
                }
                Err(e) => row["verdict"] = json!(format!("undecodable: {e}")),
            }
            match replica.as_mut() {
                None => match Replica::new(&frame.payload, Config::default()) {
                    Ok(r) => {
                        replica = Some(r);
                        row["verdict"] = json!("valid (genesis)");
                        id = None;
                    }
                    Err(e) => row["verdict"] = json!(format!("not a genesis: {e}")),
                },
                Some(_) => chunk.push(frame.payload),
            }
        } else {
            row["verdict"] = json!("checksum mismatch");
        }
        rows.push(Row { json: row, id });
        if chunk.len() >= 256 {
            judge(replica.as_mut(), &mut chunk, &mut rows, a.json, out)?;
        }
    }
    judge(replica.as_mut(), &mut chunk, &mut rows, a.json, out)?;
    progress.finish_and_clear();
    if !a.json {
        writeln!(out, "{count} frames")?;
    }
    Ok(())
}

fn kind(ev: &Event) -> &'static str {
    match &ev.body {
        Some(Body::Genesis(_)) => "genesis",
        Some(Body::Put(_)) => "put",
        Some(Body::Grant(_)) => "grant",
        Some(Body::Revoke(_)) => "revoke",
        Some(Body::ReadKeyShare(_)) => "read key share",
        Some(Body::Rotate(_)) => "rotate",
        None => "body pruned",
    }
}

/// Replays the pending chunk, attaches each frame's verdict, and prints the rows.
fn judge(
    replica: Option<&mut Replica>,
    chunk: &mut Vec<Vec<u8>>,
    rows: &mut Vec<Row>,
    as_json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut verdicts: HashMap<EventId, Verdict> = HashMap::new();
    if let Some(r) = replica
        && !chunk.is_empty()
    {
        for o in r.handle(0, Input::Replay(std::mem::take(chunk))) {
            if let Output::Verdict {
                id: Some(id),
                verdict,
                ..
            } = o
            {
                verdicts.entry(id).or_insert(verdict);
            }
        }
    }
    for mut row in rows.drain(..) {
        if row.json.get("verdict").is_none() {
            let v = match row.id.and_then(|id| verdicts.get(&id)) {
                Some(Verdict::Valid) => "valid".to_string(),
                Some(Verdict::Duplicate) => "duplicate".to_string(),
                Some(Verdict::Invalid(r)) => format!("invalid: {r}"),
                Some(Verdict::Pending { .. }) => "missing dependencies".to_string(),
                Some(Verdict::Overloaded) => "not judged (too many missing dependencies)".into(),
                None => "not judged".to_string(),
            };
            row.json["verdict"] = json!(v);
        }
        if as_json {
            writeln!(out, "{}", row.json)?;
        } else {
            let j = &row.json;
            let s = |k: &str| {
                j.get(k)
                    .map(|v| v.to_string().trim_matches('"').to_string())
            };
            writeln!(
                out,
                "{}:{} {} {} {} seq={} clock={} {} {}",
                s("segment").unwrap_or_default(),
                s("offset").unwrap_or_default(),
                s("id").map(|i| short(&i)).unwrap_or_else(|| "-".into()),
                s("kind").unwrap_or_else(|| "-".into()),
                s("author").map(|i| short(&i)).unwrap_or_else(|| "-".into()),
                s("seq").unwrap_or_else(|| "-".into()),
                s("clock").unwrap_or_else(|| "-".into()),
                s("key").unwrap_or_default(),
                s("verdict").or_else(|| s("error")).unwrap_or_default(),
            )?;
        }
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(14).collect()
}

/// The API's base URL and an HTTP client without an overall deadline (a backup or a
/// compaction of a big chain takes a while; connecting does not).
fn long_call_client(api: &str) -> (String, ureq::Agent) {
    let base = if api.starts_with("http") {
        api.to_string()
    } else {
        format!("http://{api}")
    };
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .build()
        .into();
    (base, agent)
}

pub(crate) fn backup(a: BackupArgs) -> anyhow::Result<()> {
    let (base, agent) = long_call_client(&a.api);
    let mut resp = agent
        .get(format!("{base}/v1/chains/{}/backup", a.chain))
        .call()
        .with_context(|| {
            format!("cannot reach the node at {base} (is `ate node run` running? see --api)")
        })?;
    if !resp.status().is_success() {
        let body: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
        let msg = body["error"].as_str().unwrap_or("request failed");
        bail!("{msg} (HTTP {})", resp.status().as_u16());
    }
    let partial = a.file.with_extension("partial");
    let result = (|| -> anyhow::Result<u64> {
        let mut f = std::fs::File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let progress = if std::io::stderr().is_terminal() {
            ProgressBar::new_spinner().with_message("backing up")
        } else {
            ProgressBar::hidden()
        };
        let mut reader = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .context("the backup stream broke off (the node logged why)")?;
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n])?;
            total += n as u64;
            progress.set_message(format!("backing up: {} MiB", total >> 20));
            progress.tick();
        }
        f.sync_all()?;
        progress.finish_and_clear();
        Ok(total)
    })();
    let total = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    // The node verified every frame on the way out, and a stream cut short fails the read
    // above (chunked encoding has an end marker); `ate restore` verifies the whole file again
    // (header, every frame, trailer) before writing anything.
    std::fs::rename(&partial, &a.file)
        .with_context(|| format!("cannot rename to {}", a.file.display()))?;
    println!(
        "backed up chain {} to {} ({total} bytes)",
        a.chain,
        a.file.display()
    );
    Ok(())
}

pub(crate) fn compact(a: CompactArgs) -> anyhow::Result<()> {
    let (base, agent) = long_call_client(&a.api);
    let progress = if std::io::stderr().is_terminal() {
        let p = ProgressBar::new_spinner().with_message("compacting");
        p.enable_steady_tick(Duration::from_millis(120));
        p
    } else {
        ProgressBar::hidden()
    };
    let mut resp = agent
        .post(format!("{base}/v1/chains/{}/compact", a.chain))
        .send_empty()
        .with_context(|| {
            format!("cannot reach the node at {base} (is `ate node run` running? see --api)")
        })?;
    progress.finish_and_clear();
    let body: serde_json::Value = resp
        .body_mut()
        .read_json()
        .context("the node's answer is not JSON")?;
    if !resp.status().is_success() {
        let msg = body["error"].as_str().unwrap_or("request failed");
        bail!("{msg} (HTTP {})", resp.status().as_u16());
    }
    if a.json {
        println!("{body}");
    } else {
        println!(
            "compacted {}: {} values dropped ({} bytes), {} events without values in all; log {} → {} bytes",
            a.chain,
            body["pruned"],
            body["bytes_freed"],
            body["compacted_total"],
            body["log_bytes_before"],
            body["log_bytes_after"]
        );
        if body["unsettled"].as_u64().unwrap_or(0) > 0 {
            println!(
                "kept {} superseded values: a newer version is not yet settled (every admin and root \
                 must have written since it, and no revocation or rotation may be concurrent with it)",
                body["unsettled"]
            );
        }
    }
    Ok(())
}

pub(crate) fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    let mut f = std::fs::File::open(&a.file)
        .with_context(|| format!("cannot open {}", a.file.display()))?;
    let root = a.data.join("chains");
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = bar(total * 2, "restoring");
    let mut report = |done: u64, _total: u64| progress.set_position(done);
    let chain = ate_store::restore(
        &mut f,
        logs_backend(&a.data),
        &Options::default(),
        &mut report,
    )
    .with_context(|| format!("cannot restore {}", a.file.display()))?;
    progress.finish_and_clear();
    println!(
        "restored chain {chain} into {}; start a node on it with `ate node run --data {}`",
        a.data.display(),
        a.data.display()
    );
    Ok(())
}
