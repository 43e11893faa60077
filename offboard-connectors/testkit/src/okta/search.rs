//! The strict parser of Okta's `search` expressions, as the simulated tenant understands them.
//!
//! Grammar (everything else is refused):
//!
//! ```text
//! expr   := term (" or " term)*
//! term   := attr " eq " string
//! attr   := "profile.login" | "profile.email" | "profile.secondEmail" | "id" | "status"
//! string := '"' ( any char but '"' and '\' | '\"' | '\\' )* '"'
//! ```
//!
//! Exactly one space around `eq` and `or`; no parentheses, no other operators (`sw`, `co`,
//! `pr`, `and`), no other escapes, no control characters.

/// An attribute a search term compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attr {
    Login,
    Email,
    SecondEmail,
    Id,
    Status,
}

/// One `attr eq "value"` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    pub(crate) attr: Attr,
    pub(crate) value: String,
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
        ("id", Attr::Id),
    ]
    .into_iter()
    .find_map(|(name, attr)| input.strip_prefix(name).map(|r| (attr, r)))
    .ok_or_else(|| format!("unsupported attribute at {input:?}"))?;
    let rest = rest
        .strip_prefix(" eq \"")
        .ok_or_else(|| format!("only `eq \"…\"` is supported, at {rest:?}"))?;
    let mut value = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                return Ok((Term { attr, value }, &rest[i + 1..]));
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
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
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
