//! Which Security Events a run's actions raise, and the SET claims for them.

use std::collections::HashMap;

use offboard_core::ActionName;
use serde_json::{Map, Value, json};

/// RISC 1.0: the account was disabled (suspend, disable, deactivate).
pub const RISC_ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
/// RISC 1.0: the account was deleted.
pub const RISC_ACCOUNT_PURGED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-purged";
/// RISC 1.0: the account was enabled again (a rollback of a disable).
pub const RISC_ACCOUNT_ENABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
/// CAEP 1.0: the person's sessions were revoked.
pub const CAEP_SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP 1.0: a credential was changed or removed.
pub const CAEP_CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
/// SSF 1.0: the verification event a receiver asks for at the verification endpoint.
pub const SSF_VERIFICATION: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// Every event type this transmitter sends (its `events_supported`).
pub const SUPPORTED: [&str; 6] = [
    RISC_ACCOUNT_DISABLED,
    RISC_ACCOUNT_PURGED,
    RISC_ACCOUNT_ENABLED,
    CAEP_SESSION_REVOKED,
    CAEP_CREDENTIAL_CHANGE,
    SSF_VERIFICATION,
];

/// The signal an action raises when it lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// RISC `account-disabled` (and `account-enabled` when the action is rolled back).
    AccountDisabled,
    /// RISC `account-purged`.
    AccountPurged,
    /// CAEP `session-revoked`.
    SessionRevoked,
    /// CAEP `credential-change` with its `credential_type` (`password`, `app`, `fido2-roaming`,
    /// ...) and `change_type` (`create`, `revoke`, `update`, `delete`).
    CredentialChange {
        /// CAEP `credential_type`.
        credential_type: String,
        /// CAEP `change_type`.
        change_type: String,
    },
}

impl Signal {
    /// The event-type URI.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::AccountDisabled => RISC_ACCOUNT_DISABLED,
            Self::AccountPurged => RISC_ACCOUNT_PURGED,
            Self::SessionRevoked => CAEP_SESSION_REVOKED,
            Self::CredentialChange { .. } => CAEP_CREDENTIAL_CHANGE,
        }
    }

    fn credential(credential_type: &str, change_type: &str) -> Self {
        Self::CredentialChange {
            credential_type: credential_type.to_owned(),
            change_type: change_type.to_owned(),
        }
    }
}

/// Which signal each action raises: by the action's verb (the part after the app, so every
/// SCIM app's `<app>.deactivate` is covered) unless an action is named explicitly.
///
/// [`EventMap::standard`]:
///
/// | verbs | event |
/// |---|---|
/// | `disable`, `disable_sign_in`, `suspend`, `deactivate` | RISC `account-disabled` (`account-enabled` on rollback) |
/// | `delete` | RISC `account-purged` |
/// | `revoke_sessions`, `clear_sessions`, `sign_out`, `revoke_tokens`, `revoke_grants` | CAEP `session-revoked` |
/// | `reset_password` | CAEP `credential-change` (`password`, `update`) |
/// | `delete_asps` (app passwords) | CAEP `credential-change` (`password`, `delete`) |
/// | `reset_factors`, `remove_auth_methods` | CAEP `credential-change` (`app`, `delete`) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMap {
    verbs: HashMap<String, Signal>,
    actions: HashMap<String, Option<Signal>>,
}

impl EventMap {
    /// The mapping in the table above.
    pub fn standard() -> Self {
        let mut verbs = HashMap::new();
        for v in ["disable", "disable_sign_in", "suspend", "deactivate"] {
            verbs.insert(v.to_owned(), Signal::AccountDisabled);
        }
        verbs.insert("delete".to_owned(), Signal::AccountPurged);
        for v in [
            "revoke_sessions",
            "clear_sessions",
            "sign_out",
            "revoke_tokens",
            "revoke_grants",
        ] {
            verbs.insert(v.to_owned(), Signal::SessionRevoked);
        }
        verbs.insert(
            "reset_password".to_owned(),
            Signal::credential("password", "update"),
        );
        verbs.insert(
            "delete_asps".to_owned(),
            Signal::credential("password", "delete"),
        );
        for v in ["reset_factors", "remove_auth_methods"] {
            verbs.insert(v.to_owned(), Signal::credential("app", "delete"));
        }
        Self {
            verbs,
            actions: HashMap::new(),
        }
    }

    /// Makes `action` raise `signal` (`None`: nothing), whatever its verb maps to.
    pub fn with_action(mut self, action: &ActionName, signal: Option<Signal>) -> Self {
        self.actions.insert(action.as_str().to_owned(), signal);
        self
    }

    /// The signal `action` raises, if any.
    pub fn signal(&self, action: &ActionName) -> Option<&Signal> {
        if let Some(explicit) = self.actions.get(action.as_str()) {
            return explicit.as_ref();
        }
        let verb = action.as_str().split_once('.').map_or("", |(_, v)| v);
        self.verbs.get(verb)
    }
}

impl Default for EventMap {
    fn default() -> Self {
        Self::standard()
    }
}

/// The `events` claim of a SET for `event_type` raised by `action` at `at` (seconds since the
/// epoch). CAEP events carry `event_timestamp`, `initiating_entity` (`policy`: an offboarding
/// policy ran) and `reason_admin`; RISC events carry no member of their own.
pub(crate) fn payload(event_type: &str, signal: Option<&Signal>, action: &str, at: i64) -> Value {
    let mut body = Map::new();
    if event_type.contains("/caep/") {
        body.insert("event_timestamp".into(), json!(at));
        body.insert("initiating_entity".into(), json!("policy"));
        body.insert(
            "reason_admin".into(),
            json!({"en": format!("offboarding: {action}")}),
        );
        if let Some(Signal::CredentialChange {
            credential_type,
            change_type,
        }) = signal
        {
            body.insert("credential_type".into(), json!(credential_type));
            body.insert("change_type".into(), json!(change_type));
        }
    }
    json!({ event_type: Value::Object(body) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ActionName {
        ActionName::parse(s).unwrap()
    }

    #[test]
    fn the_connectors_actions_map_to_their_events() {
        let m = EventMap::standard();
        for a in [
            "okta.suspend",
            "okta.deactivate",
            "ad.disable",
            "entra.disable_sign_in",
            "google.suspend",
            "slack.deactivate",
        ] {
            assert_eq!(m.signal(&name(a)), Some(&Signal::AccountDisabled), "{a}");
        }
        for a in [
            "okta.delete",
            "entra.delete",
            "google.delete",
            "zoom.delete",
        ] {
            assert_eq!(m.signal(&name(a)), Some(&Signal::AccountPurged), "{a}");
        }
        for a in [
            "okta.clear_sessions",
            "okta.revoke_grants",
            "entra.revoke_sessions",
            "google.sign_out",
            "google.revoke_tokens",
        ] {
            assert_eq!(m.signal(&name(a)), Some(&Signal::SessionRevoked), "{a}");
        }
        assert_eq!(
            m.signal(&name("ad.reset_password")),
            Some(&Signal::credential("password", "update"))
        );
        assert_eq!(
            m.signal(&name("okta.reset_factors")),
            Some(&Signal::credential("app", "delete"))
        );
        for a in [
            "okta.remove_groups",
            "o365.set_auto_reply",
            "google.transfer_data",
        ] {
            assert_eq!(m.signal(&name(a)), None, "{a}");
        }
    }

    #[test]
    fn an_explicit_action_overrides_its_verb() {
        let m = EventMap::standard()
            .with_action(&name("okta.suspend"), None)
            .with_action(&name("crm.lock"), Some(Signal::AccountDisabled));
        assert_eq!(m.signal(&name("okta.suspend")), None);
        assert_eq!(m.signal(&name("crm.lock")), Some(&Signal::AccountDisabled));
        assert_eq!(
            m.signal(&name("google.suspend")),
            Some(&Signal::AccountDisabled)
        );
    }

    #[test]
    fn caep_payloads_carry_their_required_members() {
        let p = payload(
            CAEP_CREDENTIAL_CHANGE,
            Some(&Signal::credential("password", "update")),
            "ad.reset_password",
            1_700_000_000,
        );
        let body = &p[CAEP_CREDENTIAL_CHANGE];
        assert_eq!(body["credential_type"], "password");
        assert_eq!(body["change_type"], "update");
        assert_eq!(body["event_timestamp"], 1_700_000_000);
        assert_eq!(body["initiating_entity"], "policy");
        let risc = payload(RISC_ACCOUNT_PURGED, None, "okta.delete", 1);
        assert_eq!(risc, json!({RISC_ACCOUNT_PURGED: {}}));
    }
}
