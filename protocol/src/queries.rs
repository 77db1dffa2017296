//! The six queries of DESIGN §4 over a replica's view.
//!
//! `get_by_id`, `get_by_sequence`, `get_latest`, `list_by_prefix`, `select` and `list_latest`,
//! plus the view digest. Values are decoded from the body arena when read, so queries that
//! scan many versions pay for JSON parsing; the view itself stays small.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dag::{NONE, Slot};
use crate::event::{Body, BodyKind, PutValue};
use crate::ids::{EventId, PublicKey};
use crate::query::{self, Condition, Order, Row};
use crate::replica::Replica;
use crate::seal::Keyring;

/// One record version as queries return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// The version's event id.
    pub id: EventId,
    /// The record's prefix: the id of its first version.
    pub record: EventId,
    /// The record key.
    pub key: String,
    /// The record sequence number (0 for the first version).
    pub seq: u64,
    /// Who wrote it.
    pub author: PublicKey,
    /// Lamport clock.
    pub clock: u64,
    /// The author's advisory wall clock.
    pub time_ms: u64,
    /// The JSON value; `None` for a tombstone, and for a sealed value this view cannot open.
    pub value: Option<Value>,
    /// Set when the value is sealed (DESIGN §6): its scope and epoch, and whether this view
    /// opened it (then `value` holds the plaintext). Absent for plain values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealInfo>,
    /// A tombstone (delete) version.
    pub deleted: bool,
    /// Whether the version has effect in the view (a revocation can take it away).
    pub effective: bool,
    /// Whether it is its record's latest version.
    pub latest: bool,
    /// Whether its record has concurrent versions (a fork).
    pub conflict: bool,
    /// The body was compacted away (the version was superseded): the header, signature, key
    /// and seq are known, the value is not (`value` is `None`, `deleted` is false).
    #[serde(default)]
    pub compacted: bool,
}

/// What a query says about a sealed value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealInfo {
    /// The read scope it is sealed under.
    pub scope: String,
    /// The scope's epoch.
    pub epoch: u64,
    /// Whether this view holds the key and opened it.
    pub opened: bool,
}

/// Owned row data that [`query::Row`]s borrow from.
struct RowData {
    key: String,
    record: String,
    id: String,
    author: String,
    version: Version,
}

impl RowData {
    fn row(&self) -> Row<'_> {
        Row {
            key: &self.key,
            record: &self.record,
            id: &self.id,
            author: &self.author,
            seq: self.version.seq,
            clock: self.version.clock,
            time_ms: self.version.time_ms,
            deleted: self.version.deleted,
            value: self.version.value.as_ref(),
        }
    }
}

/// A read-only handle on a replica's view. Get one with [`Replica::view`].
#[derive(Debug, Clone, Copy)]
pub struct ViewRef<'a> {
    replica: &'a Replica,
    keys: Option<&'a Keyring>,
}

impl Replica {
    /// The materialized view, for queries. Sealed values show as sealed (`value` is `None`).
    pub fn view(&self) -> ViewRef<'_> {
        ViewRef {
            replica: self,
            keys: None,
        }
    }

    /// The view as a reader holding `keys` sees it: sealed values it can open show their
    /// plaintext, and conditions match on them; others show as sealed.
    pub fn view_as<'a>(&'a self, keys: &'a Keyring) -> ViewRef<'a> {
        ViewRef {
            replica: self,
            keys: Some(keys),
        }
    }

    /// The id and record seq of the latest version of `key`'s winning record (for writers).
    pub fn latest_slot_info(&self, key: &str) -> Option<(EventId, u64)> {
        let v = self.view().get_latest(key)?;
        Some((v.id, v.seq))
    }
}

impl<'a> ViewRef<'a> {
    fn version(&self, slot: Slot) -> Option<Version> {
        let dag = &self.replica.dag;
        let m = dag.meta(slot);
        if m.kind != BodyKind::Put {
            return None;
        }
        let rec = self.replica.view.records.get(m.aux as usize)?;
        let mut sealed = None;
        let (key, seq, value, deleted) = match dag.body(slot) {
            Some(Body::Put(p)) => {
                let (value, deleted) = match &p.value {
                    PutValue::Json(text) => (serde_json::from_str(text).ok(), false),
                    PutValue::Tombstone => (None, true),
                    PutValue::Sealed(s) => {
                        let value = self.open(slot);
                        sealed = Some(SealInfo {
                            scope: s.scope.clone(),
                            epoch: s.epoch,
                            opened: value.is_some(),
                        });
                        (value, false)
                    }
                };
                (p.key, p.seq, value, deleted)
            }
            Some(_) => return None,
            // Compacted: the stub keeps everything but the value.
            None => {
                let head = dag.put_head(slot)?;
                if let crate::event::ValueHead::Sealed { scope, epoch, .. } = &head.value {
                    sealed = Some(SealInfo {
                        scope: scope.clone(),
                        epoch: *epoch,
                        opened: false,
                    });
                }
                let deleted = head.is_tombstone();
                (head.key, head.seq, None, deleted)
            }
        };
        Some(Version {
            id: dag.id(slot),
            record: dag.id(rec.first),
            key,
            seq,
            author: dag.author_key(slot),
            clock: m.clock,
            time_ms: m.time_ms,
            value,
            sealed,
            deleted,
            effective: m.effective,
            latest: rec.latest == slot,
            conflict: self.replica.view.has_conflict(m.aux),
            compacted: !dag.has_body(slot),
        })
    }

    /// The plaintext of a sealed version, if this view holds its key (and it opens).
    fn open(&self, slot: Slot) -> Option<Value> {
        let keys = self.keys?;
        let ev = self.replica.dag.event(slot);
        keys.open_json(&self.replica.chain(), &ev).ok()
    }

    fn row_data(&self, slot: Slot) -> Option<RowData> {
        let v = self.version(slot)?;
        Some(RowData {
            key: v.key.clone(),
            record: v.record.to_string(),
            id: v.id.to_string(),
            author: v.author.to_string(),
            version: v,
        })
    }

    fn record_of(&self, prefix: &EventId) -> Option<u32> {
        let dag = &self.replica.dag;
        let slot = dag.slot(prefix)?;
        let rec = dag.meta(slot).aux;
        let r = self.replica.view.records.get(rec as usize)?;
        (r.first == slot && dag.meta(slot).kind == BodyKind::Put).then_some(rec)
    }

    fn effective_versions(&self, rec: u32) -> Vec<Slot> {
        let dag = &self.replica.dag;
        self.replica.view.records[rec as usize]
            .versions
            .iter()
            .copied()
            .filter(|&s| dag.meta(s).effective)
            .collect()
    }

    /// A version by its event id (effective or not; see [`Version::effective`]). A version
    /// whose body was compacted (here, or by the peer it came from) comes back without its
    /// value and with [`Version::compacted`] set.
    pub fn get_by_id(&self, id: &EventId) -> Option<Version> {
        self.version(self.replica.dag.slot(id)?)
    }

    /// The effective version with record sequence `n` of the record `prefix` (the highest
    /// `(clock, id)` if a fork put two there).
    pub fn get_by_sequence(&self, prefix: &EventId, n: u64) -> Option<Version> {
        let rec = self.record_of(prefix)?;
        self.effective_versions(rec)
            .into_iter()
            .filter_map(|s| self.version(s))
            .filter(|v| v.seq == n)
            .max_by_key(|v| (v.clock, v.id))
    }

    /// The latest version of the record `key` resolves to. The key may also be given as a
    /// record prefix in text form (`ev…`).
    pub fn get_latest(&self, key: &str) -> Option<Version> {
        let view = &self.replica.view;
        let rec = match view.winner(&self.replica.dag, key) {
            Some(r) => r,
            None => self.record_of(&key.parse::<EventId>().ok()?)?,
        };
        let latest = view.records.get(rec as usize)?.latest;
        (latest != NONE).then(|| self.version(latest)).flatten()
    }

    /// Every effective version of the record `prefix`, by `(seq, clock, id)`.
    pub fn list_by_prefix(&self, prefix: &EventId) -> Vec<Version> {
        let Some(rec) = self.record_of(prefix) else {
            return Vec::new();
        };
        let mut out: Vec<Version> = self
            .effective_versions(rec)
            .into_iter()
            .filter_map(|s| self.version(s))
            .collect();
        out.sort_by_key(|v| (v.seq, v.clock, v.id));
        out
    }

    /// Every version of every record under `key` (all records, if two first versions raced).
    pub fn history(&self, key: &str) -> Vec<Version> {
        let view = &self.replica.view;
        let Some(recs) = view.keys.get(key) else {
            return Vec::new();
        };
        let mut out: Vec<Version> = recs
            .iter()
            .flat_map(|&r| self.effective_versions(r))
            .filter_map(|s| self.version(s))
            .collect();
        out.sort_by_key(|v| (v.seq, v.clock, v.id));
        out
    }

    /// Every effective version, record by record, in key order: of every key, or of the keys
    /// that start with `prefix` (a range of the key index, not a scan).
    fn record_rows<'s>(
        &'s self,
        prefix: Option<&'s str>,
    ) -> impl Iterator<Item = Vec<RowData>> + 's {
        let keys = &self.replica.view.keys;
        let from = std::ops::Bound::Included(prefix.unwrap_or(""));
        let under = (keys.range::<str, _>((from, std::ops::Bound::Unbounded)))
            .take_while(move |(k, _)| prefix.is_none_or(|p| k.starts_with(p)));
        under.flat_map(|(_, recs)| recs).map(|&r| {
            self.effective_versions(r)
                .into_iter()
                .filter_map(|s| self.row_data(s))
                .collect()
        })
    }

    /// Every effective version matching `condition`, ordered and limited.
    ///
    /// Rows are made one record at a time and only the matches are kept; with a `limit`, at
    /// most about twice that many at once (see [`first_rows`]), so a query with a small limit
    /// takes little memory however big the chain.
    pub fn select(
        &self,
        condition: &Condition,
        order: Option<&Order>,
        limit: Option<usize>,
    ) -> Vec<Version> {
        let rows = self.record_rows(condition.key_prefix()).flatten();
        let matches = rows.filter(|d| condition.matches(&d.row()));
        first_rows(matches, order, limit)
            .into_iter()
            .map(|d| d.version)
            .collect()
    }

    /// verifiable-storage-go's three steps: keep versions matching `pre_filter`, reduce to the
    /// latest per record, keep those matching `condition`; then order and limit. An old
    /// version that matched `condition` is never returned in place of a latest that does not.
    /// Like [`select`](Self::select), it holds one record's rows and the best matches so far.
    pub fn list_latest(
        &self,
        pre_filter: &Condition,
        condition: &Condition,
        order: Option<&Order>,
        limit: Option<usize>,
    ) -> Vec<Version> {
        // A record's versions share its key: a key prefix either condition requires rules
        // out whole records.
        let prefix = [pre_filter.key_prefix(), condition.key_prefix()]
            .into_iter()
            .flatten()
            .max_by_key(|p| p.len());
        let latest = self.record_rows(prefix).filter_map(|mut data| {
            // The query module's `list_latest` on this one record: its latest pre-filtered
            // version, if that is not deleted and matches.
            let one = std::iter::once(data.iter().map(RowData::row).collect::<Vec<_>>());
            let id = query::list_latest(one, pre_filter, condition, None, None)
                .first()
                .map(|r| r.id.to_string())?;
            let at = data.iter().position(|d| d.id == id)?;
            Some(data.swap_remove(at))
        });
        first_rows(latest, order, limit)
            .into_iter()
            .map(|d| d.version)
            .collect()
    }

    /// Number of records (all keys, all prefixes).
    pub fn record_count(&self) -> usize {
        self.replica.view.records.len()
    }

    /// A hash of the whole view: equal on two replicas iff their views are equal.
    pub fn digest(&self) -> [u8; 32] {
        self.replica.view.digest(&self.replica.dag)
    }

    /// The digest as lowercase hex.
    pub fn digest_hex(&self) -> String {
        self.digest().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Maps query rows back to the versions they were made from.
/// The first `limit` rows of a stream by `order` (all of them, ordered, without a limit).
/// With a limit it keeps at most `2 · max(limit, 64)` rows at once: whenever that many have
/// come, only the best `limit` stay. The order is total, so this is the same answer as
/// sorting everything and cutting.
fn first_rows(
    rows: impl Iterator<Item = RowData>,
    order: Option<&Order>,
    limit: Option<usize>,
) -> Vec<RowData> {
    let mut keep = Vec::new();
    for d in rows {
        keep.push(d);
        if let Some(k) = limit
            && keep.len() >= 2 * k.max(64)
        {
            keep = sorted_first(keep, order, Some(k));
        }
    }
    sorted_first(keep, order, limit)
}

/// `data` sorted by `order` and cut to `limit`.
fn sorted_first(data: Vec<RowData>, order: Option<&Order>, limit: Option<usize>) -> Vec<RowData> {
    let picked: Vec<usize> = {
        let mut rows: Vec<Row<'_>> = data.iter().map(RowData::row).collect();
        query::sort_and_limit(&mut rows, order, limit);
        // Version ids are unique: they lead each row back to its data.
        let at: std::collections::BTreeMap<&str, usize> = (data.iter().enumerate())
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        rows.iter().filter_map(|r| at.get(r.id).copied()).collect()
    };
    let mut slots: Vec<Option<RowData>> = data.into_iter().map(Some).collect();
    (picked.into_iter())
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}
