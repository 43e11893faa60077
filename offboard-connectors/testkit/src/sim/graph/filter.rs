//! A strict parser of the OData `$filter` subset the simulator accepts: `prop eq 'literal'`
//! terms and, for multi-valued properties, `prop/any(x:x eq 'literal')` terms, joined by
//! ` or `, `''` being a quote inside a literal.
//!
//! Graph requires the `any` operator to filter on a multi-valued property (the spec's
//! `group.proxyAddresses` description: "The any operator is required to filter expressions on
//! multi-valued properties"); `eq` inside it is a default query for `user.proxyAddresses` and
//! `user.otherMails` (learn.microsoft.com/graph/aad-advanced-queries: only `endsWith`, `ne`,
//! `not` and `$count` on them need `ConsistencyLevel: eventual` and `$count=true`, which this
//! parser refuses like any other operator).

/// One `prop eq 'value'` term, or `prop/any(x:x eq 'value')` for a multi-valued `prop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Term {
    pub(super) prop: String,
    pub(super) value: String,
}

/// Parses `expr`, accepting only the single-valued properties in `props` (with `eq`) and the
/// multi-valued ones in `collections` (with `any`).
pub(super) fn parse(expr: &str, props: &[&str], collections: &[&str]) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    let mut rest = expr.trim_start();
    loop {
        let (term, after) = parse_term(rest, expr, props, collections)?;
        terms.push(term);
        rest = after;
        if rest.is_empty() {
            return Ok(terms);
        }
        rest = rest
            .strip_prefix(" or ")
            .ok_or_else(|| format!("Invalid filter clause: unexpected {rest:?}"))?;
    }
}

fn unsupported(prop: &str) -> String {
    format!("Unsupported or invalid query filter clause specified for property '{prop}'.")
}

/// One term at the start of `rest`, and what follows it.
fn parse_term<'a>(
    rest: &'a str,
    expr: &str,
    props: &[&str],
    collections: &[&str],
) -> Result<(Term, &'a str), String> {
    if let Some((prop, lambda)) = rest.split_once("/any(")
        && !prop.contains([' ', '\''])
    {
        if !collections.contains(&prop) {
            return Err(unsupported(prop));
        }
        let (var, body) = lambda
            .split_once(':')
            .filter(|(v, _)| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()))
            .ok_or_else(|| format!("Invalid filter clause: {expr}"))?;
        let body = body.strip_prefix(&format!("{var} eq '")).ok_or_else(|| {
            "Invalid filter clause: only 'eq' with a string literal is supported inside any"
                .to_owned()
        })?;
        let (value, after) = literal(body)?;
        let after = after
            .strip_prefix(')')
            .ok_or_else(|| format!("Invalid filter clause: {expr}"))?;
        let term = Term {
            prop: prop.to_owned(),
            value,
        };
        return Ok((term, after));
    }
    let (prop, after) = rest
        .split_once(' ')
        .ok_or_else(|| format!("Invalid filter clause: {expr}"))?;
    if collections.contains(&prop) {
        return Err(format!(
            "Invalid filter clause: the any operator is required to filter on the \
             multi-valued property '{prop}'."
        ));
    }
    if !props.contains(&prop) {
        return Err(unsupported(prop));
    }
    let after = after.strip_prefix("eq '").ok_or_else(|| {
        "Invalid filter clause: only 'eq' with a string literal is supported".to_owned()
    })?;
    let (value, after) = literal(after)?;
    let term = Term {
        prop: prop.to_owned(),
        value,
    };
    Ok((term, after))
}

/// The string literal whose opening quote was just read: its value and what follows the
/// closing quote.
fn literal(after: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = after.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                value.push('\'');
            } else {
                return Ok((value, &after[i + 1..]));
            }
        } else {
            value.push(c);
        }
    }
    Err("Invalid filter clause: unterminated string literal".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROPS: [&str; 2] = ["userPrincipalName", "mail"];
    const COLLECTIONS: [&str; 2] = ["proxyAddresses", "otherMails"];

    #[test]
    fn parses_or_terms_and_doubled_quotes() {
        let t = parse(
            "userPrincipalName eq 'o''neil@x' or mail eq ' or 1 eq 1'",
            &PROPS,
            &COLLECTIONS,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].value, "o'neil@x");
        assert_eq!(t[1].value, " or 1 eq 1");
        for bad in [
            "userPrincipalName eq 'a' or",
            "userPrincipalName eq 'a",
            "startswith(userPrincipalName,'a')",
            "displayName eq 'a'",
            "mail ne 'a'",
            "mail eq 'a' and mail eq 'b'",
            "mail eq 'a'' or mail eq 'b",
        ] {
            assert!(parse(bad, &PROPS, &COLLECTIONS).is_err(), "{bad}");
        }
    }

    #[test]
    fn multi_valued_properties_need_any_with_eq() {
        let t = parse(
            "mail eq 'a@x' or proxyAddresses/any(x:x eq 'smtp:o''neil@x') or \
             otherMails/any(m:m eq 'p@y')",
            &PROPS,
            &COLLECTIONS,
        )
        .unwrap();
        assert_eq!(
            t.iter()
                .map(|t| (t.prop.as_str(), t.value.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("mail", "a@x"),
                ("proxyAddresses", "smtp:o'neil@x"),
                ("otherMails", "p@y"),
            ]
        );
        for bad in [
            "proxyAddresses eq 'smtp:a@x'",
            "mail/any(x:x eq 'a@x')",
            "proxyAddresses/any(x:y eq 'a')",
            "proxyAddresses/any(x:x ne 'a')",
            "proxyAddresses/any(x:endswith(x,'@x'))",
            "proxyAddresses/any(x:x eq 'a'",
            "proxyAddresses/any(x:x eq 'a') and mail eq 'b'",
            "displayName/any(x:x eq 'a')",
        ] {
            assert!(parse(bad, &PROPS, &COLLECTIONS).is_err(), "{bad}");
        }
    }
}
