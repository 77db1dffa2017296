//! Client commands: sign locally with a key file, talk to a node's HTTP API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use ate_node::api::{SubmitResult, to_hex};
use ate_node::keys;
use ate_protocol::event::{Grant, Put, Revoke};
use ate_protocol::{
    Body, ChainId, Event, PublicKey, PutValue, Rights, Template, Version, Writer, genesis,
};
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// The node's HTTP API.
    #[arg(long, global = true, default_value = "127.0.0.1:4180")]
    api: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Creates a key file (mode 0600) and prints its public key.
    #[command(after_help = "Example:\n  ate key new alice.key")]
    New { file: PathBuf },
    /// Prints the public key of a key file.
    #[command(after_help = "Example:\n  ate key show alice.key")]
    Show { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChainCommand {
    /// Creates a chain whose root is the key, on the node at --api.
    #[command(after_help = "Example:\n  ate chain new notes --key alice.key")]
    New {
        name: String,
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Follows a chain by id; peers that have it send it.
    #[command(after_help = "Example:\n  ate follow chainabc…")]
    Follow {
        chain: ChainId,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Writes a record version (signed locally).
    #[command(
        after_help = "Example:\n  ate put CHAIN users/alice '{\"name\": \"Alice\", \"age\": 31}' --key alice.key"
    )]
    Put {
        chain: ChainId,
        key: String,
        /// A JSON document.
        json: String,
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Deletes a record (writes a tombstone version).
    #[command(after_help = "Example:\n  ate delete CHAIN users/alice --key alice.key")]
    Delete {
        chain: ChainId,
        key: String,
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Reads the latest version of a record (or version N).
    #[command(after_help = "Example:\n  ate get CHAIN users/alice --json")]
    Get {
        chain: ChainId,
        key: String,
        #[arg(long)]
        version: Option<u64>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Every version of a record.
    #[command(after_help = "Example:\n  ate history CHAIN users/alice")]
    History {
        chain: ChainId,
        key: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Lists versions: all (select) or the latest per record (--latest).
    #[command(
        after_help = "Examples:\n  ate list CHAIN --prefix users/ --latest\n  ate list CHAIN --where 'age >= 18 and $key ^= \"users/\"' --latest --order -age --limit 10 --json"
    )]
    List {
        chain: ChainId,
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// A condition, e.g. `status = "open" and n >= 3`.
        #[arg(long = "where")]
        condition: Option<String>,
        /// Latest version per record (the condition is applied after reducing).
        #[arg(long)]
        latest: bool,
        /// Sort by a path (`-` for descending), e.g. `$clock` or `-age`.
        #[arg(long)]
        order: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Grants Write (or Admin) over a key prefix.
    #[command(after_help = "Example:\n  ate grant CHAIN pkbob… --scope users/bob/ --key alice.key")]
    Grant {
        chain: ChainId,
        to: PublicKey,
        #[arg(long, default_value = "")]
        scope: String,
        #[arg(long)]
        admin: bool,
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revokes every right of a key inside a prefix.
    #[command(after_help = "Example:\n  ate revoke CHAIN pkbob… --scope '' --key alice.key")]
    Revoke {
        chain: ChainId,
        who: PublicKey,
        #[arg(long, default_value = "")]
        scope: String,
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The node's peers and chains.
    #[command(after_help = "Example:\n  ate status --json")]
    Status {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(a: &ApiArgs) -> Api {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let base = if a.api.starts_with("http") {
            a.api.clone()
        } else {
            format!("http://{}", a.api)
        };
        Api { base, agent }
    }

    fn check<T: DeserializeOwned>(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<T> {
        let mut r = r.with_context(|| {
            format!(
                "cannot reach the node at {} (is `ate node run` running? see --api)",
                self.base
            )
        })?;
        let status = r.status();
        let body: Value = r
            .body_mut()
            .read_json()
            .context("the node's answer is not JSON")?;
        if !status.is_success() {
            let msg = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("request failed");
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        Ok(serde_json::from_value(body)?)
    }

    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<T> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in query {
            req = req.query(*k, v);
        }
        self.check(req.call())
    }

    fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        self.check(
            self.agent
                .post(format!("{}{path}", self.base))
                .send_json(body),
        )
    }

    fn submit(&self, chain: &ChainId, ev: &Event) -> anyhow::Result<SubmitResult> {
        let v: Value = self.post(
            &format!("/v1/chains/{chain}/events"),
            &json!({ "events": [to_hex(&ev.encode())] }),
        )?;
        let mut results: Vec<SubmitResult> = serde_json::from_value(v["results"].clone())?;
        let r = results.pop().context("the node returned no verdict")?;
        if r.verdict == "invalid" {
            bail!("event refused: {}", r.reason.unwrap_or_default());
        }
        Ok(r)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn key(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::New { file } => {
            let k = keys::create(&file)?;
            println!("{}", k.public());
            eprintln!("wrote {} (mode 0600); keep it secret", file.display());
        }
        KeyCommand::Show { file } => println!("{}", keys::load(&file)?.public()),
    }
    Ok(())
}

pub(crate) fn chain(cmd: ChainCommand) -> anyhow::Result<()> {
    let ChainCommand::New { name, key, api } = cmd;
    let k = keys::load(&key)?;
    let seed = keys::random_seed()?;
    let nonce = u64::from_le_bytes(seed[..8].try_into().unwrap_or_default());
    let g = genesis(&name, &k, &[], Default::default(), nonce, now_ms());
    let v: Value = Api::new(&api).post("/v1/chains", &json!({ "genesis": to_hex(&g.encode()) }))?;
    println!("{}", v["chain"].as_str().unwrap_or_default());
    Ok(())
}

fn write(
    api: &Api,
    chain: ChainId,
    key_file: &std::path::Path,
    record: Option<&str>,
    body: impl FnOnce(&Template) -> Body,
) -> anyhow::Result<()> {
    let k = keys::load(key_file)?;
    let mut q = vec![("author", k.public().to_string())];
    if let Some(r) = record {
        q.push(("key", r.to_string()));
    }
    let t: Template = api.get(&format!("/v1/chains/{chain}/template"), &q)?;
    let ev = Writer::new(k).build(&t, body(&t), now_ms());
    let r = api.submit(&chain, &ev)?;
    println!("{} {}", ev.id, r.verdict);
    Ok(())
}

fn put_body(key: &str, t: &Template, value: PutValue) -> Body {
    let (previous, seq) = t.previous.map_or((None, 0), |(id, s)| (Some(id), s + 1));
    Body::Put(Put {
        key: key.to_string(),
        previous,
        seq,
        value,
    })
}

fn print_versions(vs: &[Version], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(vs)?);
        return Ok(());
    }
    for v in vs {
        let value = if v.deleted {
            "(deleted)".to_string()
        } else {
            v.value.clone().unwrap_or_default().to_string()
        };
        let conflict = if v.conflict { " [conflict]" } else { "" };
        println!(
            "{}  v{}  {}  {}{}",
            v.key,
            v.seq,
            value,
            v.id.short(),
            conflict
        );
    }
    Ok(())
}

pub(crate) fn client(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Follow { chain, api } => {
            let _: Value =
                Api::new(&api).post(&format!("/v1/chains/{chain}/follow"), &json!({}))?;
            println!("following {chain}");
        }
        ClientCommand::Put {
            chain,
            key,
            json,
            key_file,
            api,
        } => {
            let value: Value = serde_json::from_str(&json)
                .with_context(|| format!("the value is not JSON: {json}"))?;
            write(&Api::new(&api), chain, &key_file, Some(&key), |t| {
                put_body(&key, t, PutValue::Json(value.to_string()))
            })?;
        }
        ClientCommand::Delete {
            chain,
            key,
            key_file,
            api,
        } => {
            write(&Api::new(&api), chain, &key_file, Some(&key), |t| {
                put_body(&key, t, PutValue::Tombstone)
            })?;
        }
        ClientCommand::Get {
            chain,
            key,
            version,
            json,
            api,
        } => {
            let mut q = vec![("key", key)];
            if let Some(n) = version {
                q.push(("version", n.to_string()));
            }
            let v: Version = Api::new(&api).get(&format!("/v1/chains/{chain}/latest"), &q)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if v.deleted {
                println!("(deleted)");
            } else {
                println!("{}", v.value.unwrap_or_default());
            }
        }
        ClientCommand::History {
            chain,
            key,
            json,
            api,
        } => {
            let vs: Vec<Version> =
                Api::new(&api).get(&format!("/v1/chains/{chain}/history"), &[("key", key)])?;
            print_versions(&vs, json)?;
        }
        ClientCommand::List {
            chain,
            prefix,
            condition,
            latest,
            order,
            limit,
            json,
            api,
        } => {
            let prefix_cond = prefix.map(|p| format!("$key ^= {}", Value::String(p)));
            let mut q = Vec::new();
            let path = if latest {
                if let Some(p) = prefix_cond {
                    q.push(("pre", p));
                }
                "list-latest"
            } else {
                let both = match (prefix_cond, condition.clone()) {
                    (Some(p), Some(c)) => Some(format!("{p} and ({c})")),
                    (p, c) => p.or(c),
                };
                if let Some(c) = both {
                    q.push(("where", c));
                }
                "select"
            };
            if latest && let Some(c) = condition {
                q.push(("where", c));
            }
            if let Some(o) = order {
                q.push(("order", o));
            }
            if let Some(l) = limit {
                q.push(("limit", l.to_string()));
            }
            let vs: Vec<Version> = Api::new(&api).get(&format!("/v1/chains/{chain}/{path}"), &q)?;
            print_versions(&vs, json)?;
        }
        ClientCommand::Grant {
            chain,
            to,
            scope,
            admin,
            key_file,
            api,
        } => {
            let rights = if admin { Rights::Admin } else { Rights::Write };
            write(&Api::new(&api), chain, &key_file, None, |_| {
                Body::Grant(Grant { to, scope, rights })
            })?;
        }
        ClientCommand::Revoke {
            chain,
            who,
            scope,
            key_file,
            api,
        } => {
            write(&Api::new(&api), chain, &key_file, None, |_| {
                Body::Revoke(Revoke { key: who, scope })
            })?;
        }
        ClientCommand::Status { json, api } => {
            let v: Value = Api::new(&api).get("/v1/status", &[])?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "peer {}  peers {}",
                    v["peer_id"].as_str().unwrap_or("?"),
                    v["peers"]
                );
                for c in v["chains"].as_array().into_iter().flatten() {
                    println!(
                        "chain {} ({})  events {}  pending {}  digest {}",
                        c["id"].as_str().unwrap_or("?"),
                        c["name"].as_str().unwrap_or(""),
                        c["events"],
                        c["pending"],
                        &c["digest"].as_str().unwrap_or("")
                            [..16.min(c["digest"].as_str().unwrap_or("").len())]
                    );
                }
            }
        }
    }
    Ok(())
}
