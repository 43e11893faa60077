//! The cloud policies the cloud, Graph and fleet benchmarks and the fleet test share: every
//! action of each connector, the irreversible end of each app after the rest. Included with
//! `#[path = …] mod cloud_policy;`.

#![allow(dead_code)]

use offboard::Policy;
use offboard_testkit::google::GoogleFixture;

/// Okta's actions, deactivate and delete last.
pub(crate) const OKTA: [&str; 9] = [
    "okta.suspend",
    "okta.clear_sessions",
    "okta.revoke_grants",
    "okta.reset_factors",
    "okta.remove_groups",
    "okta.unassign_apps",
    "okta.remove_admin_roles",
    "okta.deactivate",
    "okta.delete",
];

/// Google's actions, delete last.
pub(crate) const GOOGLE: [&str; 13] = [
    "google.invalidate_backup_codes",
    "google.delete_asps",
    "google.revoke_tokens",
    "google.sign_out",
    "google.suspend",
    "google.move_to_ou",
    "google.hide_from_gal",
    "google.remove_from_groups",
    "google.reset_password",
    "google.transfer_data",
    "google.wipe_devices",
    "google.remove_licenses",
    "google.delete",
];

/// The Entra actions run for each person, `entra.delete` last: every one but the optional
/// `entra.clear_immutable_id` and `entra.intune_wipe` (the laptop is retired instead).
pub(crate) const ENTRA: [&str; 14] = [
    "entra.disable_sign_in",
    "entra.revoke_sessions",
    "entra.remove_groups",
    "entra.remove_app_roles",
    "entra.remove_grants",
    "entra.remove_auth_methods",
    "entra.remove_directory_roles",
    "entra.hand_over_owned",
    "entra.clear_manager",
    "entra.disable_devices",
    "entra.intune_retire",
    "entra.remove_access_packages",
    "entra.run_lifecycle_workflow",
    "entra.delete",
];

/// The Office 365 actions that go through Graph (the Exchange-admin ones need a hook outside
/// Graph); all run before `entra.delete`, `o365.remove_licenses` after the rest (its own order).
pub(crate) const O365: [&str; 6] = [
    "o365.set_auto_reply",
    "o365.forward_to_manager",
    "o365.onedrive_to_manager",
    "o365.remove_teams",
    "o365.cancel_meetings",
    "o365.remove_licenses",
];

/// The app whose access is removed by a person through a Jira issue.
pub(crate) const JIRA_APP: &str = "salesforce";

/// An action as the policy lists it, with its parameters.
fn entry(name: &str) -> String {
    match name {
        "google.move_to_ou" => format!(
            "{{ name = \"{name}\", params = {{ ou = \"{}\" }} }}",
            GoogleFixture::OFFBOARDED_OU
        ),
        "entra.run_lifecycle_workflow" => format!(
            "{{ name = \"{name}\", params = {{ workflow = \"{}\" }} }}",
            offboard_testkit::sim::graph::GraphFixture::LEAVER_WORKFLOW
        ),
        n => format!("\"{n}\""),
    }
}

/// An app with every action of `names` run automatically.
fn app(app: &str, names: &[&str]) -> String {
    let list = names
        .iter()
        .map(|n| entry(n))
        .collect::<Vec<_>>()
        .join(", ");
    format!("\n[apps.{app}]\nmethod = \"automatic\"\nactions = [{list}]\n")
}

/// `[[order]]`: each of `before` ahead of `after`.
fn order(before: &[&str], after: &str) -> String {
    before
        .iter()
        .map(|b| format!("\n[[order]]\nbefore = \"{b}\"\nafter = \"{after}\"\n"))
        .collect()
}

/// Okta and Google: every action; the irreversible end of each app after the rest.
pub(crate) fn policy() -> Policy {
    let toml = [
        app("okta", &OKTA),
        app("google", &GOOGLE),
        order(&OKTA[..7], "okta.deactivate"),
        order(&GOOGLE[..12], "google.delete"),
    ]
    .concat();
    Policy::from_toml(&toml).unwrap()
}

/// Entra alone: every action of [`ENTRA`], `entra.delete` after the rest.
pub(crate) fn entra_policy() -> Policy {
    let toml = [app("entra", &ENTRA), order(&ENTRA[..13], "entra.delete")].concat();
    Policy::from_toml(&toml).unwrap()
}

/// The fleet's policy: Okta, Google, Entra and Office 365 with every action (Office 365's
/// before `entra.delete`, which removes the mailbox's user), and with `jira` [`JIRA_APP`]
/// delegated to a Jira issue.
pub(crate) fn fleet_policy(jira: bool) -> Policy {
    let delegated = if jira {
        format!("\n[apps.{JIRA_APP}]\nmethod = \"delegate\"\nvia = \"jira\"\n")
    } else {
        String::new()
    };
    let toml = [
        app("okta", &OKTA),
        app("google", &GOOGLE),
        app("entra", &ENTRA),
        app("o365", &O365),
        delegated,
        order(&OKTA[..7], "okta.deactivate"),
        order(&GOOGLE[..12], "google.delete"),
        order(&ENTRA[..13], "entra.delete"),
        order(&O365, "entra.delete"),
    ]
    .concat();
    Policy::from_toml(&toml).unwrap()
}
