//! A strict parser for the small JQL subset the simulator answers.
//!
//! Accepted: clauses joined by `AND` (case-insensitive), each one of
//! - `labels = <value>`
//! - `project = <value>`
//! - `key = <value>` / `issuekey = <value>`
//! - `key in (<value>, ...)` / `issuekey in (...)`
//!
//! optionally followed by `ORDER BY key|created [ASC|DESC]` (only after a restriction: an
//! ordering alone is an unbounded query).
//!
//! A value is a quoted string (`"..."` or `'...'`, with JQL's backslash escapes `\"`, `\'`,
//! `\\`, `\n`, `\r`, `\t`, `\uXXXX`) or a bare word of letters, digits, `-`, `_` and `.`.
//! Anything else (`OR`, `NOT`, `ORDER BY`, functions, other fields, unbalanced quotes) is an
//! error, which the simulator answers with 400 as Jira answers a query it cannot parse.

/// A field the subset can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Labels,
    Project,
    Key,
}

/// A parsed query: clauses that must all hold, and the ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) clauses: Vec<Clause>,
    /// `Some(true)` for `ORDER BY key|created DESC`, `Some(false)` for ascending, `None` for
    /// no ordering (the simulator then answers in creation order, as `ASC`).
    pub(crate) descending: Option<bool>,
}

/// One clause: the field must equal one of the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clause {
    pub(crate) field: Field,
    pub(crate) values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Eq,
    LParen,
    RParen,
    Comma,
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                out.push(Token::Eq);
            }
            '(' => {
                chars.next();
                out.push(Token::LParen);
            }
            ')' => {
                chars.next();
                out.push(Token::RParen);
            }
            ',' => {
                chars.next();
                out.push(Token::Comma);
            }
            '"' | '\'' => {
                let quote = c;
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("The quoted string is not terminated.".into()),
                        Some(ch) if ch == quote => break,
                        Some('\\') => match chars.next() {
                            Some('"') => s.push('"'),
                            Some('\'') => s.push('\''),
                            Some('\\') => s.push('\\'),
                            Some('n') => s.push('\n'),
                            Some('r') => s.push('\r'),
                            Some('t') => s.push('\t'),
                            Some('u') => {
                                let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                                let ch = u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .filter(|_| hex.len() == 4)
                                    .and_then(char::from_u32)
                                    .ok_or("Illegal unicode escape sequence.")?;
                                s.push(ch);
                            }
                            Some(other) => {
                                return Err(format!("Illegal escape sequence '\\{other}'."));
                            }
                            None => return Err("The quoted string is not terminated.".into()),
                        },
                        Some(ch) => s.push(ch),
                    }
                }
                out.push(Token::Str(s));
            }
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' => {
                let mut w = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.' {
                        w.push(ch);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(w));
            }
            other => {
                return Err(format!(
                    "Error in the JQL Query: The character '{other}' is a reserved JQL character."
                ));
            }
        }
    }
    Ok(out)
}

fn value(tokens: &[Token], i: &mut usize) -> Result<String, String> {
    match tokens.get(*i) {
        Some(Token::Str(s)) => {
            *i += 1;
            Ok(s.clone())
        }
        Some(Token::Word(w)) if !is_reserved(w) => {
            *i += 1;
            Ok(w.clone())
        }
        _ => Err("Error in the JQL Query: expecting a value.".into()),
    }
}

fn is_reserved(w: &str) -> bool {
    matches!(
        w.to_ascii_lowercase().as_str(),
        "and" | "or" | "not" | "in" | "is" | "empty" | "null" | "order" | "by" | "was" | "changed"
    )
}

/// Parses `jql` into clauses that must all hold and an optional ordering.
pub(crate) fn parse(jql: &str) -> Result<Query, String> {
    let tokens = tokenize(jql)?;
    if tokens.is_empty() {
        return Err("Unbounded JQL queries are not allowed here.".into());
    }
    let mut i = 0;
    let mut clauses = Vec::new();
    loop {
        let field = match tokens.get(i) {
            Some(Token::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "labels" => Field::Labels,
                "project" => Field::Project,
                "key" | "issuekey" => Field::Key,
                other => {
                    return Err(format!(
                        "Field '{other}' does not exist or is not supported by this site."
                    ));
                }
            },
            _ => return Err("Error in the JQL Query: expecting a field name.".into()),
        };
        i += 1;
        let values = match tokens.get(i) {
            Some(Token::Eq) => {
                i += 1;
                vec![value(&tokens, &mut i)?]
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") && field == Field::Key => {
                i += 1;
                if tokens.get(i) != Some(&Token::LParen) {
                    return Err("Error in the JQL Query: expecting '('.".into());
                }
                i += 1;
                let mut vs = vec![value(&tokens, &mut i)?];
                loop {
                    match tokens.get(i) {
                        Some(Token::Comma) => {
                            i += 1;
                            vs.push(value(&tokens, &mut i)?);
                        }
                        Some(Token::RParen) => {
                            i += 1;
                            break;
                        }
                        _ => return Err("Error in the JQL Query: expecting ')' or ','.".into()),
                    }
                }
                vs
            }
            _ => return Err("Error in the JQL Query: unsupported operator.".into()),
        };
        clauses.push(Clause { field, values });
        match tokens.get(i) {
            None => {
                return Ok(Query {
                    clauses,
                    descending: None,
                });
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => i += 1,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("order") => {
                let descending = order_by(&tokens[i + 1..])?;
                return Ok(Query {
                    clauses,
                    descending: Some(descending),
                });
            }
            Some(_) => {
                return Err(
                    "Error in the JQL Query: expecting 'AND' or the end of the query.".into(),
                );
            }
        }
    }
}

/// `BY key|created [ASC|DESC]` after `ORDER`: whether descending.
fn order_by(rest: &[Token]) -> Result<bool, String> {
    let word = |t: Option<&Token>| match t {
        Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
        _ => None,
    };
    if word(rest.first()).as_deref() != Some("by") {
        return Err("Error in the JQL Query: expecting 'by' after 'order'.".into());
    }
    match word(rest.get(1)).as_deref() {
        Some("key" | "issuekey" | "created") => {}
        Some(other) => {
            return Err(format!(
                "Field '{other}' does not exist or is not supported by this site."
            ));
        }
        None => return Err("Error in the JQL Query: expecting a field to order by.".into()),
    }
    let descending = match word(rest.get(2)).as_deref() {
        None => false,
        Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err("Error in the JQL Query: expecting 'ASC' or 'DESC'.".into()),
    };
    if rest.len() > 3 {
        return Err("Error in the JQL Query: expecting the end of the query.".into());
    }
    Ok(descending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_subset() {
        let c = parse(r#"project = "IT" AND labels = "offb-a:b""#)
            .unwrap()
            .clauses;
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].values, vec!["offb-a:b".to_string()]);
        let c = parse("key in (IT-1, \"IT-2\")").unwrap().clauses;
        assert_eq!(c[0].field, Field::Key);
        assert_eq!(c[0].values, vec!["IT-1".to_string(), "IT-2".to_string()]);
        let c = parse(r#"labels = "a\"b\\c\u0041""#).unwrap().clauses;
        assert_eq!(c[0].values, vec!["a\"b\\cA".to_string()]);
        let q = parse("project = IT ORDER BY key DESC").unwrap();
        assert_eq!(q.descending, Some(true));
        assert_eq!(
            parse("project = IT order by created").unwrap().descending,
            Some(false)
        );
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "labels = x OR labels = y",
            "labels is not EMPTY",
            "labels = \"x",
            "order by key",
            "summary ~ x",
            "labels = x order by summary",
            "labels = x order by",
            "labels = x order key",
            "labels = x order by key desc, created",
            "labels = \"a\\qb\"",
            "labels in (a)",
            "labels = AND",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
