//! People, apps and accounts.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps a string.
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            /// The string form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// The host's stable identifier of a person (employee id, HR id, IdP id).
    PersonId
);
string_id!(
    /// An app's identifier: a connector's id (`okta`, `google`, `ad`) or a non-integrated app's
    /// name (`salesforce`).
    AppId
);

/// The departing human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Stable id.
    pub id: PersonId,
    /// Primary email address.
    pub email: String,
    /// Other addresses and logins the person is known by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// HR employee id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    /// Manager, who receives data and forwarded mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<Manager>,
}

impl Person {
    /// A person with an id and email; other fields empty.
    pub fn new(id: impl Into<PersonId>, email: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            email: email.into(),
            aliases: Vec::new(),
            display_name: String::new(),
            employee_id: None,
            manager: None,
        }
    }

    /// Sets the display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = name.into();
        self
    }

    /// Sets the manager.
    pub fn with_manager(mut self, manager: Manager) -> Self {
        self.manager = Some(manager);
        self
    }

    /// Adds an alias.
    pub fn with_alias(mut self, alias: impl Into<String>) -> Self {
        self.aliases.push(alias.into());
        self
    }

    /// The primary email and every alias, lower-cased.
    pub fn addresses(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(&self.email)
            .chain(&self.aliases)
            .map(|a| a.to_ascii_lowercase())
    }
}

/// A person's manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    /// Manager's person id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<PersonId>,
    /// Manager's email.
    pub email: String,
}

/// Where a person stands according to a source of truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Works here.
    Current,
    /// Left (deactivated, terminated, or no longer found).
    Past,
    /// Not ours: email domain outside the configured domains. Never triggers offboarding.
    External,
}

/// A place where access lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Identifier.
    pub id: AppId,
    /// Display name.
    pub name: String,
    /// Whether a connector can deprovision it.
    pub integrated: bool,
}

/// The status of an account inside an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Can sign in.
    Active,
    /// Suspended or disabled; still exists.
    Suspended,
    /// Deprovisioned / deactivated.
    Deprovisioned,
    /// Gone.
    Deleted,
    /// The app does not say.
    Unknown,
}

impl AccountStatus {
    /// Whether the account may still grant access (`Active` or `Unknown`).
    pub fn may_have_access(self) -> bool {
        matches!(self, Self::Active | Self::Unknown)
    }
}

/// The [`AccountRef::attributes`] key a connector sets on an account that holds, or held,
/// privileged access (a former domain admin, a directory role); the value says why. The planner
/// marks every action on such an account critical, so running it needs a confirmation.
pub const PRIVILEGED_ATTRIBUTE: &str = "privileged";

/// The account a connector found for a person: what actions act on.
///
/// # Behavior
/// `external_id` is the app's immutable id (Okta user id, AD objectGUID, Graph object id); every
/// action addresses the account by it, so a rename between plan and execution cannot redirect an
/// action to another account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    /// The app.
    pub app: AppId,
    /// The app's immutable id of the account.
    pub external_id: String,
    /// The login / user principal name / email used in the app.
    #[serde(default)]
    pub login: String,
    /// Status when last read.
    pub status: AccountStatus,
    /// Extra facts the connector keeps for later steps (e.g. `on_premises_sync=true`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl AccountRef {
    /// A reference with no attributes.
    pub fn new(
        app: impl Into<AppId>,
        external_id: impl Into<String>,
        login: impl Into<String>,
        status: AccountStatus,
    ) -> Self {
        Self {
            app: app.into(),
            external_id: external_id.into(),
            login: login.into(),
            status,
            attributes: BTreeMap::new(),
        }
    }
}

/// One entry of the account inventory: a person's account in an app, ever discovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The person.
    pub person: PersonId,
    /// The account.
    pub account: AccountRef,
    /// When it was first discovered.
    pub first_seen: DateTime<Utc>,
    /// When it was last seen.
    pub last_seen: DateTime<Utc>,
}
