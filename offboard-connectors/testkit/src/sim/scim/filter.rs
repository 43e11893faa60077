//! The subset of the SCIM filter language (RFC 7644 §3.4.2.2) the simulated service provider
//! understands: one `attr eq "value"` comparison, or a value path `emails[value eq "value"]` /
//! `members[value eq "value"]`. Anything else (other operators, `and`/`or`/`not`, grouping,
//! unknown attributes, a malformed literal) is refused, so the caller answers 400
//! `invalidFilter` (§3.12).

/// One parsed comparison: the attribute (`userName`, `externalId`, `emails.value`,
/// `members.value`, `id`, `displayName`) and the decoded string it must equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Comparison {
    pub(crate) attribute: String,
    pub(crate) value: String,
}

/// Parses `filter`; `Err` with the reason for anything outside the subset.
pub(crate) fn parse(filter: &str) -> Result<Comparison, String> {
    let f = filter.trim();
    // Value path: `emails[value eq "x"]`.
    if let Some(open) = f.find('[') {
        let outer = &f[..open];
        if !f.ends_with(']') || outer.is_empty() || !is_name(outer) {
            return Err(format!("malformed value path in {f:?}"));
        }
        let inner = parse(&f[open + 1..f.len() - 1])?;
        if inner.attribute != "value" {
            return Err(format!(
                "only [value eq …] is supported, got {:?}",
                inner.attribute
            ));
        }
        return Ok(Comparison {
            attribute: format!("{outer}.value"),
            value: inner.value,
        });
    }
    let (attribute, rest) = f
        .split_once(' ')
        .ok_or_else(|| format!("expected `attr eq \"value\"`, got {f:?}"))?;
    if !attribute.split('.').all(is_name) {
        return Err(format!("{attribute:?} is not an attribute path"));
    }
    let (op, literal) = rest
        .split_once(' ')
        .ok_or_else(|| format!("expected an operator and a value in {f:?}"))?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(format!("operator {op:?} is not supported (only eq)"));
    }
    let value = string_literal(literal)?;
    Ok(Comparison {
        attribute: attribute.to_owned(),
        value,
    })
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A JSON string literal taking the whole of `text` (nothing may follow it: no `or`, no
/// second comparison).
fn string_literal(text: &str) -> Result<String, String> {
    if !text.starts_with('"') {
        return Err(format!("the value must be a string, got {text:?}"));
    }
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => break,
            _ => i += 1,
        }
    }
    if i >= bytes.len() {
        return Err("unterminated string".into());
    }
    if i + 1 != bytes.len() {
        return Err(format!(
            "unexpected text after the value: {:?} (and/or/not are not supported)",
            &text[i + 1..]
        ));
    }
    serde_json::from_str::<String>(&text[..=i]).map_err(|e| format!("bad string literal: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_parses_and_the_rest_is_refused() {
        let c = parse(r#"userName eq "a\"b\\c@x""#).unwrap();
        assert_eq!(
            (c.attribute.as_str(), c.value.as_str()),
            ("userName", "a\"b\\c@x")
        );
        let c = parse(r#"emails[value eq "j@x"]"#).unwrap();
        assert_eq!(c.attribute, "emails.value");
        assert_eq!(
            parse(r#"members[value eq "u1"]"#).unwrap().attribute,
            "members.value"
        );
        for bad in [
            r#"userName sw "a""#,
            r#"userName eq "a" or userName eq "b""#,
            r#"userName eq "a"#,
            r#"userName pr"#,
            r#"(userName eq "a")"#,
            r#"emails[type eq "work"]"#,
            r#"userName eq a"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
