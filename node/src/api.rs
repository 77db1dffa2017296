//! The local HTTP API (JSON under `/v1`, Prometheus text at `/metrics`).
//!
//! Writers sign locally: a client asks for a [`Template`] (parents, clock, its own prev/seq,
//! the key's latest version), builds and signs the event with its own key, and posts the
//! envelope. The node never sees a writer's secret. Envelopes travel as lowercase hex.

use std::convert::Infallible;
use std::net::SocketAddr;

use ate_protocol::replica::{Reason, Verdict};
use ate_protocol::{ChainId, Condition, Event, EventId, Order, PublicKey, Template, Version};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use crate::node::{Client, NodeError, change_label};

/// An API error: a status code and a message that says what was wrong.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let code = match e {
            NodeError::UnknownChain(_) => StatusCode::NOT_FOUND,
            NodeError::BadGenesis(_) => StatusCode::BAD_REQUEST,
            NodeError::NoData => StatusCode::CONFLICT,
            NodeError::Storage(..) | NodeError::NotDurable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(code, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lowercase or uppercase hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn parse_chain(text: &str) -> Result<ChainId, ApiError> {
    text.parse().map_err(|e| bad(format!("{e}")))
}

/// The router.
pub fn router(client: Client) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/chains", post(create_chain))
        .route("/v1/chains/{chain}/follow", post(follow))
        .route("/v1/chains/{chain}/template", get(template))
        .route("/v1/chains/{chain}/events", post(submit))
        .route("/v1/chains/{chain}/events/{id}", get(event))
        .route("/v1/chains/{chain}/latest", get(latest))
        .route("/v1/chains/{chain}/history", get(history))
        .route("/v1/chains/{chain}/versions/{id}", get(version))
        .route("/v1/chains/{chain}/records/{prefix}", get(record))
        .route("/v1/chains/{chain}/select", get(select))
        .route("/v1/chains/{chain}/list-latest", get(list_latest))
        .route("/v1/chains/{chain}/changes", get(changes))
        .route("/v1/chains/{chain}/backup", get(backup))
        .route("/v1/chains/{chain}/compact", post(compact))
        .route("/v1/chains/{chain}/read-epoch", get(read_epoch))
        .route("/v1/chains/{chain}/shares", get(shares))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(client)
}

/// axum's own rejections (malformed JSON or query strings, a body over the limit, an unknown
/// path) are plain text; every error of the API is `{"error": "…"}`, so wrap them.
async fn json_errors(r: Response) -> Response {
    let is_json = (r.headers().get(axum::http::header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let status = r.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return r;
    }
    // Rejection texts are short; a longer body is cut.
    let text = match axum::body::to_bytes(r.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    ApiError(status, text).into_response()
}

/// Serves the API until the listener fails.
pub async fn serve(addr: SocketAddr, client: Client) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot bind the API on {addr}: {e} (is another node running? use --api)")
    })?;
    tracing::info!("HTTP API on http://{addr}/v1/status");
    axum::serve(listener, router(client)).await?;
    Ok(())
}

async fn status(State(c): State<Client>) -> ApiResult<crate::node::NodeStatus> {
    Ok(Json(c.status().await?))
}

#[derive(Deserialize)]
struct CreateChain {
    genesis: String,
}

async fn create_chain(
    State(c): State<Client>,
    Json(body): Json<CreateChain>,
) -> ApiResult<serde_json::Value> {
    let bytes = from_hex(&body.genesis).ok_or_else(|| bad("genesis must be hex"))?;
    let id = c.create_chain(bytes).await?;
    Ok(Json(json!({ "chain": id })))
}

async fn follow(
    State(c): State<Client>,
    Path(chain): Path<String>,
) -> ApiResult<serde_json::Value> {
    let chain = parse_chain(&chain)?;
    c.follow(chain).await?;
    Ok(Json(json!({ "chain": chain, "following": true })))
}

#[derive(Deserialize)]
struct TemplateQuery {
    author: String,
    key: Option<String>,
}

async fn template(
    State(c): State<Client>,
    Path(chain): Path<String>,
    Query(q): Query<TemplateQuery>,
) -> ApiResult<Template> {
    let chain = parse_chain(&chain)?;
    let author: PublicKey = q.author.parse().map_err(|e| bad(format!("author: {e}")))?;
    let t = c
        .read(chain, move |r| {
            Template::for_writer(r, &author, q.key.as_deref())
        })
        .await?;
    Ok(Json(t))
}

#[derive(Deserialize)]
struct Submit {
    events: Vec<String>,
}

/// The result of one submitted event.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubmitResult {
    /// Event id, when the bytes decoded.
    pub id: Option<EventId>,
    /// `valid`, `duplicate`, `pending`, `overloaded` or `invalid`.
    pub verdict: String,
    /// Why it is invalid.
    pub reason: Option<String>,
}

fn verdict_result(id: Option<EventId>, v: &Verdict) -> SubmitResult {
    let (verdict, reason) = match v {
        Verdict::Valid => ("valid", None),
        Verdict::Duplicate => ("duplicate", None),
        Verdict::Pending { .. } => (
            "pending",
            Some("waiting for missing dependencies".to_string()),
        ),
        Verdict::Overloaded => (
            "overloaded",
            Some("pending buffer full; retry later".to_string()),
        ),
        Verdict::Invalid(r) => ("invalid", Some(r.to_string())),
    };
    SubmitResult {
        id,
        verdict: verdict.into(),
        reason,
    }
}

async fn submit(
    State(c): State<Client>,
    Path(chain): Path<String>,
    Json(body): Json<Submit>,
) -> Result<Response, ApiError> {
    let chain = parse_chain(&chain)?;
    if body.events.len() > 10_000 {
        return Err(bad("at most 10000 events per request"));
    }
    let params = c.read(chain, |r| *r.params()).await?;
    let mut events = Vec::new();
    let mut results: Vec<Option<SubmitResult>> = Vec::new();
    for hex in &body.events {
        let decoded = from_hex(hex)
            .ok_or(Reason::Decode(ate_protocol::DecodeError::Truncated(
                "not hex",
            )))
            .and_then(|b| Event::decode(Some(&chain), &b, &params).map_err(Reason::from));
        match decoded {
            Ok(ev) => {
                events.push(ev);
                results.push(None);
            }
            Err(r) => results.push(Some(verdict_result(None, &Verdict::Invalid(r)))),
        }
    }
    let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
    let verdicts = c.submit(chain, events).await?;
    let mut it = ids.into_iter().zip(verdicts);
    let results: Vec<SubmitResult> = results
        .into_iter()
        .filter_map(|r| r.or_else(|| it.next().map(|(id, v)| verdict_result(Some(id), &v))))
        .collect();
    let refused = results.iter().find(|r| r.verdict == "invalid");
    let code = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let error = refused
        .and_then(|r| r.reason.clone())
        .map(|r| format!("event refused: {r}"));
    Ok((code, Json(json!({ "results": results, "error": error }))).into_response())
}

async fn event(
    State(c): State<Client>,
    Path((chain, id)): Path<(String, String)>,
) -> ApiResult<serde_json::Value> {
    let chain = parse_chain(&chain)?;
    let id: EventId = id.parse().map_err(|e| bad(format!("{e}")))?;
    let ev = c.read(chain, move |r| r.event(&id)).await?;
    let ev = ev.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no event {id} in chain {chain}"),
        )
    })?;
    Ok(Json(json!({ "id": id, "event": to_hex(&ev.encode()) })))
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
    version: Option<u64>,
    /// `history`: at most this many versions, the oldest first.
    limit: Option<usize>,
}

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what)
}

async fn latest(
    State(c): State<Client>,
    Path(chain): Path<String>,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Version> {
    let chain = parse_chain(&chain)?;
    let key = q.key.clone();
    let v = c
        .read(chain, move |r| {
            let view = r.view();
            let latest = view.get_latest(&q.key)?;
            match q.version {
                Some(n) => view.get_by_sequence(&latest.record, n),
                None => Some(latest),
            }
        })
        .await?;
    v.map(Json).ok_or_else(|| {
        not_found(format!(
            "no record `{key}` (or no such version) in chain {chain}"
        ))
    })
}

async fn history(
    State(c): State<Client>,
    Path(chain): Path<String>,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Vec<Version>> {
    let chain = parse_chain(&chain)?;
    let limit = row_limit(q.limit)?;
    let rows = c
        .read(chain, move |r| {
            let mut h = r.view().history(&q.key);
            h.truncate(limit);
            h
        })
        .await?;
    within_rows(rows, "this key's history")
}

async fn version(
    State(c): State<Client>,
    Path((chain, id)): Path<(String, String)>,
) -> ApiResult<Version> {
    let chain = parse_chain(&chain)?;
    let id: EventId = id.parse().map_err(|e| bad(format!("{e}")))?;
    let v = c.read(chain, move |r| r.view().get_by_id(&id)).await?;
    v.map(Json)
        .ok_or_else(|| not_found(format!("no version {id}")))
}

#[derive(Deserialize)]
struct SeqQuery {
    seq: Option<u64>,
    /// At most this many versions, the oldest first.
    limit: Option<usize>,
}

async fn record(
    State(c): State<Client>,
    Path((chain, prefix)): Path<(String, String)>,
    Query(q): Query<SeqQuery>,
) -> ApiResult<Vec<Version>> {
    let chain = parse_chain(&chain)?;
    let prefix: EventId = prefix.parse().map_err(|e| bad(format!("{e}")))?;
    let limit = row_limit(q.limit)?;
    let vs = c
        .read(chain, move |r| match q.seq {
            Some(n) => r.view().get_by_sequence(&prefix, n).into_iter().collect(),
            None => {
                let mut all = r.view().list_by_prefix(&prefix);
                all.truncate(limit);
                all
            }
        })
        .await?;
    within_rows(vs, "this record")
}

#[derive(Deserialize)]
struct ListQuery {
    pre: Option<String>,
    #[serde(rename = "where")]
    condition: Option<String>,
    order: Option<String>,
    limit: Option<usize>,
}

fn parse_cond(text: Option<&str>) -> Result<Condition, ApiError> {
    text.map_or(Ok(Condition::True), |t| {
        Condition::parse(t).map_err(|e| bad(format!("condition: {e}")))
    })
}

fn parse_order(text: Option<&str>) -> Result<Option<Order>, ApiError> {
    text.map(|t| Order::parse(t).map_err(|e| bad(format!("order: {e}"))))
        .transpose()
}

async fn select(
    State(c): State<Client>,
    Path(chain): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<Version>> {
    let chain = parse_chain(&chain)?;
    let cond = parse_cond(q.condition.as_deref())?;
    let order = parse_order(q.order.as_deref())?;
    let limit = row_limit(q.limit)?;
    let rows = c
        .read(chain, move |r| {
            r.view().select(&cond, order.as_ref(), Some(limit))
        })
        .await?;
    within_rows(rows, "the condition")
}

async fn list_latest(
    State(c): State<Client>,
    Path(chain): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<Version>> {
    let chain = parse_chain(&chain)?;
    let pre = parse_cond(q.pre.as_deref())?;
    let cond = parse_cond(q.condition.as_deref())?;
    let order = parse_order(q.order.as_deref())?;
    let limit = row_limit(q.limit)?;
    let rows = c
        .read(chain, move |r| {
            r.view()
                .list_latest(&pre, &cond, order.as_ref(), Some(limit))
        })
        .await?;
    within_rows(rows, "the condition")
}

async fn changes(
    State(c): State<Client>,
    Path(chain): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let chain = parse_chain(&chain)?;
    c.read(chain, |_| ()).await?;
    let rx = c.subscribe(chain).await?;
    let stream = BroadcastStream::new(rx).filter_map(|change| {
        let change = change.ok()?;
        let data = json!({ "key": change.key, "id": change.id, "kind": change_label(change.kind) });
        Some(Ok(sse::Event::default()
            .event("change")
            .data(data.to_string())))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Drops the bodies of superseded versions and rewrites the log without them.
async fn compact(
    State(c): State<Client>,
    Path(chain): Path<String>,
) -> ApiResult<crate::node::CompactReport> {
    let chain = parse_chain(&chain)?;
    Ok(Json(c.compact(chain).await?))
}

/// Streams a consistent backup of the chain's redo log (the `ate backup` file format),
/// copied while the node keeps writing.
async fn backup(State(c): State<Client>, Path(chain): Path<String>) -> Result<Response, ApiError> {
    let chain = parse_chain(&chain)?;
    let source = c.backup(chain).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter { tx: tx.clone() };
        if let Err(e) = source.copy_to(&mut out, &mut ate_store::NoProgress) {
            // The client sees a broken stream (and the restore's verification fails loudly).
            tracing::warn!(chain = %chain.short(), "backup failed: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        body,
    )
        .into_response())
}

/// A `Write` that hands chunks to an HTTP body stream.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(buf.to_vec()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The newest epoch of a read scope (`GET …/read-epoch?scope=P`): what an admin needs to
/// share it or start the next one, and what a writer needs to seal under it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadEpochAnswer {
    /// The scope asked about.
    pub scope: String,
    /// The newest epoch; `None` before the scope's first share.
    pub epoch: Option<u64>,
    /// The epoch's key ids, hex (more than one if two admins started it concurrently).
    pub key_ids: Vec<String>,
    /// The epoch's readers, as `reader…` text.
    pub readers: Vec<String>,
}

/// Read key share events addressed to one reader (`GET …/shares?reader=pk…[&scope=P]`), as
/// hex envelopes in acceptance order. The node cannot open them; the reader's client does.
#[derive(Debug, Serialize, Deserialize)]
pub struct SharesAnswer {
    /// The share events.
    pub events: Vec<String>,
}

/// At most this many shares in one answer (a reader has one per scope and epoch).
pub const MAX_SHARES_PER_ANSWER: usize = 10_000;

/// At most this many versions in one answer of `select`, `list-latest`, `history` or
/// `records` (a client pages with `limit` and a narrower condition or prefix).
pub const MAX_ROWS_PER_ANSWER: usize = 10_000;

/// Largest request body: one event of the hard maximum size, hex-encoded, with room for a
/// batch of small ones and the JSON around them.
pub const MAX_BODY_BYTES: usize = 2 * ate_protocol::event::HARD_MAX_EVENT_BYTES + (1 << 20);

/// The `limit` to run a list query with: the client's (at most [`MAX_ROWS_PER_ANSWER`]), or
/// one more than that when absent, to tell "all of them" from "too many to answer".
fn row_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        Some(n) if n > MAX_ROWS_PER_ANSWER => Err(bad(format!(
            "limit {n} is over the most one answer holds ({MAX_ROWS_PER_ANSWER})"
        ))),
        Some(n) => Ok(n),
        None => Ok(MAX_ROWS_PER_ANSWER + 1),
    }
}

/// Refuses an answer that hit the [`row_limit`] of a query without `limit`.
fn within_rows(rows: Vec<Version>, what: &str) -> ApiResult<Vec<Version>> {
    if rows.len() > MAX_ROWS_PER_ANSWER {
        return Err(bad(format!(
            "over {MAX_ROWS_PER_ANSWER} versions match {what}: pass limit= (at most \
             {MAX_ROWS_PER_ANSWER}) or narrow it"
        )));
    }
    Ok(Json(rows))
}

#[derive(Deserialize)]
struct ScopeQuery {
    scope: Option<String>,
    reader: Option<String>,
}

async fn read_epoch(
    State(c): State<Client>,
    Path(chain): Path<String>,
    Query(q): Query<ScopeQuery>,
) -> ApiResult<ReadEpochAnswer> {
    let chain = parse_chain(&chain)?;
    let scope = q
        .scope
        .ok_or_else(|| bad("missing `scope`: the read scope (a key prefix; '' for all)"))?;
    let s = scope.clone();
    let epoch = c.read(chain, move |r| r.read_epoch(&s)).await?;
    Ok(Json(ReadEpochAnswer {
        scope,
        epoch: epoch.as_ref().map(|e| e.epoch),
        key_ids: epoch
            .iter()
            .flat_map(|e| &e.key_ids)
            .map(|k| to_hex(k))
            .collect(),
        readers: epoch
            .iter()
            .flat_map(|e| &e.readers)
            .map(|r| r.to_text())
            .collect(),
    }))
}

async fn shares(
    State(c): State<Client>,
    Path(chain): Path<String>,
    Query(q): Query<ScopeQuery>,
) -> ApiResult<SharesAnswer> {
    let chain = parse_chain(&chain)?;
    let reader: PublicKey = q
        .reader
        .ok_or_else(|| bad("missing `reader`: the reader's public key (pk…)"))?
        .parse()
        .map_err(|e| bad(format!("reader: {e}")))?;
    let scope = q.scope;
    let events = c
        .read(chain, move |r| {
            r.read_key_shares()
                .into_iter()
                .filter(|(_, s)| s.reader == reader)
                .filter(|(_, s)| scope.as_ref().is_none_or(|p| s.scope == *p))
                .filter_map(|(id, _)| r.event(&id))
                .take(MAX_SHARES_PER_ANSWER + 1)
                .map(|ev| to_hex(&ev.encode()))
                .collect::<Vec<_>>()
        })
        .await?;
    if events.len() > MAX_SHARES_PER_ANSWER {
        return Err(bad(format!(
            "over {MAX_SHARES_PER_ANSWER} shares for this reader; ask for one scope (`scope=`)"
        )));
    }
    Ok(Json(SharesAnswer { events }))
}

async fn metrics(State(c): State<Client>) -> Result<String, ApiError> {
    let status = c.status().await?;
    Ok(c.metrics().render(status.peers, &status.chains))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_answers_are_bounded() {
        assert_eq!(row_limit(Some(5)).unwrap(), 5);
        assert_eq!(row_limit(None).unwrap(), MAX_ROWS_PER_ANSWER + 1);
        let err = row_limit(Some(MAX_ROWS_PER_ANSWER + 1)).unwrap_err();
        assert_eq!(err.0, StatusCode::BAD_REQUEST);
        let row = Version {
            id: EventId([1; 32]),
            record: EventId([1; 32]),
            key: "k".into(),
            seq: 0,
            author: PublicKey([2; 32]),
            clock: 1,
            time_ms: 0,
            value: None,
            sealed: None,
            deleted: false,
            effective: true,
            latest: true,
            conflict: false,
            compacted: false,
        };
        // All of them fit: answered. One more than an answer holds: refused, not cut short.
        let fits = vec![row.clone(); MAX_ROWS_PER_ANSWER];
        assert_eq!(within_rows(fits, "x").unwrap().0.len(), MAX_ROWS_PER_ANSWER);
        let over = vec![row; MAX_ROWS_PER_ANSWER + 1];
        let err = within_rows(over, "x").unwrap_err();
        assert!(err.1.contains("pass limit="), "{}", err.1);
    }
}
