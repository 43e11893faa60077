//! Templates, ADF, the idempotency label and JQL string literals.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The placeholders a template may use.
pub(crate) const PLACEHOLDERS: [&str; 5] = ["person", "email", "app", "run", "due"];

/// A checked template: text with `{placeholder}`s; `{{` and `}}` are literal braces.
#[derive(Debug)]
pub(crate) struct Template;

impl Template {
    /// Checks that every placeholder is known and every brace is balanced.
    pub(crate) fn parse(src: &str) -> Result<(), String> {
        render(src, &|_| Some(String::new())).map(|_| ())
    }
}

/// Renders `src`, asking `value` for each placeholder.
pub(crate) fn render(src: &str, value: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => name.push(ch),
                        None => return Err("unclosed `{` in template".into()),
                    }
                }
                if !PLACEHOLDERS.contains(&name.as_str()) {
                    return Err(format!(
                        "unknown placeholder {{{name}}} (known: {})",
                        PLACEHOLDERS.join(", ")
                    ));
                }
                out.push_str(&value(&name).unwrap_or_default());
            }
            '}' => return Err("unmatched `}` in template (write `}}`)".into()),
            other => out.push(other),
        }
    }
    Ok(out)
}

/// A summary Jira accepts: one line, at most 255 characters.
pub(crate) fn summary_line(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one = one.trim();
    if one.chars().count() <= 255 {
        one.to_string()
    } else {
        let mut t: String = one.chars().take(254).collect();
        t.push('…');
        t
    }
}

/// Plain text as an ADF document: one paragraph per line.
pub(crate) fn adf(text: &str) -> Value {
    let content: Vec<Value> = text
        .lines()
        .map(|line| {
            if line.is_empty() {
                json!({"type": "paragraph", "content": []})
            } else {
                json!({"type": "paragraph", "content": [{"type": "text", "text": line}]})
            }
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": content})
}

/// The label that carries an idempotency key.
///
/// Labels cannot hold spaces, so the key is encoded injectively: ASCII letters, digits, `.`,
/// `:` and `-` are kept; every other byte becomes `_` and two hex digits. A label that would
/// pass Jira's 255-character limit becomes `offb-sha256-<hex of the key's SHA-256>`.
pub(crate) fn label_for(idempotency_key: &str) -> String {
    let mut label = String::from("offb-");
    for b in idempotency_key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b':' || b == b'-' {
            label.push(char::from(b));
        } else {
            label.push_str(&format!("_{b:02x}"));
        }
    }
    if label.len() > 255 {
        format!(
            "offb-sha256-{}",
            hex::encode(Sha256::digest(idempotency_key.as_bytes()))
        )
    } else {
        label
    }
}

/// A JQL string literal: `"` + the text with `\`, quotes and control characters escaped + `"`.
/// Nothing inside can end the literal, so nothing inside can change the query.
pub(crate) fn jql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `key` looks like a Jira issue key (`PROJ-123`).
pub(crate) fn is_issue_key(key: &str) -> bool {
    let Some((p, n)) = key.rsplit_once('-') else {
        return false;
    };
    p.starts_with(|c: char| c.is_ascii_uppercase())
        && p.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_refuses_unknown_ones() {
        let v = |n: &str| Some(format!("<{n}>"));
        assert_eq!(
            render("{person} {{x}} {app}", &v).unwrap(),
            "<person> {x} <app>"
        );
        assert!(render("{secret}", &v).is_err());
        assert!(render("{person", &v).is_err());
        assert!(render("a } b", &v).is_err());
    }

    #[test]
    fn labels_are_injective_and_space_free() {
        let a = label_for("run:task");
        assert_eq!(a, "offb-run:task");
        assert_ne!(label_for("a b"), label_for("a_20b"));
        assert_eq!(label_for("a b"), "offb-a_20b");
        assert_eq!(label_for("a_20b"), "offb-a_5f20b");
        let hostile = label_for("x\" OR labels is not EMPTY OR labels = \"y");
        assert!(
            !hostile.contains(' ') && !hostile.contains('"'),
            "{hostile}"
        );
        let long = label_for(&"k".repeat(400));
        assert!(long.starts_with("offb-sha256-") && long.len() < 255);
    }

    #[test]
    fn jql_strings_escape_everything_that_could_end_them() {
        assert_eq!(jql_string("a\"b"), r#""a\"b""#);
        assert_eq!(jql_string("a\\"), r#""a\\""#);
        assert_eq!(jql_string("x\ny"), r#""x\ny""#);
        assert_eq!(jql_string("\u{1}"), r#""\u0001""#);
    }

    #[test]
    fn adf_and_summary() {
        let d = adf("one\n\ntwo");
        assert_eq!(d["content"].as_array().unwrap().len(), 3);
        assert_eq!(d["content"][2]["content"][0]["text"], "two");
        assert_eq!(summary_line("a\nb"), "a b");
        assert_eq!(summary_line(&"x".repeat(300)).chars().count(), 255);
        assert!(is_issue_key("IT-12") && !is_issue_key("it-1") && !is_issue_key("IT-"));
    }
}
