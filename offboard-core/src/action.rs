//! Actions: named operations a connector offers, with typed parameters.

use std::borrow::Cow;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::AppId;

/// A stable action name, `<app>.<verb>`, e.g. `okta.clear_sessions`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionName(Cow<'static, str>);

impl ActionName {
    /// A name known at compile time.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Cow::Borrowed(s))
    }

    /// Parses `<app>.<verb>`: both parts non-empty, lower-case ASCII, digits and `_` only.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the malformed name.
    pub fn parse(s: &str) -> Result<Self> {
        let valid_part = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        match s.split_once('.') {
            Some((app, verb)) if valid_part(app) && valid_part(verb) => {
                Ok(Self(Cow::Owned(s.to_owned())))
            }
            _ => Err(Error::invalid_input(format!(
                "action name {s:?} is not of the form <app>.<verb> (lower-case, digits, _)"
            ))),
        }
    }

    /// The full name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The app part (before the dot).
    pub fn app(&self) -> AppId {
        AppId::new(self.0.split('.').next().unwrap_or_default())
    }
}

impl fmt::Display for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An action to run: its name and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// The action's name.
    pub name: ActionName,
    /// Parameters, as the connector's typed parameter struct serialises them (`null` for none).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
}

impl Action {
    /// An action without parameters.
    pub fn new(name: ActionName) -> Self {
        Self {
            name,
            params: serde_json::Value::Null,
        }
    }

    /// An action with typed parameters.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when the parameters do not serialise.
    pub fn with_params<P: Serialize>(name: ActionName, params: &P) -> Result<Self> {
        let params = serde_json::to_value(params)
            .map_err(|e| Error::invalid_input(format!("parameters of {name}: {e}")))?;
        Ok(Self { name, params })
    }

    /// Reads the typed parameters.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the action and the serde error.
    pub fn params<P: DeserializeOwned>(&self) -> Result<P> {
        let v = if self.params.is_null() {
            serde_json::json!({})
        } else {
            self.params.clone()
        };
        serde_json::from_value(v).map_err(|e| {
            Error::invalid_input(format!("parameters of {}: {e}", self.name))
                .with_operation(self.name.to_string())
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.params.is_null() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}{}", self.name, self.params)
        }
    }
}

/// What a connector says about an action it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActionSpec {
    /// The action's name.
    pub name: ActionName,
    /// One line for plans and reports.
    pub description: String,
    /// Whether a snapshot taken before it can undo it.
    pub reversible: bool,
    /// Whether it destroys something (delete, wipe); needs a digest-bound confirmation.
    pub critical: bool,
    /// Whether a missing account means the goal holds (`not_found` counts as done). True for
    /// removals; false for e.g. "transfer files to the manager".
    pub not_found_is_done: bool,
    /// Actions (of this or another app) that must complete first when they are in the same plan,
    /// e.g. `google.transfer_data` before `google.delete`, `ad.disable` before
    /// `entra.disable_sign_in`.
    #[serde(default)]
    pub after: Vec<ActionName>,
    /// Run without a policy entry: when the person is discovered in this connector's app and
    /// the policy does not name the app, the plan runs the connector's default actions
    /// (configuring the connector is the operator's choice to automate the app). Never set on
    /// a critical action.
    #[serde(default)]
    pub by_default: bool,
}

impl ActionSpec {
    /// A non-critical, irreversible removal (not-found counts as done) with no ordering.
    pub fn new(name: ActionName, description: impl Into<String>) -> Self {
        Self {
            name,
            description: description.into(),
            reversible: false,
            critical: false,
            not_found_is_done: true,
            after: Vec::new(),
            by_default: false,
        }
    }

    /// Runs for a discovered app the policy does not name (see [`ActionSpec::by_default`]).
    /// Ignored on a critical action: those always need a policy entry.
    pub fn by_default(mut self) -> Self {
        self.by_default = true;
        self
    }

    /// Marks it reversible from a snapshot.
    pub fn reversible(mut self) -> Self {
        self.reversible = true;
        self
    }

    /// Marks it critical.
    pub fn critical(mut self) -> Self {
        self.critical = true;
        self
    }

    /// Not-found is a failure for this action (e.g. a data transfer).
    pub fn needs_account(mut self) -> Self {
        self.not_found_is_done = false;
        self
    }

    /// Must run after `other` when both are planned.
    pub fn after(mut self, other: ActionName) -> Self {
        self.after.push(other);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_strictly() {
        assert_eq!(
            ActionName::parse("okta.clear_sessions")
                .unwrap()
                .app()
                .as_str(),
            "okta"
        );
        for bad in [
            "okta",
            ".x",
            "x.",
            "Okta.x",
            "okta.clear sessions",
            "okta.a\"b",
        ] {
            assert!(ActionName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn typed_params() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct MoveToOu {
            ou: String,
        }
        let a = Action::with_params(
            ActionName::from_static("google.move_to_ou"),
            &MoveToOu { ou: "/Gone".into() },
        )
        .unwrap();
        assert_eq!(
            a.params::<MoveToOu>().unwrap(),
            MoveToOu { ou: "/Gone".into() }
        );
        let wrong = Action::new(ActionName::from_static("google.move_to_ou"));
        assert!(
            wrong
                .params::<MoveToOu>()
                .unwrap_err()
                .to_string()
                .contains("google.move_to_ou")
        );
    }
}
