//! Conditions, orderings and the queries of the view (DESIGN §4), following verifiable-storage-go.
//!
//! Every version of every record is a [`Row`]: its metadata plus its JSON value. Two queries:
//!
//! * [`select`] filters *all versions* by a condition, then sorts and limits: history search.
//!   A record whose old version matches is found even if its latest version does not.
//! * [`list_latest`] is verifiable-storage-go's `ListLatest`, in three steps: (1) filter all
//!   versions by `pre_filter`, (2) reduce each record to its latest surviving version (highest
//!   `(seq, clock, id)`), (3) filter those by `condition`. Step 3 runs *after* the reduction on
//!   purpose: a record whose v0 said `status = "open"` and whose v1 says `"closed"` is *not*
//!   listed by `status = "open"`, because its latest version no longer matches; filtering before
//!   reducing (the easy mistake) would return the stale v0. The `pre_filter` is for the other
//!   intent: choosing which versions may count as latest at all (`$clock <= 1000`: "as of 1000").
//!
//! A [`Path`] names metadata (`$key`, `$clock`, …) or a place in the JSON value (`a.b.0.c`). A
//! path that leads nowhere is *absent*: every comparison with it is false except `!=`. Numbers
//! compare by value, exactly (`1 == 1.0`, and `2^53 + 1 != 2^53` although both are one f64);
//! `<`, `<=`, `>`, `>=` compare numbers with numbers and strings with strings (bytewise) only.
//! Sorting ([`compare_rows`]) is total: `absent < null < false < true < numbers < strings <
//! arrays < objects`, ties broken by `(clock, id)`, so every sort is deterministic.
//!
//! The text form ([`Condition::parse`], [`Order::parse`], [`Path::parse`]) is what the CLI and
//! the HTTP API accept, and `Display` writes it back. The parser checks its limits (length,
//! nesting, comparisons) before it recurses, so hostile input gets an error, never a crash.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// Longest accepted query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Deepest accepted nesting of parentheses and `not` in a parsed condition.
pub const MAX_DEPTH: usize = 32;
/// Most comparisons accepted in one parsed condition.
pub const MAX_COMPARISONS: usize = 256;
/// JSON nested deeper than this equals nothing (bounds the recursion of `json_eq`).
const MAX_VALUE_DEPTH: usize = 128;

/// The metadata + value of one record version, as the view hands it to a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<'a> {
    /// The record key.
    pub key: &'a str,
    /// Text form of the record prefix id (`ev…`), for `$record`.
    pub record: &'a str,
    /// Text form of this version's event id (`ev…`), for `$id`.
    pub id: &'a str,
    /// Text form of the author's public key (`pk…`), for `$author`.
    pub author: &'a str,
    /// Sequence number of this version in its record (0 = first version).
    pub seq: u64,
    /// Lamport clock of the event.
    pub clock: u64,
    /// The author's advisory wall clock, in milliseconds.
    pub time_ms: u64,
    /// Whether this version is a tombstone.
    pub deleted: bool,
    /// The JSON value; `None` for tombstones and for values the reader cannot see.
    pub value: Option<&'a Value>,
}

/// A path into a row: a metadata field or a JSON path into the value.
///
/// Text form: `$key`, `$record`, `$id`, `$author`, `$seq`, `$clock`, `$time_ms`, `$deleted` for
/// metadata; otherwise `.`-separated segments (`a.b.0.c`) of `[A-Za-z0-9_-]` or double-quoted
/// JSON strings (`meta."content-type"`, `"not"`). A numeric segment indexes an array (and is a
/// plain key in an object). `.` or the empty text is the whole value; a leading `.` is allowed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Path {
    /// A metadata field of the version.
    Meta(MetaField),
    /// Segments into the JSON value; empty = the whole value.
    Value(Vec<String>),
}

/// The metadata fields of a version, see [`Row`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MetaField {
    /// `$key`: the record key (a string).
    Key,
    /// `$record`: the record prefix id (a string).
    Record,
    /// `$id`: this version's event id (a string).
    Id,
    /// `$author`: the author's public key (a string).
    Author,
    /// `$seq`: the sequence number (a number).
    Seq,
    /// `$clock`: the Lamport clock (a number).
    Clock,
    /// `$time_ms`: the author's wall clock (a number).
    TimeMs,
    /// `$deleted`: whether the version is a tombstone (a bool).
    Deleted,
}

const META_NAMES: [(MetaField, &str); 8] = [
    (MetaField::Key, "key"),
    (MetaField::Record, "record"),
    (MetaField::Id, "id"),
    (MetaField::Author, "author"),
    (MetaField::Seq, "seq"),
    (MetaField::Clock, "clock"),
    (MetaField::TimeMs, "time_ms"),
    (MetaField::Deleted, "deleted"),
];

/// A condition on a row (DESIGN §4).
///
/// Text form, parsed by [`Condition::parse`]:
///
/// ```text
/// or         := and ("or" and)*
/// and        := unary ("and" unary)*
/// unary      := "not" unary | "(" or ")" | "true" | "false" | comparison
/// comparison := PATH ("=" | "==" | "!=" | "<" | "<=" | ">" | ">=") JSON
///             | PATH "^=" JSON-STRING     (string prefix)
///             | PATH "in" JSON-ARRAY
/// ```
///
/// Keywords are case-insensitive; `not` binds tighter than `and`, `and` tighter than `or`.
/// `JSON` is a JSON literal: `"text"` (JSON escapes), `12`, `-1.5e3`, `true`, `false`, `null`,
/// `[..]`, `{..}`. A value field named `not`, `true` or `false` must be quoted (`"not" = 1`);
/// [`Path`] has the path syntax. Empty text means `true`. Examples:
///
/// ```text
/// status = "open"
/// status = "open" and (size >= 10 or $key ^= "users/") and not tags.0 in ["x", 1]
/// $deleted = false and $clock > 100
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    /// Always true.
    True,
    /// The path's value equals the literal (numbers by value: `1 == 1.0`).
    Eq(Path, Value),
    /// Not [`Condition::Eq`]; true when the path is absent.
    Ne(Path, Value),
    /// Less than: numbers with numbers, strings with strings; any other pairing is false.
    Lt(Path, Value),
    /// Less than or equal (pairing as for `Lt`).
    Le(Path, Value),
    /// Greater than (pairing as for `Lt`).
    Gt(Path, Value),
    /// Greater than or equal (pairing as for `Lt`).
    Ge(Path, Value),
    /// Equals one of the listed values.
    In(Path, Vec<Value>),
    /// The path's value is a string starting with this one.
    Prefix(Path, String),
    /// All of these hold (true when empty).
    And(Vec<Condition>),
    /// One of these holds (false when empty).
    Or(Vec<Condition>),
    /// This does not hold.
    Not(Box<Condition>),
}

/// Why a query text did not parse. Offsets are in bytes from the start of the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// Over [`MAX_QUERY_BYTES`], [`MAX_DEPTH`] or [`MAX_COMPARISONS`].
    #[error("query too large at byte {offset}: more than {max} {what}; simplify or split it")]
    TooLarge {
        /// Where the limit was crossed.
        offset: usize,
        /// What is counted: "bytes", "levels of nesting" or "comparisons".
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// Something the grammar does not allow here.
    #[error("expected {expected} at byte {offset}, found {found}")]
    Unexpected {
        /// Where.
        offset: usize,
        /// What the grammar allows here.
        expected: &'static str,
        /// What is there instead (quoted), or "the end of the input".
        found: String,
    },
    /// A double-quoted string without its closing quote.
    #[error("unterminated string starting at byte {offset}; close it with a double quote")]
    UnterminatedString {
        /// Where the string opens.
        offset: usize,
    },
    /// Text in the place of a literal that is not valid JSON.
    #[error(
        "invalid JSON literal {text} at byte {offset} ({reason}); expected a string in double \
         quotes, a number, true, false, null, an array or an object"
    )]
    BadLiteral {
        /// Where the literal starts.
        offset: usize,
        /// The literal (quoted, possibly shortened).
        text: String,
        /// What serde_json said.
        reason: String,
    },
}

/// A sort order: by a path's value, ascending or descending.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// What to sort by.
    pub by: Path,
    /// Largest first.
    pub descending: bool,
}

impl Order {
    /// Parses `PATH` (ascending) or `-PATH` (descending): `$clock`, `-$clock`, `$key`, `-size`,
    /// `a.b`. Note that `clock` is the value field `clock`; the Lamport clock is `$clock`.
    pub fn parse(text: &str) -> Result<Order, QueryError> {
        let mut p = Parser::new(text)?;
        let descending = p.peek() == Some(b'-');
        p.pos += usize::from(descending);
        Ok(Order {
            by: p.parse_whole_path()?,
            descending,
        })
    }
}

impl Path {
    /// Parses the text form of a path (see [`Path`]); `""` and `"."` are the whole value.
    pub fn parse(text: &str) -> Result<Path, QueryError> {
        Parser::new(text)?.parse_whole_path()
    }
}

impl Condition {
    /// Whether `row` satisfies this condition.
    pub fn matches(&self, row: &Row<'_>) -> bool {
        use Condition as C;
        match self {
            C::True => true,
            C::Eq(p, v) => resolve(row, p).is_some_and(|s| json_eq(s, v, 0)),
            C::Ne(p, v) => !resolve(row, p).is_some_and(|s| json_eq(s, v, 0)),
            C::Lt(p, v) => ordered(row, p, v) == Some(Ordering::Less),
            C::Le(p, v) => ordered(row, p, v).is_some_and(Ordering::is_le),
            C::Gt(p, v) => ordered(row, p, v) == Some(Ordering::Greater),
            C::Ge(p, v) => ordered(row, p, v).is_some_and(Ordering::is_ge),
            C::In(p, vs) => resolve(row, p).is_some_and(|s| vs.iter().any(|v| json_eq(s, v, 0))),
            C::Prefix(p, pre) => {
                matches!(resolve(row, p), Some(Scalar::Str(s)) if s.starts_with(pre.as_str()))
            }
            C::And(cs) => cs.iter().all(|c| c.matches(row)),
            C::Or(cs) => cs.iter().any(|c| c.matches(row)),
            C::Not(c) => !c.matches(row),
        }
    }

    /// A key prefix every row matching this condition has: the longest `$key ^= "…"` that
    /// stands alone or among the terms of a top-level `and`. A query may then look only at the
    /// keys under it.
    pub fn key_prefix(&self) -> Option<&str> {
        match self {
            Condition::Prefix(Path::Meta(MetaField::Key), p) => Some(p),
            Condition::And(cs) => {
                (cs.iter().filter_map(Condition::key_prefix)).max_by_key(|p| p.len())
            }
            _ => None,
        }
    }

    /// Parses the CLI/HTTP text form (grammar in the [`Condition`] docs), e.g.
    /// `status = "open" and (size >= 10 or $key ^= "users/") and not tags.0 in ["x", 1]`.
    /// Limits: [`MAX_QUERY_BYTES`], [`MAX_DEPTH`], [`MAX_COMPARISONS`].
    pub fn parse(text: &str) -> Result<Condition, QueryError> {
        let mut p = Parser::new(text)?;
        if p.peek().is_none() {
            return Ok(Condition::True);
        }
        let c = p.parse_chain("or")?;
        p.skip_ws();
        match p.peek() {
            None => Ok(c),
            Some(_) => Err(p.unexpected_at(p.pos, "`and`, `or` or the end of the input")),
        }
    }

    /// Total number of nodes (combinators and comparisons), an upper bound of
    /// [`Condition::depth`], so callers can limit conditions that did not come from `parse`.
    pub fn complexity(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![self];
        while let Some(c) = stack.pop() {
            count += 1;
            stack.extend(c.children());
        }
        count
    }

    /// Nesting depth: 1 for a comparison, one more per enclosing `And`, `Or` or `Not`.
    pub fn depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 1)];
        while let Some((c, d)) = stack.pop() {
            max = max.max(d);
            stack.extend(c.children().iter().map(|child| (child, d + 1)));
        }
        max
    }

    fn children(&self) -> &[Condition] {
        match self {
            Condition::And(cs) | Condition::Or(cs) => cs,
            Condition::Not(c) => std::slice::from_ref(&**c),
            _ => &[],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// A resolved value, borrowed from the row; metadata never allocates.
#[derive(Debug, Clone, Copy)]
enum Scalar<'r> {
    Null,
    Bool(bool),
    Num(Num),
    Str(&'r str),
    Array(&'r [Value]),
    Object(&'r Map<String, Value>),
}

/// A JSON number: integers exactly (u64 and i64 both fit i128), others as f64.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn num(n: &Number) -> Num {
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => Num::Int(i128::from(u)),
        (None, Some(i)) => Num::Int(i128::from(i)),
        // Not an integer, so an f64 (serde_json numbers are finite; the 0.0 is never used).
        _ => Num::Float(n.as_f64().unwrap_or(0.0)),
    }
}

fn scalar(v: &Value) -> Scalar<'_> {
    match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => Scalar::Num(num(n)),
        Value::String(s) => Scalar::Str(s),
        Value::Array(a) => Scalar::Array(a),
        Value::Object(o) => Scalar::Object(o),
    }
}

/// The value `path` leads to in `row`, `None` if absent.
fn resolve<'r>(row: &Row<'r>, path: &Path) -> Option<Scalar<'r>> {
    let int = |n: u64| Scalar::Num(Num::Int(i128::from(n)));
    let segments = match path {
        Path::Value(segments) => segments,
        Path::Meta(field) => {
            return Some(match field {
                MetaField::Key => Scalar::Str(row.key),
                MetaField::Record => Scalar::Str(row.record),
                MetaField::Id => Scalar::Str(row.id),
                MetaField::Author => Scalar::Str(row.author),
                MetaField::Seq => int(row.seq),
                MetaField::Clock => int(row.clock),
                MetaField::TimeMs => int(row.time_ms),
                MetaField::Deleted => Scalar::Bool(row.deleted),
            });
        }
    };
    let mut v = row.value?;
    for seg in segments {
        v = match v {
            Value::Object(o) => o.get(seg.as_str())?,
            Value::Array(a) if seg.bytes().all(|b| b.is_ascii_digit()) => {
                a.get(seg.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(scalar(v))
}

/// Compares an integer with a finite float exactly, rounding neither to the other's type.
fn int_float_cmp(i: i128, f: f64) -> Ordering {
    const TWO_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f.is_nan() || f >= TWO_127 {
        return Ordering::Less;
    }
    if f < -TWO_127 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    // |t| <= 2^127 and t is whole, so the cast is exact (-2^127 is i128::MIN).
    match i.cmp(&(t as i128)) {
        Ordering::Equal => t.partial_cmp(&f).unwrap_or(Ordering::Equal),
        o => o,
    }
}

fn num_cmp(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Num::Int(x), Num::Float(y)) => int_float_cmp(x, y),
        (Num::Float(x), Num::Int(y)) => int_float_cmp(y, x).reverse(),
    }
}

/// JSON equality with numbers compared by value, down to [`MAX_VALUE_DEPTH`].
fn json_eq(a: Scalar<'_>, b: &Value, depth: usize) -> bool {
    let eq = |x: &Value, y: &Value| depth < MAX_VALUE_DEPTH && json_eq(scalar(x), y, depth + 1);
    match (a, scalar(b)) {
        (Scalar::Null, Scalar::Null) => true,
        (Scalar::Bool(x), Scalar::Bool(y)) => x == y,
        (Scalar::Num(x), Scalar::Num(y)) => num_cmp(x, y).is_eq(),
        (Scalar::Str(x), Scalar::Str(y)) => x == y,
        (Scalar::Array(x), Scalar::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(xv, yv)| eq(xv, yv))
        }
        (Scalar::Object(x), Scalar::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, xv)| y.get(k).is_some_and(|yv| eq(xv, yv)))
        }
        _ => false,
    }
}

/// How the path's value orders against a literal, if both are numbers or both strings.
fn ordered(row: &Row<'_>, path: &Path, literal: &Value) -> Option<Ordering> {
    match (resolve(row, path)?, scalar(literal)) {
        (Scalar::Num(x), Scalar::Num(y)) => Some(num_cmp(x, y)),
        (Scalar::Str(x), Scalar::Str(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Ordering and the queries

/// What a row sorts by: the resolved value, plus the JSON text of an array or object.
type SortKey<'r> = (Option<Scalar<'r>>, String);

fn sort_key<'r>(order: Option<&Order>, row: &Row<'r>) -> SortKey<'r> {
    let value = order.and_then(|o| resolve(row, &o.by));
    let text = match value {
        Some(Scalar::Array(a)) => serde_json::to_string(a),
        Some(Scalar::Object(o)) => serde_json::to_string(o),
        _ => Ok(String::new()),
    };
    (value, text.unwrap_or_default())
}

fn rank(value: Option<Scalar<'_>>) -> u8 {
    match value {
        None => 0,
        Some(Scalar::Null) => 1,
        Some(Scalar::Bool(_)) => 2,
        Some(Scalar::Num(_)) => 3,
        Some(Scalar::Str(_)) => 4,
        Some(Scalar::Array(_)) => 5,
        Some(Scalar::Object(_)) => 6,
    }
}

fn cmp_sort_keys((x, x_text): &SortKey<'_>, (y, y_text): &SortKey<'_>) -> Ordering {
    match (x, y) {
        (Some(Scalar::Bool(a)), Some(Scalar::Bool(b))) => a.cmp(b),
        (Some(Scalar::Num(a)), Some(Scalar::Num(b))) => num_cmp(*a, *b),
        (Some(Scalar::Str(a)), Some(Scalar::Str(b))) => a.cmp(b),
        _ => rank(*x).cmp(&rank(*y)).then_with(|| x_text.cmp(y_text)),
    }
}

/// Compares event ids in the order of their raw bytes, as the view does: RFC 4648 base32 is
/// big-endian, so ordering symbols by value (`a` = 0 … `7` = 31) orders the bytes. Any other
/// byte ranks above 31, which keeps the order total on arbitrary text.
fn cmp_id_text(a: &str, b: &str) -> Ordering {
    fn symbol(c: u8) -> u16 {
        match c {
            b'a'..=b'z' => u16::from(c - b'a'),
            b'2'..=b'7' => u16::from(c - b'2') + 26,
            _ => 32 + u16::from(c),
        }
    }
    a.bytes().map(symbol).cmp(b.bytes().map(symbol))
}

fn cmp_keyed(
    order: Option<&Order>,
    a: (&SortKey<'_>, &Row<'_>),
    b: (&SortKey<'_>, &Row<'_>),
) -> Ordering {
    let by_value = cmp_sort_keys(a.0, b.0);
    let by_value = if order.is_some_and(|o| o.descending) {
        by_value.reverse()
    } else {
        by_value
    };
    let (a, b) = (a.1, b.1);
    by_value
        .then(a.clock.cmp(&b.clock))
        .then_with(|| cmp_id_text(a.id, b.id))
}

/// Total comparison of two rows under an optional order: by the path's value (absent < null <
/// false < true < numbers < strings < arrays < objects; arrays and objects by their
/// `serde_json::to_string` text), reversed if descending, then ties broken by `(clock, id)`
/// ascending, so every sort is total and deterministic. Ids compare in raw-byte order.
pub fn compare_rows(order: Option<&Order>, a: &Row<'_>, b: &Row<'_>) -> Ordering {
    cmp_keyed(order, (&sort_key(order, a), a), (&sort_key(order, b), b))
}

/// Sorts `rows` in place by `order` ([`compare_rows`]) and truncates to `limit`.
pub fn sort_and_limit(rows: &mut Vec<Row<'_>>, order: Option<&Order>, limit: Option<usize>) {
    // Each key once: an array or object key serializes the value.
    let mut keyed: Vec<_> = rows.drain(..).map(|r| (sort_key(order, &r), r)).collect();
    let cmp = |x: &(SortKey<'_>, Row<'_>), y: &(SortKey<'_>, Row<'_>)| {
        cmp_keyed(order, (&x.0, &x.1), (&y.0, &y.1))
    };
    if let Some(n) = limit.filter(|n| *n < keyed.len()) {
        if n > 0 {
            keyed.select_nth_unstable_by(n - 1, cmp);
        }
        keyed.truncate(n);
    }
    keyed.sort_by(cmp);
    rows.extend(keyed.into_iter().map(|(_, r)| r));
}

/// verifiable-storage-go's `Select`: every version (tombstones included) matching `condition`,
/// sorted by `order` and truncated to `limit`.
pub fn select<'a, I>(
    rows: I,
    condition: &Condition,
    order: Option<&Order>,
    limit: Option<usize>,
) -> Vec<Row<'a>>
where
    I: IntoIterator<Item = Row<'a>>,
{
    let mut out: Vec<_> = rows.into_iter().filter(|r| condition.matches(r)).collect();
    sort_and_limit(&mut out, order, limit);
    out
}

/// verifiable-storage-go's `ListLatest`. `records` yields, per record, its versions in any
/// order. Per record: keep the versions matching `pre_filter`; take the latest of those (highest
/// `(seq, clock, id)`: a later version in the chain wins, then the higher clock, then the higher
/// id); keep it if it is not a tombstone and matches `condition`. Then sort and limit.
///
/// Deleted records are not returned: a record whose latest pre-filtered version is a tombstone
/// is skipped. But a tombstone has no value, so a `pre_filter` on value paths never lets one
/// count as latest, and the version before the delete is listed. To hide deleted records under
/// such a filter, let tombstones through: `type = "user" or $deleted = true`.
pub fn list_latest<'a, I, R>(
    records: I,
    pre_filter: &Condition,
    condition: &Condition,
    order: Option<&Order>,
    limit: Option<usize>,
) -> Vec<Row<'a>>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = Row<'a>>,
{
    let newer = |a: &Row<'_>, b: &Row<'_>| {
        let by_number = (a.seq, a.clock).cmp(&(b.seq, b.clock));
        by_number.then_with(|| cmp_id_text(a.id, b.id)).is_gt()
    };
    let mut out = Vec::new();
    for versions in records {
        let mut latest: Option<Row<'a>> = None;
        for row in versions.into_iter().filter(|r| pre_filter.matches(r)) {
            if latest.as_ref().is_none_or(|l| newer(&row, l)) {
                latest = Some(row);
            }
        }
        out.extend(latest.filter(|r| !r.deleted && condition.matches(r)));
    }
    sort_and_limit(&mut out, order, limit);
    out
}

mod parse;
mod text;

use parse::Parser;

#[cfg(test)]
mod tests;
