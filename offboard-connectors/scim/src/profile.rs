//! Quirk profiles: how real SCIM service providers deviate from RFC 7644, selectable by name.

use std::fmt;
use std::str::FromStr;

use offboard_core::Error;

/// How `<app>.deactivate` takes the account's access away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeactivateMethod {
    /// `PATCH` `active=false` when `/ServiceProviderConfig` says `patch.supported`, else
    /// `GET` + `PUT` of the whole resource with `active=false`.
    Advertised,
    /// Always `PATCH` `{"op":"replace","path":"active","value":false}`.
    Patch,
    /// Always `GET` + `PUT` of the whole resource with `active=false`.
    Put,
    /// `DELETE /Users/{id}`: the app has no usable `active` (it removes the member instead).
    /// Not reversible.
    Delete,
}

/// A lookup attribute, tried in the profile's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupAttribute {
    /// `userName eq "<address>"` for each address of the person.
    UserName,
    /// `emails[value eq "<address>"]` for each address of the person.
    Emails,
    /// `externalId eq "<person id>"`: the IdP's id of the person, where the app was
    /// provisioned with it.
    ExternalId,
}

impl LookupAttribute {
    /// The attribute path as a filter compares it (`userName`, `emails.value`, `externalId`).
    pub fn path(self) -> &'static str {
        match self {
            Self::UserName => "userName",
            Self::Emails => "emails.value",
            Self::ExternalId => "externalId",
        }
    }
}

/// The quirks of one app's SCIM service provider.
///
/// Each flag is covered by a setting of the simulated provider
/// (`offboard_testkit::sim::scim::ScimSettings`) and a test in `tests/actions.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScimProfile {
    /// The profile's name (`generic`, `slack`...).
    pub name: &'static str,
    /// How to deactivate.
    pub deactivate: DeactivateMethod,
    /// Whether `DELETE /Users/{id}` exists; without it `<app>.delete` is not offered.
    pub delete_supported: bool,
    /// Whether `DELETE` only deactivates (the user stays): `<app>.delete` is then not offered,
    /// as it would not delete.
    pub delete_only_deactivates: bool,
    /// Whether a deactivated user can be made active again; without it `<app>.deactivate` is
    /// not reversible.
    pub reactivation_supported: bool,
    /// Whether to send `If-Match` with the resource's ETag on writes: `None` = as
    /// `/ServiceProviderConfig` advertises (`etag.supported`).
    pub etag: Option<bool>,
    /// The attributes a lookup filters on, in order.
    pub lookup: &'static [LookupAttribute],
    /// Resources asked for per page (`count`) unless the configuration sets `page_size`; a
    /// provider answering fewer is paged on by what it returned.
    pub page_size: usize,
    /// Where the profile's facts come from (public documentation).
    pub source: &'static str,
    /// What the documentation says, and which facts are unverified.
    pub notes: &'static str,
}

const USER_AND_EMAILS: &[LookupAttribute] = &[LookupAttribute::UserName, LookupAttribute::Emails];
const USER_NAME_ONLY: &[LookupAttribute] = &[LookupAttribute::UserName];

impl ScimProfile {
    /// RFC 7644 as written: deactivation as `/ServiceProviderConfig` advertises, `DELETE`
    /// deletes, reactivation works, ETags as advertised, lookup by `userName` then `emails`.
    pub const GENERIC: ScimProfile = ScimProfile {
        name: "generic",
        deactivate: DeactivateMethod::Advertised,
        delete_supported: true,
        delete_only_deactivates: false,
        reactivation_supported: true,
        etag: None,
        lookup: USER_AND_EMAILS,
        page_size: crate::DEFAULT_PAGE_SIZE,
        source: "https://www.rfc-editor.org/rfc/rfc7644",
        notes: "The protocol as specified.",
    };

    /// Slack (Enterprise Grid / Business+ SCIM API).
    pub const SLACK: ScimProfile = ScimProfile {
        name: "slack",
        deactivate: DeactivateMethod::Patch,
        delete_supported: true,
        delete_only_deactivates: true,
        reactivation_supported: true,
        etag: Some(false),
        lookup: USER_AND_EMAILS,
        page_size: crate::DEFAULT_PAGE_SIZE,
        source: "https://docs.slack.dev/reference/scim-api",
        notes: "Slack's endpoint table: `PATCH /Users/<id>` updates the user; \
                `DELETE /Users/<id>` \"Sets a Slack user to deactivated\" (so `<app>.delete` is not \
                offered). Reactivation with `active=true`, ETag support and rate limits: \
                unverified.",
    };

    /// Zoom (`https://api.zoom.us/scim2`).
    pub const ZOOM: ScimProfile = ScimProfile {
        name: "zoom",
        deactivate: DeactivateMethod::Patch,
        delete_supported: true,
        delete_only_deactivates: false,
        reactivation_supported: true,
        etag: Some(false),
        lookup: USER_AND_EMAILS,
        page_size: crate::DEFAULT_PAGE_SIZE,
        source: "https://developers.zoom.us/docs/api/scim2/",
        notes: "Zoom's SCIM2 reference: `PATCH /scim2/Users/{userId}` \"activate or deactivate a \
                user\", `DELETE /scim2/Users/{userId}` deletes; OAuth scope `scim2`; a third-party \
                mirror of the docs states 1 request/second per account per endpoint \
                (unverified). Filter attributes and ETags: unverified.",
    };

    /// Notion (`https://api.notion.com/scim/v2`).
    pub const NOTION: ScimProfile = ScimProfile {
        name: "notion",
        deactivate: DeactivateMethod::Delete,
        delete_supported: false,
        delete_only_deactivates: false,
        reactivation_supported: false,
        etag: Some(false),
        lookup: USER_AND_EMAILS,
        page_size: crate::DEFAULT_PAGE_SIZE,
        source: "https://www.notion.com/help/provision-users-and-groups-with-scim",
        notes: "Notion's help: members are created and removed through SCIM, found by email or \
                name; guests are not managed. A deprovisioning integration documents \
                `DELETE /scim/v2/Users/<id>` as removing the member from the workspace and ending \
                their sessions, and that accounts cannot be fully deleted through SCIM (so \
                deactivation is the DELETE and `<app>.delete` is not offered). Whether \
                `PATCH active=false` is honoured: unverified.",
    };

    /// Atlassian Cloud (user provisioning API, `https://api.atlassian.com/scim/directory/{id}`).
    pub const ATLASSIAN: ScimProfile = ScimProfile {
        name: "atlassian",
        deactivate: DeactivateMethod::Patch,
        delete_supported: true,
        delete_only_deactivates: false,
        reactivation_supported: true,
        etag: Some(false),
        lookup: USER_AND_EMAILS,
        page_size: crate::DEFAULT_PAGE_SIZE,
        source: "https://developer.atlassian.com/cloud/admin/user-provisioning/rest/",
        notes: "Atlassian: `DELETE` of a SCIM user unlinks it from the identity provider and \
                deactivates the Atlassian account; the SCIM record is gone and can only be \
                created anew (irreversible: `<app>.delete` is critical). PATCH `active=false` \
                deactivation and ETags: unverified.",
    };

    /// Canva (`https://www.canva.com/_scim/v2`).
    pub const CANVA: ScimProfile = ScimProfile {
        name: "canva",
        deactivate: DeactivateMethod::Patch,
        delete_supported: false,
        delete_only_deactivates: false,
        reactivation_supported: true,
        etag: Some(false),
        lookup: USER_NAME_ONLY,
        page_size: crate::DEFAULT_PAGE_SIZE,
        source: "https://www.canva.dev/docs/scim/delete-user",
        notes: "Canva's SCIM API has no DELETE for users; deprovisioning is PATCH `active=false` \
                (so `<app>.delete` is not offered). Filter on `emails`: unverified, so lookup \
                uses `userName` only.",
    };

    /// PagerDuty.
    pub const PAGERDUTY: ScimProfile = ScimProfile {
        name: "pagerduty",
        deactivate: DeactivateMethod::Patch,
        delete_supported: true,
        delete_only_deactivates: false,
        reactivation_supported: false,
        etag: Some(false),
        lookup: USER_NAME_ONLY,
        page_size: crate::DEFAULT_PAGE_SIZE,
        source: "https://support.pagerduty.com/main/docs/assign-or-deactivate-users",
        notes: "PagerDuty: `active` set to false deletes the user, and deactivating then \
                reactivating the same user is not supported (so `<app>.deactivate` is not \
                reversible). `userName` is the user's email. ETags and filters beyond \
                `userName`: unverified.",
    };

    /// Every named profile.
    pub const ALL: [ScimProfile; 7] = [
        Self::GENERIC,
        Self::SLACK,
        Self::ZOOM,
        Self::NOTION,
        Self::ATLASSIAN,
        Self::CANVA,
        Self::PAGERDUTY,
    ];

    /// Sets how to deactivate (for an app without a named profile).
    pub fn with_deactivate(mut self, method: DeactivateMethod) -> Self {
        self.deactivate = method;
        self
    }

    /// Sets the lookup attributes.
    pub fn with_lookup(mut self, lookup: &'static [LookupAttribute]) -> Self {
        self.lookup = lookup;
        self
    }

    /// Sets whether to send `If-Match` (`None`: as advertised).
    pub fn with_etag(mut self, etag: Option<bool>) -> Self {
        self.etag = etag;
        self
    }

    /// Sets the page size (`count`).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Sets whether `DELETE` exists.
    pub fn with_delete_supported(mut self, supported: bool) -> Self {
        self.delete_supported = supported;
        self
    }

    /// Sets whether `DELETE` only deactivates.
    pub fn with_delete_only_deactivates(mut self, yes: bool) -> Self {
        self.delete_only_deactivates = yes;
        self
    }

    /// Sets whether reactivation works.
    pub fn with_reactivation_supported(mut self, supported: bool) -> Self {
        self.reactivation_supported = supported;
        self
    }
}

impl Default for ScimProfile {
    fn default() -> Self {
        Self::GENERIC
    }
}

impl fmt::Display for ScimProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl FromStr for ScimProfile {
    type Err = Error;

    /// A named profile, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Error> {
        let name = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.name).collect();
                Error::config(
                    "profile",
                    format!("{s:?} is not a SCIM profile ({})", names.join(", ")),
                )
            })
    }
}
