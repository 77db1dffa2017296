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
use std::fmt;

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

// ---------------------------------------------------------------------------------------------
// Parsing

const OPERATORS: [&str; 8] = ["==", "!=", "<=", ">=", "^=", "=", "<", ">"];
const RESERVED: [&str; 6] = ["and", "or", "not", "in", "true", "false"];
const EXPECT_CONDITION: &str =
    "a condition (a path such as `status` or `$key`, `not`, `(`, `true` or `false`)";
const EXPECT_META: &str = "a metadata field ($key, $record, $id, $author, $seq, $clock, \
    $time_ms or $deleted; quote a value field with that name: \"$x\")";

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn too_large(offset: usize, what: &'static str, max: usize) -> QueryError {
    QueryError::TooLarge { offset, what, max }
}

/// A recursive-descent parser over bytes. It only stops at ASCII bytes or the end, so its
/// positions are char boundaries (and every slice goes through `get` anyway: no panics).
#[derive(Debug)]
struct Parser<'t> {
    text: &'t str,
    pos: usize,
    depth: usize,
    comparisons: usize,
}

impl<'t> Parser<'t> {
    /// A parser at the first non-blank byte of `text`.
    fn new(text: &'t str) -> Result<Self, QueryError> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(too_large(MAX_QUERY_BYTES, "bytes", MAX_QUERY_BYTES));
        }
        let mut p = Parser {
            text,
            pos: 0,
            depth: 0,
            comparisons: 0,
        };
        p.skip_ws();
        Ok(p)
    }

    fn bytes_from(&self, at: usize) -> &'t [u8] {
        self.text.as_bytes().get(at..).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes_from(self.pos).first().copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// The run of word bytes at `at`.
    fn word_at(&self, at: usize) -> &'t str {
        let len = self
            .bytes_from(at)
            .iter()
            .take_while(|b| is_word(**b))
            .count();
        self.text.get(at..at + len).unwrap_or_default()
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        self.word_at(self.pos).eq_ignore_ascii_case(keyword)
    }

    /// Skips blanks, then consumes `keyword` if it is the next word.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        self.skip_ws();
        let hit = self.at_keyword(keyword);
        self.pos += if hit { keyword.len() } else { 0 };
        hit
    }

    /// An error naming the token at `offset` (a `$name`, a word or one character).
    fn unexpected_at(&self, offset: usize, expected: &'static str) -> QueryError {
        let rest = self.text.get(offset..).unwrap_or_default();
        let dollar = usize::from(rest.starts_with('$'));
        let len = match dollar + self.word_at(offset + dollar).len() {
            0 => rest.chars().next().map_or(0, char::len_utf8),
            n => n,
        };
        let token: String = rest
            .get(..len)
            .unwrap_or_default()
            .chars()
            .take(24)
            .collect();
        let found = if token.is_empty() {
            "the end of the input".into()
        } else {
            format!("{token:?}")
        };
        QueryError::Unexpected {
            offset,
            expected,
            found,
        }
    }

    /// An `or` chain of `and` chains (`keyword` "or") or an `and` chain of unaries ("and").
    fn parse_chain(&mut self, keyword: &str) -> Result<Condition, QueryError> {
        let and = keyword == "and";
        let next = |p: &mut Self| {
            if and {
                p.parse_unary()
            } else {
                p.parse_chain("and")
            }
        };
        let mut parts = vec![next(self)?];
        while self.eat_keyword(keyword) {
            parts.push(next(self)?);
        }
        Ok(match (parts.len(), and) {
            (1, _) => parts.swap_remove(0),
            (_, true) => Condition::And(parts),
            (_, false) => Condition::Or(parts),
        })
    }

    fn parse_unary(&mut self) -> Result<Condition, QueryError> {
        self.skip_ws();
        let not = self.at_keyword("not");
        if !not && self.peek() != Some(b'(') {
            return if self.eat_keyword("true") {
                Ok(Condition::True)
            } else if self.eat_keyword("false") {
                Ok(Condition::Or(Vec::new()))
            } else {
                self.parse_comparison()
            };
        }
        // Count the level *before* recursing, so no input can exhaust the stack.
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(too_large(self.pos, "levels of nesting", MAX_DEPTH));
        }
        let inner = if not {
            self.pos += 3;
            Condition::Not(Box::new(self.parse_unary()?))
        } else {
            self.pos += 1;
            let inner = self.parse_chain("or")?;
            self.skip_ws();
            if self.peek() != Some(b')') {
                return Err(self.unexpected_at(self.pos, "`and`, `or` or `)`"));
            }
            self.pos += 1;
            inner
        };
        self.depth -= 1;
        Ok(inner)
    }

    fn parse_comparison(&mut self) -> Result<Condition, QueryError> {
        let start = self.pos;
        let path = self.parse_path(EXPECT_CONDITION)?;
        self.skip_ws();
        let rest = self.bytes_from(self.pos);
        let op = match OPERATORS.iter().find(|op| rest.starts_with(op.as_bytes())) {
            Some(op) => *op,
            None if self.at_keyword("in") => "in",
            None => {
                let expected = "an operator (=, !=, <, <=, >, >=, ^=, in)";
                return Err(self.unexpected_at(self.pos, expected));
            }
        };
        self.pos += op.len();
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(too_large(start, "comparisons", MAX_COMPARISONS));
        }
        self.skip_ws();
        let at = self.pos;
        Ok(match (op, self.parse_literal()?) {
            ("=" | "==", v) => Condition::Eq(path, v),
            ("!=", v) => Condition::Ne(path, v),
            ("<", v) => Condition::Lt(path, v),
            ("<=", v) => Condition::Le(path, v),
            (">", v) => Condition::Gt(path, v),
            (">=", v) => Condition::Ge(path, v),
            ("^=", Value::String(s)) => Condition::Prefix(path, s),
            ("in", Value::Array(vs)) => Condition::In(path, vs),
            ("in", _) => return Err(self.unexpected_at(at, "a JSON array after `in`")),
            _ => return Err(self.unexpected_at(at, "a string in double quotes after `^=`")),
        })
    }

    /// A path that must span the rest of the text (for [`Path::parse`], [`Order::parse`]).
    fn parse_whole_path(&mut self) -> Result<Path, QueryError> {
        let path = match self.peek() {
            None => Path::Value(Vec::new()),
            Some(_) => self.parse_path("a path (such as `a.b.0`, `$key` or `.`)")?,
        };
        self.skip_ws();
        match self.peek() {
            None => Ok(path),
            Some(_) => Err(self.unexpected_at(self.pos, "the end of the path")),
        }
    }

    fn parse_path(&mut self, expected: &'static str) -> Result<Path, QueryError> {
        let bytes = self.text.as_bytes();
        let segment_at = |at: usize| bytes.get(at).is_some_and(|b| *b == b'"' || is_word(*b));
        match self.peek() {
            Some(b'$') => {
                let name = self.word_at(self.pos + 1);
                let Some((field, _)) = META_NAMES.iter().find(|(_, n)| *n == name) else {
                    return Err(self.unexpected_at(self.pos, EXPECT_META));
                };
                self.pos += 1 + name.len();
                Ok(Path::Meta(*field))
            }
            Some(b'.') => {
                self.pos += 1;
                match segment_at(self.pos) {
                    true => self.parse_segments(),
                    false => Ok(Path::Value(Vec::new())),
                }
            }
            _ if segment_at(self.pos) => self.parse_segments(),
            _ => Err(self.unexpected_at(self.pos, expected)),
        }
    }

    fn parse_segments(&mut self) -> Result<Path, QueryError> {
        let mut segments = Vec::new();
        loop {
            let start = self.pos;
            if self.peek() == Some(b'"') {
                self.pos = self.scan_string(start)?;
                segments.push(self.json::<String>(start)?);
            } else {
                let word = self.word_at(start);
                if word.is_empty() {
                    let expected = "a path segment (letters, digits, `_`, `-` or a quoted string)";
                    return Err(self.unexpected_at(start, expected));
                }
                self.pos += word.len();
                segments.push(word.to_owned());
            }
            if self.peek() != Some(b'.') {
                return Ok(Path::Value(segments));
            }
            self.pos += 1;
        }
    }

    fn parse_literal(&mut self) -> Result<Value, QueryError> {
        let start = self.pos;
        self.pos = match self.peek() {
            Some(b'"') => self.scan_string(start)?,
            Some(b'[' | b'{') => self.scan_nested(start)?,
            _ => {
                let bare = |b: &&u8| b.is_ascii_alphanumeric() || b"_+-.".contains(*b);
                match self.bytes_from(start).iter().take_while(bare).count() {
                    0 => return Err(self.unexpected_at(start, "a JSON literal")),
                    len => start + len,
                }
            }
        };
        self.json(start)
    }

    /// Parses `start..self.pos` as JSON.
    fn json<T: serde::de::DeserializeOwned>(&self, start: usize) -> Result<T, QueryError> {
        let text = self.text.get(start..self.pos).unwrap_or_default();
        serde_json::from_str(text).map_err(|e| {
            let short: String = text.chars().take(24).collect();
            let (text, reason) = (format!("{short:?}"), e.to_string());
            QueryError::BadLiteral {
                offset: start,
                text,
                reason,
            }
        })
    }

    /// The end (exclusive) of the double-quoted string opening at `start`.
    fn scan_string(&self, start: usize) -> Result<usize, QueryError> {
        let mut i = start + 1;
        while let Some(&b) = self.text.as_bytes().get(i) {
            match b {
                b'\\' => i += 2,
                b'"' => return Ok(i + 1),
                _ => i += 1,
            }
        }
        Err(QueryError::UnterminatedString { offset: start })
    }

    /// The end (exclusive) of the JSON array or object opening at `start`; serde_json checks
    /// what is inside (and its nesting limit) afterwards.
    fn scan_nested(&self, start: usize) -> Result<usize, QueryError> {
        let (mut i, mut depth) = (start, 0usize);
        while let Some(&b) = self.text.as_bytes().get(i) {
            match b {
                b'"' => i = self.scan_string(i)? - 1,
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth <= 1 => return Ok(i + 1),
                b']' | b'}' => depth -= 1,
                _ => {}
            }
            i += 1;
        }
        Err(self.unexpected_at(i, "a closing `]` or `}`"))
    }
}

// ---------------------------------------------------------------------------------------------
// Display: the text form, which `parse` reads back

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segments = match self {
            Path::Value(segments) if segments.is_empty() => return f.write_str("."),
            Path::Value(segments) => segments,
            Path::Meta(field) => {
                let name = META_NAMES
                    .iter()
                    .find(|(m, _)| m == field)
                    .map_or("", |(_, n)| n);
                return write!(f, "${name}");
            }
        };
        for (i, seg) in segments.iter().enumerate() {
            let bare = !seg.is_empty()
                && seg.bytes().all(is_word)
                && !seg.starts_with('-')
                && !RESERVED.iter().any(|r| seg.eq_ignore_ascii_case(r));
            let dot = if i > 0 { "." } else { "" };
            match bare {
                true => write!(f, "{dot}{seg}")?,
                false => write!(f, "{dot}{}", Value::from(seg.as_str()))?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", if self.descending { "-" } else { "" }, self.by)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, op, value) = match self {
            Condition::Eq(p, v) => (p, "=", v),
            Condition::Ne(p, v) => (p, "!=", v),
            Condition::Lt(p, v) => (p, "<", v),
            Condition::Le(p, v) => (p, "<=", v),
            Condition::Gt(p, v) => (p, ">", v),
            Condition::Ge(p, v) => (p, ">=", v),
            Condition::In(p, vs) => return write!(f, "{p} in {}", Value::from(vs.clone())),
            Condition::Prefix(p, s) => return write!(f, "{p} ^= {}", Value::from(s.as_str())),
            Condition::True => return f.write_str("true"),
            Condition::Not(c) if compound(c) => return write!(f, "not ({c})"),
            Condition::Not(c) => return write!(f, "not {c}"),
            Condition::And(cs) => return write_chain(f, cs, " and ", "true"),
            Condition::Or(cs) => return write_chain(f, cs, " or ", "false"),
        };
        write!(f, "{path} {op} {value}")
    }
}

/// Whether `c` prints as an `and`/`or` chain, which needs parentheses inside another one.
fn compound(c: &Condition) -> bool {
    match c {
        Condition::And(cs) | Condition::Or(cs) => cs.len() > 1 || cs.first().is_some_and(compound),
        _ => false,
    }
}

fn write_chain(
    f: &mut fmt::Formatter<'_>,
    cs: &[Condition],
    joiner: &str,
    empty: &str,
) -> fmt::Result {
    if cs.is_empty() {
        return f.write_str(empty);
    }
    for (i, c) in cs.iter().enumerate() {
        let sep = if i > 0 { joiner } else { "" };
        match cs.len() > 1 && compound(c) {
            true => write!(f, "{sep}({c})")?,
            false => write!(f, "{sep}{c}")?,
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn row<'a>(id: &'a str, seq: u64, clock: u64, value: Option<&'a Value>) -> Row<'a> {
        let (key, record, author, time_ms) = ("users/ann", "evrecord", "pkauthor", 1000 + clock);
        Row {
            key,
            record,
            id,
            author,
            seq,
            clock,
            time_ms,
            deleted: value.is_none(),
            value,
        }
    }

    fn parse(text: &str) -> Condition {
        Condition::parse(text).unwrap()
    }

    fn err(text: &str) -> String {
        Condition::parse(text).unwrap_err().to_string()
    }

    fn ids<'a>(rows: &[Row<'a>]) -> Vec<&'a str> {
        rows.iter().map(|r| r.id).collect()
    }

    /// Checks that every `;`- or line-separated condition in `block` is `expected` on `row`.
    fn check_lines(block: &str, row: &Row<'_>, expected: bool) {
        for line in block
            .split([';', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            assert_eq!(parse(line).matches(row), expected, "{line}");
        }
    }

    #[test]
    fn parse_round_trips_and_precedence() {
        let texts = r#"
            status = "open" and (size >= 10 or $key ^= "users/") and not tags.0 in ["x", 1]
            a = 1 or b = 2 and not c != 3
            (a = 1 or b = 2) and c < 3.5 and ((d = 1 and e = 2) or f = 3)
            not (a = 1 and b = {"x":[1,null]}) and not not c = 1
            meta."content-type" = "t\"" and "not" = true and . = null and x."" > -1e3 and "-a" = 1
            TRUE and false or $deleted == false and $time_ms <= 5 and a."$key" ^= "é""#;
        for text in texts.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let shown = parse(text).to_string();
            assert_eq!(parse(&shown), parse(text), "{text} -> {shown}");
        }
        let p = |s: &str| Path::Value(s.split('.').map(str::to_owned).collect());
        let eq = |s: &str, v: i32| Condition::Eq(p(s), json!(v));
        let not_c = Condition::Not(Box::new(eq("c", 3)));
        let expected = Condition::Or(vec![eq("a", 1), Condition::And(vec![eq("b", 2), not_c])]);
        assert_eq!(parse("a = 1 OR b = 2 And NOT c = 3"), expected);
        assert_eq!(expected.to_string(), "a = 1 or (b = 2 and not c = 3)");
        assert_eq!(
            (parse("(a == 1)"), parse(" ")),
            (eq("a", 1), Condition::True)
        );
        assert_eq!(parse(".a.b=1"), eq("a.b", 1));
        let c = parse(r#"a.0 in [1, "x"] and $seq^="1""#);
        assert_eq!(c.to_string(), r#"a.0 in [1,"x"] and $seq ^= "1""#);
        assert_eq!((c.complexity(), c.depth()), (3, 2));
        for text in ["-$clock", "size", "-a.b", ".", "\"-x\"", "-"] {
            let o = Order::parse(text).unwrap();
            assert_eq!(Order::parse(&o.to_string()).unwrap(), o);
        }
        assert_eq!(
            Order::parse("-size").unwrap(),
            Order {
                by: p("size"),
                descending: true
            }
        );
        assert_eq!(Path::parse("").unwrap(), Path::Value(vec![]));
        assert_eq!(
            Path::parse(" $time_ms ").unwrap(),
            Path::Meta(MetaField::TimeMs)
        );
    }

    #[test]
    fn operators_types_and_absent_paths() {
        let v = json!({"n": 5, "f": 2.5, "s": "hello", "b": true, "z": null,
            "arr": [1, {"x": "y"}], "o": {"k": 1}});
        let r = row("eva", 0, 1, Some(&v));
        let yes = r#"
            n = 5; n == 5.0; n != 6; n < 6; n <= 5; n > 4.5; n >= 5; f < 3; s = "hello"
            s < "help"; s >= "hello"; s ^= "hel"; s ^= ""; b = true; z = null; arr.0 = 1
            arr.1.x = "y"; arr = [1.0, {"x": "y"}]; o = {"k": 1}; n in [1, 5]
            s in ["hello"]; missing != 1; n.x != 1; arr.9 != 1; not missing = 1"#;
        check_lines(yes, &r, true);
        let no = r#"
            n = "5"; n < "6"; s < 6; s > 1; b > false; z < 1; missing = 1; missing < 1
            missing >= 1; missing in [null]; missing ^= ""; n ^= "5"; n in []; arr.x = 1
            arr.01x = 1; arr = [1]; o = {"k": 1, "j": 2}; n != 5.0; false; s.0 = "h""#;
        check_lines(no, &r, false);
        assert!(Condition::And(vec![]).matches(&r) && !Condition::Or(vec![]).matches(&r));
    }

    #[test]
    fn numbers_compare_by_value_exactly() {
        let v = json!({"i": 1, "big": 9_007_199_254_740_993u64, "neg": -1, "max": u64::MAX});
        let r = row("eva", 0, 1, Some(&v));
        let yes = "i = 1.0 and i = 1 and i in [1.0] and neg = -1.0 and neg < 0
            big != 9007199254740992.0 and big > 9007199254740992.0 and big = 9007199254740993
            max > 1e19 and max < 1.9e19 and max > -1 and i < 1.0000001 and i > 0.9999999
            i > -1e300 and i < 1e300 and max = 18446744073709551615";
        check_lines(yes, &r, true);
    }

    #[test]
    fn metadata_fields_and_tombstones() {
        let v = json!({"a": 1});
        let r = row("evid", 3, 7, Some(&v));
        let yes = r#"$key = "users/ann" and $key ^= "users/" and $record = "evrecord"
            $id = "evid" and $author = "pkauthor" and $seq = 3 and $clock >= 7
            $time_ms = 1007 and $deleted = false and a = 1"#;
        check_lines(yes, &r, true);
        check_lines("$seq = \"3\"\n$deleted = 0\n$clock < 7", &r, false);
        let tombstone = row("evid", 4, 8, None);
        check_lines("a != 1\n$deleted = true\n$seq = 4", &tombstone, true);
        check_lines(". = null\na = 1\n. != 1 and a = 1", &tombstone, false);
    }

    #[test]
    fn list_latest_filters_after_reducing_unlike_select() {
        let (open, closed) = (json!({"status": "open"}), json!({"status": "closed"}));
        let versions = vec![
            row("evb", 1, 5, Some(&closed)),
            row("eva", 0, 2, Some(&open)),
        ];
        let records = || vec![versions.clone()];
        let cond = parse(r#"status = "open""#);
        assert!(list_latest(records(), &Condition::True, &cond, None, None).is_empty());
        assert_eq!(
            select(versions.clone(), &cond, None, None),
            vec![versions[1]]
        );
        // The pre_filter restricts which versions may be latest: "as of clock 3" sees v0 only.
        let as_of = parse("$clock <= 3");
        assert_eq!(
            list_latest(records(), &as_of, &cond, None, None),
            vec![versions[1]]
        );
        let all = list_latest(records(), &Condition::True, &Condition::True, None, None);
        assert_eq!(all, vec![versions[0]]);
    }

    #[test]
    fn list_latest_picks_highest_seq_clock_id_and_skips_deleted() {
        let (a, b) = (json!({"n": 1}), json!({"n": 2}));
        // Seq wins over clock; a fork at one seq goes to the higher clock, then id (base32).
        let rec1 = vec![row("evz", 2, 3, Some(&a)), row("evx", 1, 9, Some(&b))];
        let rec2 = vec![
            row("evq", 1, 4, Some(&a)),
            row("ev2", 1, 4, Some(&a)),
            row("evp", 1, 4, Some(&b)),
        ];
        let rec3 = vec![row("evc", 0, 1, Some(&a)), row("evd", 1, 2, None)];
        let records = vec![rec1, rec2, rec3.clone()];
        let out = list_latest(records, &Condition::True, &Condition::True, None, None);
        assert_eq!(ids(&out), ["evz", "ev2"]);
        // A value pre_filter never passes a tombstone, so the version before the delete shows...
        let by_value = parse("n = 1");
        let out = list_latest(vec![rec3.clone()], &by_value, &Condition::True, None, None);
        assert_eq!(out, vec![rec3[0]]);
        // ...unless tombstones are let through.
        let with_deletes = parse("n = 1 or $deleted = true");
        assert!(list_latest(vec![rec3], &with_deletes, &Condition::True, None, None).is_empty());
    }

    #[test]
    fn sorting_is_total_and_deterministic() {
        let vals = [
            json!(3),
            json!("b"),
            json!(null),
            json!([1]),
            json!({"a": 1}),
            json!(false),
        ];
        let vals = [&vals[..], &[json!(2.5), json!("a"), json!(true)]].concat();
        let names = [
            "ev7", "eva", "evb", "ev2", "evz", "evc", "evd", "eve", "evh",
        ];
        let mut rows: Vec<_> = vals
            .iter()
            .zip(names)
            .map(|(v, id)| row(id, 0, 1, Some(v)))
            .collect();
        rows.extend([row("evf", 0, 0, None), row("evg", 0, 1, Some(&vals[0]))]);
        let (asc, desc) = (Order::parse(".").unwrap(), Order::parse("-.").unwrap());
        let mut sorted = rows.clone();
        sort_and_limit(&mut sorted, Some(&asc), None);
        let expected = [
            "evf", "evb", "evc", "evh", "evd", "evg", "ev7", "eve", "eva", "ev2", "evz",
        ];
        assert_eq!(ids(&sorted), expected);
        rows.reverse();
        let mut again = rows.clone();
        sort_and_limit(&mut again, Some(&asc), Some(3));
        assert_eq!(ids(&again), expected[..3]);
        sort_and_limit(&mut rows, Some(&desc), Some(2));
        assert_eq!(ids(&rows), ["evz", "ev2"]);
        sort_and_limit(&mut again, None, Some(0));
        assert!(again.is_empty());
        sort_and_limit(&mut sorted, None, None);
        assert_eq!(ids(&sorted)[..3], ["evf", "eva", "evb"]);
        assert_eq!(ids(&sorted)[9..], ["ev2", "ev7"]);
    }

    #[test]
    fn errors_say_what_where_and_what_is_expected() {
        let operator =
            r#"expected an operator (=, !=, <, <=, >, >=, ^=, in) at byte 7, found "foo""#;
        assert_eq!(err("status foo 1"), operator);
        let unterminated = "unterminated string starting at byte 4; close it with a double quote";
        assert_eq!(err(r#"a = "open"#), unterminated);
        assert!(err("a = open").starts_with(r#"invalid JSON literal "open" at byte 4"#));
        assert!(
            err("a = ").ends_with("expected a JSON literal at byte 4, found the end of the input")
        );
        assert!(
            err("a = 1 b = 2")
                .starts_with("expected `and`, `or` or the end of the input at byte 6")
        );
        assert!(err("(a = 1").ends_with("at byte 6, found the end of the input"));
        assert!(err("$nope = 1").ends_with(r#"at byte 0, found "$nope""#));
        assert!(err("a in 1").contains("a JSON array after `in` at byte 5"));
        assert!(err("a ^= 1").contains("a string in double quotes after `^=`"));
        assert!(err("a in [1, \"]\"").contains("a closing `]` or `}` at byte 12"));
        assert!(err("a.= 1").contains("expected a path segment"));
        assert!(err("é = 1").ends_with(r#"found "é""#));
        assert!(err("= 1").starts_with("expected a condition"));
        let order = Order::parse("a b").unwrap_err().to_string();
        assert_eq!(
            order,
            r#"expected the end of the path at byte 2, found "b""#
        );
    }

    #[test]
    fn limits_are_errors_not_crashes() {
        let too_large = |text: &str, what: &str| match Condition::parse(text) {
            Err(QueryError::TooLarge { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{other:?}"),
        };
        too_large(&"(".repeat(4000), "levels of nesting");
        too_large(&"not ".repeat(1000), "levels of nesting");
        too_large(&"(".repeat(10_000), "bytes");
        too_large(&"a = 1 or ".repeat(12_000), "bytes");
        too_large(
            &vec!["a=1"; MAX_COMPARISONS + 1].join(" or "),
            "comparisons",
        );
        let ok = format!("{}a = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(parse(&ok).depth(), 1);
        let nested_json = format!("a = {}{}", "[".repeat(2000), "]".repeat(2000));
        assert!(matches!(
            Condition::parse(&nested_json),
            Err(QueryError::BadLiteral { .. })
        ));
    }

    fn small_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            (-6i32..6).prop_map(|x| Value::from(f64::from(x) / 2.0)),
            Just(json!(9_007_199_254_740_993u64)),
            Just(json!(9_007_199_254_740_992u64)),
            Just(json!(9_007_199_254_740_992.0)),
            "[ab]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 6, 3, |inner| {
            let object = prop::collection::btree_map("[ab]", inner.clone(), 0..3);
            prop_oneof![
                prop::collection::vec(inner, 0..3).prop_map(Value::from),
                object.prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn rows_of(parts: &[(u64, usize, Option<Value>)]) -> Vec<Row<'_>> {
        const IDS: [&str; 4] = ["eva", "evb", "ev2", "ev7"];
        parts
            .iter()
            .map(|(clock, id, v)| row(IDS[*id], 0, *clock, v.as_ref()))
            .collect()
    }

    fn any_parts(
        n: std::ops::Range<usize>,
    ) -> impl Strategy<Value = Vec<(u64, usize, Option<Value>)>> {
        prop::collection::vec((0u64..3, 0usize..4, prop::option::of(small_value())), n)
    }

    fn any_order() -> impl Strategy<Value = Option<Order>> {
        let a = Path::Value(vec!["a".into()]);
        let paths = prop_oneof![
            Just(Path::Value(vec![])),
            Just(Path::Meta(MetaField::Id)),
            Just(a)
        ];
        prop::option::of(
            (paths, any::<bool>()).prop_map(|(by, descending)| Order { by, descending }),
        )
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,64}") {
            let _ = Condition::parse(&text);
            let _ = Order::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_token_soup(tokens in prop::collection::vec(prop_oneof![
            Just("("), Just(")"), Just(" and "), Just(" or "), Just("not "), Just("a.b"),
            Just("$key"), Just("$x"), Just(" = "), Just(" in "), Just("^="), Just("<="),
            Just("\"s\\\""), Just("\""), Just("["), Just("]"), Just("1"), Just("-2.5e"),
            Just("true"), Just("."), Just("é"), Just("{"), Just("}"), Just(","),
        ], 0..40)) {
            if let Ok(c) = Condition::parse(&tokens.concat()) {
                prop_assert_eq!(Condition::parse(&c.to_string()).ok(), Some(c));
            }
        }

        #[test]
        fn compare_rows_is_a_total_order(parts in any_parts(3..4), order in any_order()) {
            let rows = rows_of(&parts);
            let (o, a, b, c) = (order.as_ref(), &rows[0], &rows[1], &rows[2]);
            prop_assert_eq!(compare_rows(o, a, b), compare_rows(o, b, a).reverse());
            prop_assert_eq!(compare_rows(o, a, a), Ordering::Equal);
            if compare_rows(o, a, b).is_le() && compare_rows(o, b, c).is_le() {
                prop_assert!(compare_rows(o, a, c).is_le());
            }
            if compare_rows(o, a, b).is_eq() {
                prop_assert_eq!((a.clock, a.id), (b.clock, b.id));
            }
        }

        #[test]
        fn sorting_does_not_depend_on_input_order(
            parts in any_parts(0..12), order in any_order(), limit in prop::option::of(0usize..6),
        ) {
            let mut rows = rows_of(&parts);
            let mut reversed: Vec<_> = rows.iter().rev().copied().collect();
            sort_and_limit(&mut rows, order.as_ref(), limit);
            sort_and_limit(&mut reversed, order.as_ref(), limit);
            // Rows equal under compare_rows (same clock and id) may keep their input order.
            prop_assert_eq!(ids(&rows), ids(&reversed));
            prop_assert!(rows.iter().zip(&reversed).all(|(a, b)| a.clock == b.clock));
            let o = order.as_ref();
            prop_assert!(rows.windows(2).all(|w| compare_rows(o, &w[0], &w[1]).is_le()));
        }
    }
}
