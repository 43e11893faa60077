//! A strict parser of the OData `$filter` subset the simulator accepts:
//! `prop eq 'literal'` terms joined by ` or `, `''` being a quote inside a literal.

/// One `prop eq 'value'` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Term {
    pub(super) prop: String,
    pub(super) value: String,
}

/// Parses `expr`, accepting only the properties in `props`.
pub(super) fn parse(expr: &str, props: &[&str]) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    let mut rest = expr.trim_start();
    loop {
        let (prop, after) = rest
            .split_once(' ')
            .ok_or_else(|| format!("Invalid filter clause: {expr}"))?;
        if !props.contains(&prop) {
            return Err(format!(
                "Unsupported or invalid query filter clause specified for property '{prop}'."
            ));
        }
        let after = after.strip_prefix("eq '").ok_or_else(|| {
            "Invalid filter clause: only 'eq' with a string literal is supported".to_owned()
        })?;
        let mut value = String::new();
        let mut chars = after.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                    value.push('\'');
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                value.push(c);
            }
        }
        let end =
            end.ok_or_else(|| "Invalid filter clause: unterminated string literal".to_owned())?;
        terms.push(Term {
            prop: prop.to_owned(),
            value,
        });
        rest = &after[end..];
        if rest.is_empty() {
            return Ok(terms);
        }
        rest = rest
            .strip_prefix(" or ")
            .ok_or_else(|| format!("Invalid filter clause: unexpected {rest:?}"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_or_terms_and_doubled_quotes() {
        let t = parse(
            "userPrincipalName eq 'o''neil@x' or mail eq ' or 1 eq 1'",
            &["userPrincipalName", "mail"],
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
            assert!(parse(bad, &["userPrincipalName", "mail"]).is_err(), "{bad}");
        }
    }
}
