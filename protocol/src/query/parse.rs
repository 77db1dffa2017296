//! The text form of conditions, orders and paths: a recursive-descent parser that checks its
//! limits before it recurses.

use serde_json::Value;

use super::*;

// ---------------------------------------------------------------------------------------------
// Parsing

const OPERATORS: [&str; 8] = ["==", "!=", "<=", ">=", "^=", "=", "<", ">"];
pub(super) const RESERVED: [&str; 6] = ["and", "or", "not", "in", "true", "false"];
const EXPECT_CONDITION: &str =
    "a condition (a path such as `status` or `$key`, `not`, `(`, `true` or `false`)";
const EXPECT_META: &str = "a metadata field ($key, $record, $id, $author, $seq, $clock, \
    $time_ms or $deleted; quote a value field with that name: \"$x\")";

pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn too_large(offset: usize, what: &'static str, max: usize) -> QueryError {
    QueryError::TooLarge { offset, what, max }
}

/// A recursive-descent parser over bytes. It only stops at ASCII bytes or the end, so its
/// positions are char boundaries (and every slice goes through `get` anyway: no panics).
#[derive(Debug)]
pub(super) struct Parser<'t> {
    text: &'t str,
    pub(super) pos: usize,
    depth: usize,
    comparisons: usize,
}

impl<'t> Parser<'t> {
    /// A parser at the first non-blank byte of `text`.
    pub(super) fn new(text: &'t str) -> Result<Self, QueryError> {
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

    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes_from(self.pos).first().copied()
    }

    pub(super) fn skip_ws(&mut self) {
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
    pub(super) fn unexpected_at(&self, offset: usize, expected: &'static str) -> QueryError {
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
    pub(super) fn parse_chain(&mut self, keyword: &str) -> Result<Condition, QueryError> {
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
    pub(super) fn parse_whole_path(&mut self) -> Result<Path, QueryError> {
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
