//! The actions `offboard-ad` offers, one file each. Every action addresses the user by
//! objectGUID (read first, then acted on at the DN found), reads before it writes so that a
//! repeat reports `already_done`, and treats a user who no longer exists as `not_found`.

use offboard_core::{ActionName, ActionSpec, Error, ExecuteReply, Outcome, Result};

use crate::client::{Client, User, Written, replace};
use crate::error::rc;

pub(crate) mod account_expires;
pub(crate) mod clear_manager;
pub(crate) mod disable;
pub(crate) mod hide_address_lists;
pub(crate) mod move_ou;
pub(crate) mod remove_groups;
pub(crate) mod reset_password;
pub(crate) mod stamp_description;

/// `ad.disable`: sets `ACCOUNTDISABLE` in `userAccountControl`, keeping every other bit.
pub const DISABLE: ActionName = ActionName::from_static("ad.disable");
/// `ad.remove_groups`: removes every group membership except the primary group.
pub const REMOVE_GROUPS: ActionName = ActionName::from_static("ad.remove_groups");
/// `ad.move_to_disabled_ou`: moves the user into the configured disabled-users OU.
pub const MOVE_TO_DISABLED_OU: ActionName = ActionName::from_static("ad.move_to_disabled_ou");
/// `ad.reset_password`: sets a random password nobody knows.
pub const RESET_PASSWORD: ActionName = ActionName::from_static("ad.reset_password");
/// `ad.stamp_description`: writes `"offboarded <date> by <actor>, run <id>"` to `description`.
pub const STAMP_DESCRIPTION: ActionName = ActionName::from_static("ad.stamp_description");
/// `ad.clear_manager`: clears `manager`.
pub const CLEAR_MANAGER: ActionName = ActionName::from_static("ad.clear_manager");
/// `ad.set_account_expires`: sets `accountExpires` to now.
pub const SET_ACCOUNT_EXPIRES: ActionName = ActionName::from_static("ad.set_account_expires");
/// `ad.hide_from_address_lists`: sets `msExchHideFromAddressLists` (Exchange schema only).
pub const HIDE_FROM_ADDRESS_LISTS: ActionName =
    ActionName::from_static("ad.hide_from_address_lists");

/// One of the actions above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Disable,
    RemoveGroups,
    MoveToDisabledOu,
    ResetPassword,
    StampDescription,
    ClearManager,
    SetAccountExpires,
    HideFromAddressLists,
}

impl Verb {
    pub(crate) const ALL: [Verb; 8] = [
        Verb::Disable,
        Verb::RemoveGroups,
        Verb::MoveToDisabledOu,
        Verb::ResetPassword,
        Verb::StampDescription,
        Verb::ClearManager,
        Verb::SetAccountExpires,
        Verb::HideFromAddressLists,
    ];

    pub(crate) fn name(self) -> ActionName {
        match self {
            Self::Disable => DISABLE,
            Self::RemoveGroups => REMOVE_GROUPS,
            Self::MoveToDisabledOu => MOVE_TO_DISABLED_OU,
            Self::ResetPassword => RESET_PASSWORD,
            Self::StampDescription => STAMP_DESCRIPTION,
            Self::ClearManager => CLEAR_MANAGER,
            Self::SetAccountExpires => SET_ACCOUNT_EXPIRES,
            Self::HideFromAddressLists => HIDE_FROM_ADDRESS_LISTS,
        }
    }

    pub(crate) fn from_name(name: &ActionName) -> Option<Self> {
        Self::ALL.into_iter().find(|v| &v.name() == name)
    }

    pub(crate) fn spec(self) -> ActionSpec {
        match self {
            Self::Disable => ActionSpec::new(
                DISABLE,
                "Disable the account (userAccountControl ACCOUNTDISABLE)",
            )
            .reversible(),
            Self::RemoveGroups => ActionSpec::new(
                REMOVE_GROUPS,
                "Remove every group membership except the primary group",
            )
            .reversible()
            .after(DISABLE),
            Self::MoveToDisabledOu => ActionSpec::new(
                MOVE_TO_DISABLED_OU,
                "Move the account to the disabled-users OU",
            )
            .reversible()
            .after(DISABLE)
            .after(REMOVE_GROUPS),
            Self::ResetPassword => ActionSpec::new(
                RESET_PASSWORD,
                "Set a random password nobody knows (irreversible; cannot tell a repeat)",
            )
            .critical()
            .after(DISABLE),
            Self::StampDescription => ActionSpec::new(
                STAMP_DESCRIPTION,
                "Stamp the description with the offboarding date, actor and run",
            )
            .reversible(),
            Self::ClearManager => {
                ActionSpec::new(CLEAR_MANAGER, "Clear the manager attribute").reversible()
            }
            Self::SetAccountExpires => {
                ActionSpec::new(SET_ACCOUNT_EXPIRES, "Set accountExpires to now").reversible()
            }
            Self::HideFromAddressLists => ActionSpec::new(
                HIDE_FROM_ADDRESS_LISTS,
                "Hide from Exchange address lists (msExchHideFromAddressLists)",
            )
            .reversible(),
        }
    }
}

/// The outcome a dry run predicts or a real run reports, given whether a change is needed.
pub(crate) fn predicted(change_needed: bool) -> ExecuteReply {
    ExecuteReply::new(if change_needed {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    })
}

/// Interprets a write: success is `done`; a user deleted in the meantime is `not_found`.
pub(crate) fn finish(written: Written, done: Outcome) -> Result<Outcome> {
    match written {
        Ok(()) => Ok(done),
        Err(e) if e.rc() == Some(rc::NO_SUCH_OBJECT) => Ok(Outcome::NotFound),
        Err(e) => Err(Error::from(e)),
    }
}

/// Sets a single-valued string attribute to `want` (`None` deletes it) unless it already
/// holds that value.
pub(crate) async fn set_single(
    client: &Client,
    user: &User,
    attr: &str,
    current: Option<&str>,
    want: Option<&str>,
) -> Result<Outcome> {
    if current == want {
        return Ok(Outcome::AlreadyDone);
    }
    let values: Vec<Vec<u8>> = want.map(|w| w.as_bytes().to_vec()).into_iter().collect();
    finish(
        client.modify(&user.dn, vec![replace(attr, values)]).await?,
        Outcome::Done,
    )
}

/// Reads a string field of snapshot data (`null` or absent is `None`).
pub(crate) fn data_str(data: &serde_json::Value, key: &str) -> Result<Option<String>> {
    match data.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid_input(format!(
            "snapshot field {key} must be a string, got {other}"
        ))),
    }
}
