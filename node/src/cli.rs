//! Client commands: sign locally with a key file, talk to a node's HTTP API.
//!
//! Sealed values, read keys and root rotation (`put --seal`, `share`, `unshare`, `rotate`,
//! reading with `--key`) are in [`sealed`].

mod sealed;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ate_node::api::{SubmitResult, to_hex};
use ate_node::keys;
use ate_node::keys::text::{commitment_text, parse_commitment, parse_reader, parse_reader_or_key};
use ate_protocol::event::{Grant, Put, Revoke};
use ate_protocol::seal::Reader;
use ate_protocol::{
    Body, ChainId, Event, PublicKey, PutValue, Rights, SecretKey, Template, Version, Writer,
    genesis, genesis_with_next,
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
    ///
    /// The file holds an ed25519 signing key and an ML-KEM-768 reader key (for sealed values);
    /// `ate key show` prints their public halves. It is never overwritten.
    #[command(after_help = "Example:\n  ate key new alice.key")]
    New { file: PathBuf },
    /// Prints the public halves of a key file.
    ///
    /// Three lines: `public pk…` (the ed25519 key: what `ate grant` and `ate unshare` take),
    /// `reader reader…` (the reader identity, ed25519 + ML-KEM-768 public keys: what
    /// `ate share` takes) and `next next…` (the pre-rotation commitment blake3(pk): what
    /// `ate chain new --next` and `ate rotate --next` take to make this key a root's next key).
    /// With --public, --reader or --next, prints only that value, for scripts.
    #[command(
        after_help = "Examples:\n  ate key show alice.key\n  ate share CHAIN \"$(ate key show bob.key --reader)\" --scope docs/ --key alice.key"
    )]
    Show {
        file: PathBuf,
        /// Print only the public key (`pk…`).
        #[arg(long, group = "part")]
        public: bool,
        /// Print only the reader identity (`reader…`).
        #[arg(long, group = "part")]
        reader: bool,
        /// Print only the pre-rotation commitment (`next…`).
        #[arg(long, group = "part")]
        next: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChainCommand {
    /// Creates a chain whose root is the key, on the node at --api, and prints its id.
    ///
    /// With --next the root can later be rotated (KERI pre-rotation): the genesis commits to
    /// the key that will replace it, by the hash printed by `ate key show NEXT.key --next`.
    /// Keep NEXT.key offline; `ate rotate` hands the root to it if --key is ever lost or leaked.
    /// Without --next the root can never be rotated.
    #[command(
        after_help = "Examples:\n  ate chain new notes --key alice.key\n  ate key new alice-next.key\n  ate chain new notes --key alice.key --next \"$(ate key show alice-next.key --next)\""
    )]
    New {
        name: String,
        #[arg(long)]
        key: PathBuf,
        /// The root's pre-rotation commitment (`next…`, from `ate key show NEXT.key --next`).
        #[arg(long, value_name = "COMMITMENT", value_parser = parse_commitment)]
        next: Option<[u8; 32]>,
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
    ///
    /// With --seal SCOPE the value is sealed (XChaCha20-Poly1305) under the newest read key of
    /// SCOPE, a prefix of the record key: every node stores and verifies it, only the scope's
    /// readers can open it. The writer must hold that key itself, i.e. an admin must have
    /// shared the scope with the key file's reader identity (`ate share`; the admin who starts
    /// a scope holds it).
    #[command(
        after_help = "Examples:\n  ate put CHAIN users/alice '{\"name\": \"Alice\", \"age\": 31}' --key alice.key\n  ate put CHAIN docs/plan '{\"budget\": 10}' --seal docs/ --key alice.key"
    )]
    Put {
        chain: ChainId,
        key: String,
        /// A JSON document.
        json: String,
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: PathBuf,
        /// Seal the value under the newest read key of this scope (a prefix of the key).
        #[arg(long, value_name = "SCOPE")]
        seal: Option<String>,
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
    ///
    /// A sealed value prints as `(sealed: scope … epoch …)` unless --key names a key file
    /// whose reader key was given that epoch's key (`ate share`); then it is opened here, on
    /// the client (the node never sees reader keys).
    #[command(
        after_help = "Examples:\n  ate get CHAIN users/alice --json\n  ate get CHAIN docs/plan --key bob.key"
    )]
    Get {
        chain: ChainId,
        key: String,
        #[arg(long)]
        version: Option<u64>,
        #[arg(long)]
        json: bool,
        /// Open sealed values with this key file's reader key.
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Every version of a record.
    #[command(after_help = "Example:\n  ate history CHAIN users/alice --key bob.key")]
    History {
        chain: ChainId,
        key: String,
        #[arg(long)]
        json: bool,
        /// Open sealed values with this key file's reader key.
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Lists versions: all (select) or the latest per record (--latest).
    ///
    /// --where and --order run on the node, which sees sealed values as sealed; with --key the
    /// listed sealed values are then opened on the client (see `ate get --help`).
    #[command(
        after_help = "Examples:\n  ate list CHAIN --prefix users/ --latest\n  ate list CHAIN --where 'age >= 18 and $key ^= \"users/\"' --latest --order -age --limit 10 --json\n  ate list CHAIN --prefix docs/ --latest --key bob.key"
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
        /// Open sealed values with this key file's reader key.
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: Option<PathBuf>,
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
    /// Gives a reader the read key of a scope, so it can open values sealed under it.
    ///
    /// Run by an Admin of the scope (a root, or a key granted `--admin` over it), with a key
    /// file that has a reader key. READER is the reader identity printed by
    /// `ate key show READER.key --reader` (its ed25519 and ML-KEM-768 public keys). The first
    /// share of a scope starts epoch 0 with a fresh random key, shared with you too, so you
    /// can seal under it; later shares pass on the current epoch's key (or, if you do not hold
    /// it, start the next epoch for every current reader, you and READER). The key travels in
    /// a ReadKeyShare event, wrapped by ML-KEM-768 for READER alone: nodes store and forward
    /// it without being able to open it.
    #[command(
        after_help = "Example:\n  ate share CHAIN \"$(ate key show bob.key --reader)\" --scope docs/ --key alice.key"
    )]
    Share {
        chain: ChainId,
        /// The reader identity (`reader…`, from `ate key show READER.key --reader`).
        #[arg(value_parser = parse_reader)]
        reader: Reader,
        /// The read scope: a record key prefix ('' for the whole chain).
        #[arg(long)]
        scope: String,
        /// An admin's key file (signing and reader key).
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Removes a reader from a scope by starting a new epoch without it.
    ///
    /// Run by an Admin of the scope. Writes a fresh epoch key, shared with every current
    /// reader of the scope but READER (and with you). Values sealed afterwards use the new
    /// epoch, so READER cannot open them; what it could open before stays open to it (it may
    /// have kept the old key anyway). READER is its reader identity (`reader…`) or just its
    /// public key (`pk…`).
    #[command(after_help = "Example:\n  ate unshare CHAIN pkbob… --scope docs/ --key alice.key")]
    Unshare {
        chain: ChainId,
        /// The reader to remove: `reader…` or `pk…`.
        #[arg(value_parser = parse_reader_or_key)]
        reader: PublicKey,
        /// The read scope.
        #[arg(long)]
        scope: String,
        /// An admin's key file (signing and reader key).
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Hands a root's authority to the key it committed to (KERI pre-rotation).
    ///
    /// The chain's genesis (`ate chain new --next`) or the root's last rotation committed to
    /// blake3 of the next root key. This writes a Rotate event signed by the current root
    /// (--key) that reveals that next key and commits to the one after it (--next). --to is
    /// the next key's *file*, not just its public key: the file proves you hold the secret,
    /// since after the rotation only that key can act as root (handing the root to a key
    /// nobody holds would lock it out for good). Afterwards the old key is refused for every
    /// write; sign with the --to file. A --to key that does not match the commitment is
    /// refused by the node. Keep the key behind --next offline until the next rotation.
    #[command(
        after_help = "Example:\n  ate key new root2.key && ate key new root3.key\n  ate rotate CHAIN --key root1.key --to root2.key --next \"$(ate key show root3.key --next)\""
    )]
    Rotate {
        chain: ChainId,
        /// The current root's key file (signs the rotation).
        #[arg(long = "key", value_name = "KEYFILE")]
        key_file: PathBuf,
        /// The committed next root's key file (its public key is revealed).
        #[arg(long, value_name = "NEXT_KEYFILE")]
        to: PathBuf,
        /// The commitment to the key after --to (`next…`, from `ate key show NEXT2.key --next`).
        #[arg(long, value_name = "COMMITMENT", value_parser = parse_commitment)]
        next: [u8; 32],
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
        // Bounded: the node's answers are capped (at most 10,000 versions), far below this.
        let text = r
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .context("cannot read the node's answer")?;
        let body: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            // Errors from the HTTP layer itself (a body too large, a malformed request) are
            // plain text: show them as they are.
            Err(_) if !status.is_success() => {
                let short: String = text.trim().chars().take(300).collect();
                bail!("{short} (HTTP {})", status.as_u16());
            }
            Err(e) => return Err(e).context("the node's answer is not JSON"),
        };
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

    fn template(
        &self,
        chain: ChainId,
        author: &PublicKey,
        record: Option<&str>,
    ) -> anyhow::Result<Template> {
        let mut q = vec![("author", author.to_string())];
        if let Some(r) = record {
            q.push(("key", r.to_string()));
        }
        self.get(&format!("/v1/chains/{chain}/template"), &q)
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
            eprintln!(
                "wrote {} (mode 0600); keep it secret. `ate key show {}` prints its reader identity and pre-rotation commitment",
                file.display(),
                file.display()
            );
        }
        KeyCommand::Show {
            file,
            public,
            reader,
            next,
        } => {
            let id = keys::load_identity(&file)?;
            let pk = id.signing.public();
            let reader_text = id.reader_public().map(|r| r.to_text());
            if public {
                println!("{pk}");
            } else if reader {
                id.reader_secret(&file)?;
                println!("{}", reader_text.unwrap_or_default());
            } else if next {
                println!("{}", commitment_text(&pk));
            } else {
                println!("public  {pk}");
                match reader_text {
                    Some(r) => println!("reader  {r}"),
                    None => println!("reader  (none: the file predates sealed values)"),
                }
                println!("next    {}", commitment_text(&pk));
            }
        }
    }
    Ok(())
}

pub(crate) fn chain(cmd: ChainCommand) -> anyhow::Result<()> {
    let ChainCommand::New {
        name,
        key,
        next,
        api,
    } = cmd;
    let k = keys::load(&key)?;
    if next == Some(ate_protocol::next_key_commitment(&k.public())) {
        bail!(
            "--next commits to the root key itself; it must name the key that will replace it (`ate key show NEXT.key --next`)"
        );
    }
    let seed = keys::random_seed()?;
    let nonce = u64::from_le_bytes(seed[..8].try_into().unwrap_or_default());
    let g = match next {
        Some(c) => genesis_with_next(&name, &k, c, &[], Default::default(), nonce, now_ms()),
        None => genesis(&name, &k, &[], Default::default(), nonce, now_ms()),
    };
    let v: Value = Api::new(&api).post("/v1/chains", &json!({ "genesis": to_hex(&g.encode()) }))?;
    println!("{}", v["chain"].as_str().unwrap_or_default());
    Ok(())
}

fn write(
    api: &Api,
    chain: ChainId,
    key_file: &Path,
    record: Option<&str>,
    body: impl FnOnce(&Template) -> Body,
) -> anyhow::Result<()> {
    let k = keys::load(key_file)?;
    write_signed(api, chain, &k, record, |t| {
        Ok(Writer::new(k.clone()).build(t, body(t), now_ms()))
    })
}

/// Asks for `key`'s template (for a put of `record`), builds the event with `build`, submits
/// it and prints its id and verdict.
fn write_signed(
    api: &Api,
    chain: ChainId,
    key: &SecretKey,
    record: Option<&str>,
    build: impl FnOnce(&Template) -> anyhow::Result<Event>,
) -> anyhow::Result<()> {
    let t = api.template(chain, &key.public(), record)?;
    let ev = build(&t)?;
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

/// A version's value as text: JSON, `(deleted)`, or `(sealed: …)` when it was not opened.
fn shown(v: &Version) -> String {
    match &v.sealed {
        _ if v.deleted => "(deleted)".to_string(),
        Some(s) if !s.opened => format!("(sealed: scope `{}` epoch {})", s.scope, s.epoch),
        _ => v.value.clone().unwrap_or_default().to_string(),
    }
}

fn print_versions(vs: &[Version], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(vs)?);
        return Ok(());
    }
    for v in vs {
        let value = shown(v);
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
            seal,
            api,
        } => {
            let value: Value = serde_json::from_str(&json)
                .with_context(|| format!("the value is not JSON: {json}"))?;
            let api = Api::new(&api);
            match seal {
                Some(scope) => sealed::put(&api, chain, &key_file, &key, &value, &scope)?,
                None => write(&api, chain, &key_file, Some(&key), |t| {
                    put_body(&key, t, PutValue::Json(value.to_string()))
                })?,
            }
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
            key_file,
            api,
        } => {
            let mut q = vec![("key", key)];
            if let Some(n) = version {
                q.push(("version", n.to_string()));
            }
            let api = Api::new(&api);
            let v: Version = api.get(&format!("/v1/chains/{chain}/latest"), &q)?;
            let mut vs = [v];
            sealed::reveal(&api, chain, key_file.as_deref(), &mut vs)?;
            let [v] = vs;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{}", shown(&v));
                if v.sealed.as_ref().is_some_and(|s| !s.opened) && key_file.is_none() {
                    eprintln!("(pass --key with a reader's key file to open it)");
                }
            }
        }
        ClientCommand::History {
            chain,
            key,
            json,
            key_file,
            api,
        } => {
            let api = Api::new(&api);
            let mut vs: Vec<Version> =
                api.get(&format!("/v1/chains/{chain}/history"), &[("key", key)])?;
            sealed::reveal(&api, chain, key_file.as_deref(), &mut vs)?;
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
            key_file,
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
            let api = Api::new(&api);
            let mut vs: Vec<Version> = api.get(&format!("/v1/chains/{chain}/{path}"), &q)?;
            sealed::reveal(&api, chain, key_file.as_deref(), &mut vs)?;
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
        ClientCommand::Share {
            chain,
            reader,
            scope,
            key_file,
            api,
        } => sealed::share(&Api::new(&api), chain, &key_file, &reader, &scope)?,
        ClientCommand::Unshare {
            chain,
            reader,
            scope,
            key_file,
            api,
        } => sealed::unshare(&Api::new(&api), chain, &key_file, &reader, &scope)?,
        ClientCommand::Rotate {
            chain,
            key_file,
            to,
            next,
            api,
        } => sealed::rotate(&Api::new(&api), chain, &key_file, &to, next)?,
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
