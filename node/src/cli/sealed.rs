//! Sealed values, read keys and root rotation from the command line (DESIGN §6).
//!
//! The node never holds a reader key. To seal or open, the CLI asks the node two things —
//! the scope's newest epoch (`GET …/read-epoch`) and the share events addressed to a reader
//! (`GET …/shares`) — opens the shares with the key file's ML-KEM-768 key, and seals or opens
//! values here. `share` and `unshare` plan their shares with `ate_protocol::seal`'s
//! `plan_share_from` / `plan_unshare_from`, the node's answers standing in for a replica.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, bail};
use ate_node::api::{ReadEpochAnswer, SharesAnswer, from_hex};
use ate_node::keys;
use ate_protocol::event::{
    HARD_MAX_EVENT_BYTES, KEY_ID_BYTES, ReadKeyShare, Rotate, SEAL_NONCE_BYTES,
};
use ate_protocol::seal::{self, EpochKey, Keyring, Reader, ReaderSecret, SealError, SealWith};
use ate_protocol::{Body, ChainId, Event, EventId, Params, PublicKey, SecretKey, Version, Writer};
use serde_json::Value;

use super::{Api, now_ms, write_signed};

/// Limits for decoding events the node sends back. The node checked them against the chain's
/// own (tighter) limits when it accepted them; the client only needs to read them.
const READ_PARAMS: Params = Params {
    max_event_bytes: HARD_MAX_EVENT_BYTES as u32,
    max_key_bytes: u32::MAX,
};

/// A scope's newest epoch, as the node reports it.
struct Epoch {
    number: u64,
    key_ids: Vec<[u8; KEY_ID_BYTES]>,
    readers: Vec<Reader>,
}

/// The epoch keys one reader opened from its shares, and which `(scope, epoch)`s they cover
/// (so versions no key can open are not fetched).
struct Opener {
    ring: Keyring,
    epochs: BTreeSet<(String, u64)>,
}

impl Opener {
    /// The key of `epoch` this reader holds, if any.
    fn key_of(&self, scope: &str, epoch: &Epoch) -> Option<&EpochKey> {
        epoch
            .key_ids
            .iter()
            .find_map(|id| self.ring.get(scope, epoch.number, id))
    }
}

fn decode(chain: &ChainId, hex: &str) -> anyhow::Result<Event> {
    let bytes = from_hex(hex).context("the node sent an event that is not hex")?;
    Event::decode(Some(chain), &bytes, &READ_PARAMS)
        .context("the node sent an event that does not decode")
}

fn read_epoch(api: &Api, chain: ChainId, scope: &str) -> anyhow::Result<Option<Epoch>> {
    let a: ReadEpochAnswer = api.get(
        &format!("/v1/chains/{chain}/read-epoch"),
        &[("scope", scope.to_string())],
    )?;
    let Some(number) = a.epoch else {
        return Ok(None);
    };
    let key_ids = a
        .key_ids
        .iter()
        .map(|h| from_hex(h).and_then(|b| b.try_into().ok()))
        .collect::<Option<Vec<_>>>()
        .context("the node sent a key id that is not 16 hex bytes")?;
    let readers = a
        .readers
        .iter()
        .map(|r| Reader::from_text(r))
        .collect::<Result<Vec<_>, _>>()
        .context("the node sent a reader identity that does not parse")?;
    Ok(Some(Epoch {
        number,
        key_ids,
        readers,
    }))
}

/// Opens every share addressed to `reader` (of `scope` only, if given). Shares that do not
/// open (addressed to another ML-KEM key of the same signer, or broken) are skipped, as
/// `Replica::keyring` does.
fn opener(
    api: &Api,
    chain: ChainId,
    reader: &PublicKey,
    secret: &ReaderSecret,
    scope: Option<&str>,
) -> anyhow::Result<Opener> {
    let mut q = vec![("reader", reader.to_string())];
    if let Some(s) = scope {
        q.push(("scope", s.to_string()));
    }
    let a: SharesAnswer = api.get(&format!("/v1/chains/{chain}/shares"), &q)?;
    let mut o = Opener {
        ring: Keyring::default(),
        epochs: BTreeSet::new(),
    };
    for hex in &a.events {
        let Some(Body::ReadKeyShare(s)) = decode(&chain, hex)?.body else {
            bail!("the node sent a share event without a share");
        };
        if let Ok(key) = seal::open_share(&chain, &s, secret) {
            o.ring.insert(&s.scope, s.epoch, key);
            o.epochs.insert((s.scope, s.epoch));
        }
    }
    Ok(o)
}

/// Opens, in place, the sealed values of `vs` that `key_file`'s reader holds keys for. Others
/// stay sealed. Without a key file, does nothing.
pub(super) fn reveal(
    api: &Api,
    chain: ChainId,
    key_file: Option<&Path>,
    vs: &mut [Version],
) -> anyhow::Result<()> {
    let Some(path) = key_file else {
        return Ok(());
    };
    let id = keys::load_identity(path)?;
    let secret = id.reader_secret(path)?;
    let wanted = |v: &Version| v.sealed.as_ref().is_some_and(|s| !s.opened);
    if !vs.iter().any(wanted) {
        return Ok(());
    }
    let o = opener(api, chain, &id.signing.public(), secret, None)?;
    for v in vs.iter_mut().filter(|v| wanted(v)) {
        let Some(s) = v.sealed.as_mut() else { continue };
        if !o.epochs.contains(&(s.scope.clone(), s.epoch)) {
            continue;
        }
        let ev = fetch_event(api, chain, &v.id)?;
        match o.ring.open_json(&chain, &ev) {
            Ok(value) => {
                v.value = Some(value);
                s.opened = true;
            }
            // Compacted meanwhile, or sealed under a concurrent key of the epoch it lacks.
            Err(SealError::NoBody | SealError::NoKey { .. } | SealError::WrongKey) => {}
            Err(e) => eprintln!("warning: version {} does not open: {e}", v.id.short()),
        }
    }
    Ok(())
}

fn fetch_event(api: &Api, chain: ChainId, id: &EventId) -> anyhow::Result<Event> {
    let a: Value = api.get(&format!("/v1/chains/{chain}/events/{id}"), &[])?;
    let ev = decode(&chain, a["event"].as_str().unwrap_or_default())?;
    if ev.id != *id {
        bail!(
            "the node sent another event than {} was asked for",
            id.short()
        );
    }
    Ok(ev)
}

/// `ate put --seal SCOPE`: seals `value` under the newest epoch key of `scope`, which this key
/// file's reader must hold.
pub(super) fn put(
    api: &Api,
    chain: ChainId,
    key_file: &Path,
    record: &str,
    value: &Value,
    scope: &str,
) -> anyhow::Result<()> {
    let id = keys::load_identity(key_file)?;
    let secret = id.reader_secret(key_file)?;
    if !record.starts_with(scope) {
        bail!(
            "record key `{record}` is not inside read scope `{scope}` (the scope must be a prefix of the key)"
        );
    }
    let epoch = read_epoch(api, chain, scope)?.with_context(|| {
        format!("scope `{scope}` has no read key yet: an admin of it starts one with `ate share CHAIN READER --scope {scope}`")
    })?;
    let me = id.signing.public();
    let o = opener(api, chain, &me, secret, Some(scope))?;
    let key = o.key_of(scope, &epoch).with_context(|| {
        format!(
            "{} holds no key of scope `{scope}` epoch {} (never shared with it, or removed): ask an admin of the scope to `ate share` it",
            me.short(),
            epoch.number
        )
    })?;
    let mut nonce = [0u8; SEAL_NONCE_BYTES];
    nonce.copy_from_slice(&keys::random_seed()?[..SEAL_NONCE_BYTES]);
    let with = SealWith {
        scope,
        epoch: epoch.number,
        key,
    };
    let w = Writer::new(id.signing.clone());
    write_signed(api, chain, &id.signing, Some(record), |t| {
        Ok(w.put_sealed_from(t, record, value, with, nonce, now_ms())?)
    })
}

/// This admin's reader identity and secret.
fn admin(key_file: &Path) -> anyhow::Result<(SecretKey, Reader, ReaderSecret)> {
    let id = keys::load_identity(key_file)?;
    let secret = id.reader_secret(key_file)?.clone();
    let me = Reader {
        id: id.signing.public(),
        kem: secret.public(),
    };
    Ok((id.signing, me, secret))
}

/// Publishes share events one by one (each continues the admin's own chain of events).
fn publish(
    api: &Api,
    chain: ChainId,
    key: &SecretKey,
    shares: Vec<ReadKeyShare>,
) -> anyhow::Result<()> {
    let w = Writer::new(key.clone());
    for s in shares {
        write_signed(api, chain, key, None, |t| {
            Ok(w.build(t, Body::ReadKeyShare(s), now_ms()))
        })?;
    }
    Ok(())
}

/// `ate share`: gives `reader` the current key of `scope`, or starts an epoch that includes it.
pub(super) fn share(
    api: &Api,
    chain: ChainId,
    key_file: &Path,
    reader: &Reader,
    scope: &str,
) -> anyhow::Result<()> {
    let (key, me, secret) = admin(key_file)?;
    let current = read_epoch(api, chain, scope)?;
    if let Some(cur) = &current
        && cur.readers.contains(reader)
    {
        eprintln!(
            "{} already reads scope `{scope}` epoch {}; nothing to do",
            reader.id.short(),
            cur.number
        );
        return Ok(());
    }
    let o = opener(api, chain, &me.id, &secret, Some(scope))?;
    let held = current.as_ref().and_then(|cur| o.key_of(scope, cur));
    let cur = current.as_ref().map(|c| (c.number, c.readers.as_slice()));
    let seed = keys::random_seed()?;
    let shares = seal::plan_share_from(&chain, scope, cur, held, &me, reader, &seed)?;
    let epoch = shares.first().map_or(0, |s| s.epoch);
    publish(api, chain, &key, shares)?;
    eprintln!(
        "shared scope `{scope}` epoch {epoch} with {}",
        reader.id.short()
    );
    Ok(())
}

/// `ate unshare`: starts the next epoch of `scope` for every current reader but `removed`.
pub(super) fn unshare(
    api: &Api,
    chain: ChainId,
    key_file: &Path,
    removed: &PublicKey,
    scope: &str,
) -> anyhow::Result<()> {
    let (key, me, _) = admin(key_file)?;
    let cur = read_epoch(api, chain, scope)?
        .with_context(|| format!("scope `{scope}` has no read key; nothing to remove"))?;
    if !cur.readers.iter().any(|r| r.id == *removed) {
        bail!(
            "{} is not a reader of scope `{scope}` epoch {}; nothing to remove",
            removed.short(),
            cur.number
        );
    }
    if me.id == *removed && cur.readers.iter().all(|r| r.id == *removed) {
        bail!(
            "removing the last reader of scope `{scope}` would leave no one to hold its next key"
        );
    }
    let epoch = cur.number + 1;
    let now = Some((cur.number, cur.readers.as_slice()));
    let seed = keys::random_seed()?;
    let shares = seal::plan_unshare_from(&chain, scope, now, &me, removed, &seed)?;
    publish(api, chain, &key, shares)?;
    eprintln!(
        "scope `{scope}` is at epoch {epoch} without {}; values sealed from now on are closed to it",
        removed.short()
    );
    Ok(())
}

/// `ate rotate`: the root of `key_file` hands its authority to the key of `to_file`.
pub(super) fn rotate(
    api: &Api,
    chain: ChainId,
    key_file: &Path,
    to_file: &Path,
    next: [u8; 32],
) -> anyhow::Result<()> {
    let old = keys::load(key_file)?;
    let new = keys::load(to_file)?;
    if new.public() == old.public() {
        bail!("--to is the current root key itself; it must be the key the root committed to");
    }
    if next == ate_protocol::next_key_commitment(&new.public()) {
        bail!(
            "--next commits to the --to key itself; it must name the key after it (`ate key show NEXT2.key --next`)"
        );
    }
    let body = Body::Rotate(Rotate {
        next_root: new.public(),
        next_commitment: next,
    });
    let w = Writer::new(old.clone());
    write_signed(api, chain, &old, None, |t| Ok(w.build(t, body, now_ms()))).map_err(|e| {
        if format!("{e}").contains("commitment") {
            e.context(format!(
                "rotation refused: {} is not the key this root committed to (its `ate key show --next` must be the commitment in the genesis or the last rotation)",
                to_file.display()
            ))
        } else {
            e
        }
    })?;
    eprintln!(
        "root {} handed to {}: sign with {} from now on",
        old.public().short(),
        new.public(),
        to_file.display()
    );
    Ok(())
}
