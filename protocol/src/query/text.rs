//! `Display` for conditions, orders and paths: the text form `parse` reads back.

use std::fmt;

use super::parse::{RESERVED, is_word};
use super::*;

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
