//! The strict parser of Okta's `search` expressions, as the simulated tenant understands them.
//!
//! Grammar (everything else is refused):
//!
//! ```text
//! expr   := term (" or " term)*
//! term   := attr " eq " string | "lastUpdated " cmp " " string
//! attr   := "profile.login" | "profile.email" | "profile.secondEmail" | "id" | "status"
//! cmp    := "eq" | "gt" | "ge" | "lt" | "le"
//! string := '"' ( any char but '"' and '\' | '\"' | '\\' )* '"'
//! ```
//!
//! Exactly one space around operators and `or`; no parentheses, no other operators (`sw`,
//! `co`, `pr`, `and`), no other escapes, no control characters. A `lastUpdated` value must be
//! an RFC 3339 timestamp and is compared as a time.

/// An attribute a search term compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attr {
    Login,
    Email,
    SecondEmail,
    Id,
    Status,
    LastUpdated,
}

/// How a term compares (`gt`/`ge`/`lt`/`le` only for `lastUpdated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One `attr eq "value"` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    pub(crate) attr: Attr,
    pub(crate) op: Op,
    pub(crate) value: String,
}

impl Term {
    /// Whether a user's `field` value satisfies the term (strings: ASCII case ignored;
    /// `lastUpdated`: compared as times).
    pub(crate) fn matches(&self, field: &str) -> bool {
        if self.attr != Attr::LastUpdated {
            return field.eq_ignore_ascii_case(&self.value);
        }
        let (Some(have), Some(want)) = (timestamp(field), timestamp(&self.value)) else {
            return false;
        };
        match self.op {
            Op::Eq => have == want,
            Op::Gt => have > want,
            Op::Ge => have >= want,
            Op::Lt => have < want,
            Op::Le => have <= want,
        }
    }
}

fn timestamp(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Parses a whole expression into its `or`-ed terms.
pub(crate) fn parse(input: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    let mut rest = input;
    loop {
        let (term, after) = parse_term(rest)?;
        terms.push(term);
        if after.is_empty() {
            return Ok(terms);
        }
        rest = after
            .strip_prefix(" or ")
            .ok_or_else(|| format!("expected ` or ` or the end at {after:?}"))?;
    }
}

fn parse_term(input: &str) -> Result<(Term, &str), String> {
    let (attr, rest) = [
        ("profile.secondEmail", Attr::SecondEmail),
        ("profile.login", Attr::Login),
        ("profile.email", Attr::Email),
        ("status", Attr::Status),
        ("lastUpdated", Attr::LastUpdated),
        ("id", Attr::Id),
    ]
    .into_iter()
    .find_map(|(name, attr)| input.strip_prefix(name).map(|r| (attr, r)))
    .ok_or_else(|| format!("unsupported attribute at {input:?}"))?;
    let ops: &[(&str, Op)] = if attr == Attr::LastUpdated {
        &[
            (" eq \"", Op::Eq),
            (" gt \"", Op::Gt),
            (" ge \"", Op::Ge),
            (" lt \"", Op::Lt),
            (" le \"", Op::Le),
        ]
    } else {
        &[(" eq \"", Op::Eq)]
    };
    let (op, rest) = ops
        .iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|r| (*op, r)))
        .ok_or_else(|| format!("unsupported operator or value at {rest:?}"))?;
    let mut value = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                if attr == Attr::LastUpdated && timestamp(&value).is_none() {
                    return Err(format!("{value:?} is not an RFC 3339 time"));
                }
                return Ok((Term { attr, op, value }, &rest[i + 1..]));
            }
            '\\' => match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                other => return Err(format!("invalid escape {other:?}")),
            },
            c if c.is_control() => return Err("control character in a string".into()),
            c => value.push(c),
        }
    }
    Err("unterminated string".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_connector_forms() {
        let t = parse(r#"profile.login eq "a@b.c" or profile.secondEmail eq "x\"y\\z""#).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0],
            Term {
                attr: Attr::Login,
                op: Op::Eq,
                value: "a@b.c".into()
            }
        );
        assert_eq!(t[1].value, "x\"y\\z");
        assert_eq!(t[1].attr, Attr::SecondEmail);
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            r#"profile.login sw "a""#,
            r#"profile.login eq "a" and profile.email eq "b""#,
            r#"profile.login eq "a" or"#,
            r#"(profile.login eq "a")"#,
            r#"profile.login  eq "a""#,
            r#"profile.login eq "a"#,
            r#"profile.login eq "a\n""#,
            "profile.login eq \"a\u{0}\"",
            r#"profile.login eq "a" or profile.login pr"#,
            r#"profile.firstName eq "a""#,
            r#"profile.login eq "a"" "#,
            r#"profile.login eq "a" or profile.login sw """#,
            r#"profile.login gt "a""#,
            r#"lastUpdated gt "yesterday""#,
            r#"lastUpdated sw "2026""#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn last_updated_compares_times() {
        let t = parse(r#"lastUpdated gt "2026-11-23T10:00:00.000Z""#).unwrap();
        assert_eq!((t[0].attr, t[0].op), (Attr::LastUpdated, Op::Gt));
        assert!(t[0].matches("2026-11-23T10:00:00.001Z"));
        assert!(!t[0].matches("2026-11-23T10:00:00.000Z"));
        let t = parse(r#"lastUpdated ge "2026-11-23T11:00:00+01:00""#).unwrap();
        assert!(t[0].matches("2026-11-23T10:00:00.000Z"));
        assert!(!t[0].matches("2026-11-23T09:59:59.999Z"));
    }

    #[test]
    fn an_injected_quote_ends_the_string_and_then_fails() {
        // What an unescaped hostile login would produce: refused, never widened.
        assert!(parse(r#"profile.login eq "a" or profile.login sw """#).is_err());
        // Escaped, it is one literal value.
        let t = parse(r#"profile.login eq "a\" or profile.login sw \"""#).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].value, r#"a" or profile.login sw ""#);
    }
}
