//! Subject identifiers (RFC 9493) for the person a SET is about, and the subjects receivers
//! add to or remove from a stream.

use offboard_core::{Error, Person, Result};
use serde_json::{Value, json};

/// How a receiver wants the person named in the `sub_id` of its SETs (RFC 9493 formats),
/// chosen per receiver by the host ([`crate::Receiver`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectFormat {
    /// `{"format":"email","email":<primary email>}`.
    Email,
    /// `{"format":"iss_sub","iss":<subject issuer>,"sub":<person id>}`: the subject issuer is
    /// [`crate::TransmitterConfig::subject_issuer`] (the identity provider that issued the ids).
    IssSub,
    /// `{"format":"opaque","id":<person id>}`.
    Opaque,
    /// `{"format":"aliases","identifiers":[email, iss_sub, opaque, and an email per alias]}`.
    Aliases,
}

impl SubjectFormat {
    /// The `sub_id` of `person` in this format.
    pub fn sub_id(self, person: &Person, subject_issuer: &str) -> Value {
        match self {
            Self::Email => json!({"format": "email", "email": person.email}),
            Self::IssSub => {
                json!({"format": "iss_sub", "iss": subject_issuer, "sub": person.id.as_str()})
            }
            Self::Opaque => json!({"format": "opaque", "id": person.id.as_str()}),
            Self::Aliases => {
                let mut ids = vec![
                    Self::Email.sub_id(person, subject_issuer),
                    Self::IssSub.sub_id(person, subject_issuer),
                    Self::Opaque.sub_id(person, subject_issuer),
                ];
                ids.extend(
                    person
                        .aliases
                        .iter()
                        .filter(|a| a.contains('@'))
                        .map(|a| json!({"format": "email", "email": a})),
                );
                json!({"format": "aliases", "identifiers": ids})
            }
        }
    }
}

/// Checks a subject a receiver sent (add/remove subject): an RFC 9493 subject identifier of a
/// known format with its members as strings; `aliases` may not nest.
pub(crate) fn check(sub_id: &Value) -> Result<()> {
    check_at(sub_id, true)
}

fn check_at(sub_id: &Value, top: bool) -> Result<()> {
    let bad = |why: &str| Error::invalid_input(format!("invalid subject identifier: {why}"));
    let obj = sub_id.as_object().ok_or_else(|| bad("not an object"))?;
    let format = obj
        .get("format")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no format"))?;
    let members: &[&str] = match format {
        "email" => &["email"],
        "iss_sub" => &["iss", "sub"],
        "opaque" => &["id"],
        "account" | "uri" => &["uri"],
        "phone_number" => &["phone_number"],
        "did" => &["url"],
        "aliases" if top => {
            let ids = obj
                .get("identifiers")
                .and_then(Value::as_array)
                .filter(|ids| !ids.is_empty())
                .ok_or_else(|| bad("aliases without identifiers"))?;
            return ids.iter().try_for_each(|id| check_at(id, false));
        }
        "aliases" => return Err(bad("aliases nested in aliases")),
        _ => return Err(bad("unknown format")),
    };
    for m in members {
        match obj.get(*m).and_then(Value::as_str) {
            Some(s) if !s.is_empty() && s.len() <= 512 => {}
            _ => return Err(bad("a required member is missing or not a short string")),
        }
    }
    Ok(())
}

/// Whether two subject identifiers are the same (email addresses compared ignoring case).
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    fn email(v: &Value) -> Option<&str> {
        (v.get("format").and_then(Value::as_str) == Some("email"))
            .then(|| v.get("email").and_then(Value::as_str))
            .flatten()
    }
    match (email(a), email(b)) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

/// Whether the subject identifier `sub_id` names `person` (email: the primary address or an
/// alias, ignoring case; iss_sub: the subject issuer and the person's id; opaque: the person's
/// id; aliases: any of its identifiers).
pub(crate) fn names(sub_id: &Value, person: &Person, subject_issuer: &str) -> bool {
    let s = |k: &str| sub_id.get(k).and_then(Value::as_str);
    match s("format") {
        Some("email") => s("email").is_some_and(|e| {
            e.eq_ignore_ascii_case(&person.email)
                || person.aliases.iter().any(|a| a.eq_ignore_ascii_case(e))
        }),
        Some("iss_sub") => s("iss") == Some(subject_issuer) && s("sub") == Some(person.id.as_str()),
        Some("opaque") => s("id") == Some(person.id.as_str()),
        Some("aliases") => sub_id
            .get("identifiers")
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|id| names(id, person, subject_issuer))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Person {
        let mut p = Person::new("emp-1", "ada@example.com");
        p.aliases = vec!["ada.l@example.com".into(), "adal".into()];
        p
    }

    #[test]
    fn formats_follow_rfc_9493() {
        let iss = "https://idp.example.com";
        assert_eq!(
            SubjectFormat::Email.sub_id(&ada(), iss),
            json!({"format": "email", "email": "ada@example.com"})
        );
        assert_eq!(
            SubjectFormat::IssSub.sub_id(&ada(), iss),
            json!({"format": "iss_sub", "iss": iss, "sub": "emp-1"})
        );
        assert_eq!(
            SubjectFormat::Opaque.sub_id(&ada(), iss),
            json!({"format": "opaque", "id": "emp-1"})
        );
        let aliases = SubjectFormat::Aliases.sub_id(&ada(), iss);
        let ids = aliases["identifiers"].as_array().unwrap();
        assert_eq!(aliases["format"], "aliases");
        // Email, iss_sub, opaque, and the one alias that is an address.
        assert_eq!(ids.len(), 4);
        assert_eq!(
            ids[3],
            json!({"format": "email", "email": "ada.l@example.com"})
        );
        check(&aliases).unwrap();
    }

    #[test]
    fn names_matches_each_format_and_nothing_else() {
        let iss = "https://idp.example.com";
        let p = ada();
        assert!(names(
            &json!({"format":"email","email":"ADA@example.com"}),
            &p,
            iss
        ));
        assert!(names(
            &json!({"format":"email","email":"ada.l@example.com"}),
            &p,
            iss
        ));
        assert!(!names(
            &json!({"format":"email","email":"grace@example.com"}),
            &p,
            iss
        ));
        assert!(names(
            &json!({"format":"iss_sub","iss":iss,"sub":"emp-1"}),
            &p,
            iss
        ));
        assert!(!names(
            &json!({"format":"iss_sub","iss":"https://other","sub":"emp-1"}),
            &p,
            iss
        ));
        assert!(names(&json!({"format":"opaque","id":"emp-1"}), &p, iss));
        assert!(names(
            &json!({"format":"aliases","identifiers":[{"format":"opaque","id":"x"},{"format":"opaque","id":"emp-1"}]}),
            &p,
            iss
        ));
    }

    #[test]
    fn check_refuses_malformed_subjects() {
        for bad in [
            json!("ada@example.com"),
            json!({"email": "ada@example.com"}),
            json!({"format": "email"}),
            json!({"format": "email", "email": 3}),
            json!({"format": "nickname", "nick": "ada"}),
            json!({"format": "aliases", "identifiers": []}),
            json!({"format": "aliases", "identifiers": [{"format": "aliases", "identifiers": [{"format":"opaque","id":"x"}]}]}),
        ] {
            assert!(check(&bad).is_err(), "{bad}");
        }
        check(&json!({"format": "iss_sub", "iss": "https://i", "sub": "s"})).unwrap();
    }
}
