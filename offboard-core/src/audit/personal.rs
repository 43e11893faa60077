//! Personal data in audit events: which fields hold it, and the salted commitments the hash
//! chain covers in their place, so that the values can be erased later while the chain still
//! verifies.
//!
//! # Which fields are personal
//! Field by field, per [`AuditKind`](super::AuditKind) (JSON pointers relative to the event's
//! `kind`); every one of them is a JSON string in a `String`-typed field, so an event whose
//! values were replaced by their commitments still decodes as the same typed event:
//!
//! | kind | personal fields |
//! |---|---|
//! | `run_planned` | `/run/person/**` (id, email, aliases, display name, employee id, manager), `/run/reason`, per task `/run/tasks/N/account/{external_id,login}`, `/run/tasks/N/account/attributes/*`, `/run/tasks/N/kind/action/params/**` (group names, addresses, forwarding targets), and the task state's error messages, error context values, ticket url and assignee, completion detail |
//! | `transition` | the event's `detail`, `reason` (declined delegation), `error/message`, `error/context/N/1`, `ticket/url`, `ticket/assignee` |
//! | `verified` | `/remaining/N` (`app: finding` quotes logins) |
//! | `suppressed` | `/person` |
//! | `note` | every string under `/data` (connectors and sources put what they know of the person there) |
//!
//! Admins' names (`actor`, `Confirmed::by`, `Cancel::by`), ids, app names, action names,
//! states and times are not personal data of the departing person and stay in the clear.
//!
//! # Commitments
//! An event with personal values gets a random 32-byte [`Salt`] when a store seals it. Its
//! canonical body ([`AuditEvent::canonical`](super::AuditEvent::canonical)) has, in place of
//! each personal value at pointer `P`, the string `personal:` followed by the lowercase hex of
//! SHA-256(salt ‖ `P` ‖ `\n` ‖ value) ([`commitment`]). Stores keep the event in that
//! commitment form ([`AuditEvent::redacted`](super::AuditEvent::redacted)) and the values with
//! their salt beside it ([`PersonalValues`]); erasing deletes the latter, and the event left
//! behind has the same body digest and hash as before.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a commitment starts with (then 64 lowercase hex digits).
pub const COMMITMENT_PREFIX: &str = "personal:";

/// Whether `s` is a commitment ([`commitment`]'s form): what an erased value reads as.
pub fn is_commitment(s: &str) -> bool {
    s.strip_prefix(COMMITMENT_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// An event's random salt (32 bytes, hex in JSON). Its Debug form does not show it: with the
/// salt, an erased value could be guessed and checked against its commitment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Salt([u8; 32]);

impl Salt {
    /// A fresh random salt.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut bytes);
        Self(bytes)
    }

    /// A salt of these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex digits.
    ///
    /// # Errors
    /// `InvalidInput` when `s` is not 32 bytes of hex.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| Error::invalid_input("a salt is not 64 hex digits"))?;
        Ok(Self(bytes))
    }

    /// The salt as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt([REDACTED])")
    }
}

impl Serialize for Salt {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Salt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// The commitment to `value` at `pointer` under `salt`: `personal:` and the lowercase hex of
/// SHA-256(salt ‖ pointer ‖ `\n` ‖ value).
pub fn commitment(salt: &Salt, pointer: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.0);
    h.update(pointer.as_bytes());
    h.update(b"\n");
    h.update(value.as_bytes());
    let mut out = String::with_capacity(COMMITMENT_PREFIX.len() + 64);
    out.push_str(COMMITMENT_PREFIX);
    out.push_str(&hex::encode(h.finalize()));
    out
}

/// The personal values of one event and its salt: what stores keep beside the event's
/// commitment form, and what erasure deletes. Debug shows the pointers, never the values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalValues {
    /// The event's salt.
    pub salt: Salt,
    /// Each value by its JSON pointer relative to the event's `kind`.
    pub values: BTreeMap<String, String>,
}

impl fmt::Debug for PersonalValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalValues")
            .field("salt", &self.salt)
            .field("pointers", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PersonalValues {
    /// The values as the compact JSON object stores keep (`{pointer: value}`).
    pub fn values_json(&self) -> String {
        serde_json::to_string(&self.values).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Values read back from [`PersonalValues::values_json`] text and a hex salt.
    ///
    /// # Errors
    /// `Storage` when either does not parse.
    pub fn from_stored(salt: &str, values: &str) -> Result<Self> {
        Ok(Self {
            salt: Salt::from_hex(salt)
                .map_err(|_| Error::storage("a stored salt is not 64 hex digits"))?,
            values: serde_json::from_str(values)
                .map_err(|_| Error::storage("stored personal values are not a JSON object"))?,
        })
    }

    /// The first pointer whose value does not match the commitment the event's `kind`
    /// (commitment form, as JSON) holds there, or that the kind does not have.
    pub fn mismatch(&self, redacted_kind: &Value) -> Option<&str> {
        self.values.iter().find_map(|(pointer, value)| {
            let held = redacted_kind.pointer(pointer).and_then(Value::as_str);
            (held != Some(commitment(&self.salt, pointer, value).as_str()))
                .then_some(pointer.as_str())
        })
    }

    /// Puts the values back into `kind` (commitment form, as JSON).
    ///
    /// # Errors
    /// `Storage` when a pointer names no string of `kind`.
    pub fn restore_into(&self, kind: &mut Value) -> Result<()> {
        for (pointer, value) in &self.values {
            match kind.pointer_mut(pointer) {
                Some(Value::String(s)) => value.clone_into(s),
                _ => {
                    return Err(Error::storage(
                        "stored personal values name a field the event does not have",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Calls `f` with the JSON pointer (relative to the kind) and the value of every personal
/// field of an audit event's `kind` as JSON (see the module docs for the fields).
pub(crate) fn for_each(kind: &mut Value, f: &mut dyn FnMut(&str, &mut String)) {
    let mut p = Pointer(String::with_capacity(64));
    let Some(kind_name) = kind.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return;
    };
    match kind_name.as_str() {
        "run_planned" => p.at("run", |p| walk_run(kind.get_mut("run"), p, f)),
        "transition" => p.at("event", |p| walk_event(kind.get_mut("event"), p, f)),
        "verified" => p.at("remaining", |p| strings(kind.get_mut("remaining"), p, f)),
        "suppressed" => field(kind, "person", &mut p, f),
        "note" => p.at("data", |p| strings(kind.get_mut("data"), p, f)),
        _ => {}
    }
}

/// A JSON pointer being built while walking.
struct Pointer(String);

impl Pointer {
    /// Runs `inner` with `/key` appended (escaped as RFC 6901 says), then takes it off.
    fn at(&mut self, key: &str, inner: impl FnOnce(&mut Self)) {
        let len = self.0.len();
        self.0.push('/');
        for c in key.chars() {
            match c {
                '~' => self.0.push_str("~0"),
                '/' => self.0.push_str("~1"),
                c => self.0.push(c),
            }
        }
        inner(self);
        self.0.truncate(len);
    }
}

/// `v[key]` if it is a string.
fn field(v: &mut Value, key: &str, p: &mut Pointer, f: &mut dyn FnMut(&str, &mut String)) {
    if let Some(Value::String(s)) = v.get_mut(key) {
        p.at(key, |p| f(&p.0, s));
    }
}

/// Every string under `v`.
fn strings(v: Option<&mut Value>, p: &mut Pointer, f: &mut dyn FnMut(&str, &mut String)) {
    match v {
        Some(Value::String(s)) => f(&p.0, s),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter_mut().enumerate() {
                p.at(&i.to_string(), |p| strings(Some(item), p, f));
            }
        }
        Some(Value::Object(map)) => {
            for (k, item) in map.iter_mut() {
                p.at(k, |p| strings(Some(item), p, f));
            }
        }
        _ => {}
    }
}

fn walk_run(v: Option<&mut Value>, p: &mut Pointer, f: &mut dyn FnMut(&str, &mut String)) {
    let Some(run) = v else { return };
    p.at("person", |p| strings(run.get_mut("person"), p, f));
    field(run, "reason", p, f);
    if let Some(Value::Array(tasks)) = run.get_mut("tasks") {
        p.at("tasks", |p| {
            for (i, task) in tasks.iter_mut().enumerate() {
                p.at(&i.to_string(), |p| walk_task(task, p, f));
            }
        });
    }
}

/// A task's personal fields (also used to pseudonymise stored task rows).
fn walk_task(task: &mut Value, p: &mut Pointer, f: &mut dyn FnMut(&str, &mut String)) {
    if let Some(account) = task.get_mut("account").filter(|a| a.is_object()) {
        p.at("account", |p| {
            field(account, "external_id", p, f);
            field(account, "login", p, f);
            p.at("attributes", |p| {
                strings(account.get_mut("attributes"), p, f)
            });
        });
    }
    if let Some(kind) = task.get_mut("kind") {
        p.at("kind", |p| {
            if let Some(action) = kind.get_mut("action") {
                p.at("action", |p| {
                    p.at("params", |p| strings(action.get_mut("params"), p, f))
                });
            }
        });
    }
    if let Some(state) = task.get_mut("state") {
        p.at("state", |p| walk_details(state, p, f));
    }
}

/// The free-text fields of a task state or a machine event: details, reasons, errors,
/// tickets.
fn walk_details(v: &mut Value, p: &mut Pointer, f: &mut dyn FnMut(&str, &mut String)) {
    field(v, "detail", p, f);
    field(v, "reason", p, f);
    for key in ["error", "last_error"] {
        if let Some(error) = v.get_mut(key).filter(|e| e.is_object()) {
            p.at(key, |p| {
                field(error, "message", p, f);
                if let Some(Value::Array(pairs)) = error.get_mut("context") {
                    p.at("context", |p| {
                        for (i, pair) in pairs.iter_mut().enumerate() {
                            p.at(&i.to_string(), |p| {
                                if let Some(Value::String(s)) = pair.get_mut(1) {
                                    p.at("1", |p| f(&p.0, s));
                                }
                            });
                        }
                    });
                }
            });
        }
    }
    if let Some(ticket) = v.get_mut("ticket").filter(|t| t.is_object()) {
        p.at("ticket", |p| {
            field(ticket, "url", p, f);
            field(ticket, "assignee", p, f);
        });
    }
}

fn walk_event(v: Option<&mut Value>, p: &mut Pointer, f: &mut dyn FnMut(&str, &mut String)) {
    if let Some(event) = v {
        walk_details(event, p, f);
    }
}

/// Replaces every personal field of `kind` (JSON) by its commitment under `salt`, and returns
/// the values replaced (empty: the kind holds no personal data).
pub(crate) fn redact(kind: &mut Value, salt: &Salt) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for_each(kind, &mut |pointer, s| {
        let c = commitment(salt, pointer, s);
        values.insert(pointer.to_owned(), std::mem::replace(s, c));
    });
    values
}

/// Whether `kind` (JSON) holds any personal field.
pub(crate) fn any(kind: &mut Value) -> bool {
    let mut found = false;
    for_each(kind, &mut |_, _| found = true);
    found
}

/// Replaces every personal field of a stored task (JSON) by `erased`; returns how many.
pub(crate) fn erase_task(task: &mut Value) -> usize {
    let mut n = 0;
    walk_task(task, &mut Pointer(String::new()), &mut |_, s| {
        "erased".clone_into(s);
        n += 1;
    });
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitments_depend_on_salt_pointer_and_value() {
        let (a, b) = (Salt::from_bytes([1; 32]), Salt::from_bytes([2; 32]));
        let c = commitment(&a, "/person", "zelda");
        assert!(is_commitment(&c));
        assert_ne!(c, commitment(&b, "/person", "zelda"));
        assert_ne!(c, commitment(&a, "/data/x", "zelda"));
        assert_ne!(c, commitment(&a, "/person", "zeldb"));
        assert!(!is_commitment("zelda@example.com"));
        assert_eq!(format!("{a:?}"), "Salt([REDACTED])");
    }

    #[test]
    fn pointers_escape_keys() {
        let mut kind = serde_json::json!({"type": "note", "name": "n", "data": {"a/b~c": ["x", 1, {"d": "y"}]}});
        let salt = Salt::from_bytes([7; 32]);
        let values = redact(&mut kind, &salt);
        assert_eq!(
            values.keys().collect::<Vec<_>>(),
            ["/data/a~1b~0c/0", "/data/a~1b~0c/2/d"]
        );
        let stored = PersonalValues { salt, values };
        assert_eq!(stored.mismatch(&kind), None);
        stored.restore_into(&mut kind).unwrap();
        assert_eq!(kind["data"]["a/b~c"][2]["d"], "y");
        assert_eq!(kind["name"], "n");
    }
}
