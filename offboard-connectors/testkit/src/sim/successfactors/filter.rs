//! The strict parser of the `$filter` expressions the simulated SuccessFactors company
//! understands.
//!
//! Grammar (everything else is a 400):
//!
//! ```text
//! expr    := term (" and " term)*
//! term    := "lastModifiedDateTime " cmp " " instant
//!          | "status in " string ("," string)*
//!          | ("status" | "userId" | "username") " eq " string
//! cmp     := "eq" | "gt" | "ge" | "lt" | "le"
//! instant := ("datetimeoffset" | "datetime") "'" yyyy-mm-ddThh:mm:ss[.fff][Z|±hh:mm] "'"
//! string  := "'" (any char but "'" | "''")* "'"
//! ```

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDateTime, Utc};

/// How a term compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Self::Eq => o == Ordering::Equal,
            Self::Gt => o == Ordering::Greater,
            Self::Ge => o != Ordering::Less,
            Self::Lt => o == Ordering::Less,
            Self::Le => o != Ordering::Greater,
        }
    }
}

/// One term of a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Term {
    /// `lastModifiedDateTime <cmp> <instant>`, in milliseconds since the epoch.
    Modified(Cmp, i64),
    /// `status in …` or `status eq …`.
    Status(Vec<String>),
    /// `<property> eq '<value>'` for a string property.
    Equals(&'static str, String),
}

impl Term {
    /// Whether a user with these values matches.
    pub(crate) fn matches(
        &self,
        modified: i64,
        status: &str,
        field: impl Fn(&str) -> String,
    ) -> bool {
        match self {
            Self::Modified(cmp, at) => cmp.holds(modified.cmp(at)),
            Self::Status(any) => any.iter().any(|s| s == status),
            Self::Equals(prop, value) => field(prop) == *value,
        }
    }
}

/// A string literal at the start of `s` (quotes doubled inside): its value and the rest.
fn literal(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('\'')?.char_indices().peekable();
    let body = &s[1..];
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().map(|(_, c)| *c) == Some('\'') {
                chars.next();
                value.push('\'');
            } else {
                return Some((value, &body[i + 1..]));
            }
        } else if c.is_control() {
            return None;
        } else {
            value.push(c);
        }
    }
    None
}

fn instant(s: &str) -> Option<i64> {
    let s = s
        .strip_prefix("datetimeoffset")
        .or_else(|| s.strip_prefix("datetime"))?;
    let (value, rest) = literal(s)?;
    if !rest.is_empty() {
        return None;
    }
    let t = DateTime::parse_from_rfc3339(&value)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(&value, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .ok()?;
    Some(t.timestamp_millis())
}

fn cmp(op: &str) -> Option<Cmp> {
    Some(match op {
        "eq" => Cmp::Eq,
        "gt" => Cmp::Gt,
        "ge" => Cmp::Ge,
        "lt" => Cmp::Lt,
        "le" => Cmp::Le,
        _ => return None,
    })
}

fn term(t: &str) -> Option<Term> {
    if let Some(rest) = t.strip_prefix("lastModifiedDateTime ") {
        let (op, value) = rest.split_once(' ')?;
        return Some(Term::Modified(cmp(op)?, instant(value)?));
    }
    if let Some(mut rest) = t.strip_prefix("status in ") {
        let mut any = Vec::new();
        loop {
            let (value, after) = literal(rest)?;
            any.push(value);
            match after.strip_prefix(',') {
                Some(more) => rest = more,
                None if after.is_empty() => return Some(Term::Status(any)),
                None => return None,
            }
        }
    }
    let (prop, rest) = t.split_once(" eq ")?;
    let (value, after) = literal(rest)?;
    if !after.is_empty() {
        return None;
    }
    match prop {
        "status" => Some(Term::Status(vec![value])),
        "userId" => Some(Term::Equals("userId", value)),
        "username" => Some(Term::Equals("username", value)),
        _ => None,
    }
}

/// Splits on ` and ` outside string literals.
fn conjuncts(expr: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            quoted = !quoted;
        } else if !quoted && expr[i..].starts_with(" and ") {
            parts.push(&expr[start..i]);
            i += 5;
            start = i;
            continue;
        }
        i += 1;
    }
    if quoted {
        return None;
    }
    parts.push(&expr[start..]);
    Some(parts)
}

/// The terms of a `$filter`, all of which must hold; `None` when it is not in the grammar.
pub(crate) fn parse(expr: &str) -> Option<Vec<Term>> {
    conjuncts(expr)?.into_iter().map(term).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_is_strict() {
        let terms = parse(
            "lastModifiedDateTime gt datetimeoffset'2026-12-07T00:00:00.500Z' and status in 't','f'",
        )
        .unwrap();
        assert_eq!(terms[0], Term::Modified(Cmp::Gt, 1_796_601_600_500));
        assert_eq!(terms[1], Term::Status(vec!["t".into(), "f".into()]));
        assert_eq!(
            parse("userId eq 'o''brien and x'").unwrap(),
            [Term::Equals("userId", "o'brien and x".into())]
        );
        assert!(parse("lastModifiedDateTime gt datetime'2026-12-07T00:00:00'").is_some());
        for bad in [
            "userId eq 'x",
            "userId eq 'x' or status eq 't'",
            "substringof('a',userId)",
            "lastModifiedDateTime gt '2026-12-07T00:00:00Z'",
            "lastModifiedDateTime gt datetimeoffset'yesterday'",
            "status in 't',",
            "title eq 'x'",
            "email eq 'x'",
            "userId  eq 'x'",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
