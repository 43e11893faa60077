//! The Okta and Google policy the cloud benchmark and the fleet test share: every action of
//! both connectors, the irreversible end of each app after the rest. Included with
//! `#[path = …] mod cloud_policy;`.

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

/// The policy: every action; the irreversible end of each app after the rest.
pub(crate) fn policy() -> Policy {
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| match *n {
                "google.move_to_ou" => format!(
                    "{{ name = \"{n}\", params = {{ ou = \"{}\" }} }}",
                    GoogleFixture::OFFBOARDED_OU
                ),
                n => format!("\"{n}\""),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut toml = format!(
        "[apps.okta]\nmethod = \"automatic\"\nactions = [{}]\n\n\
         [apps.google]\nmethod = \"automatic\"\nactions = [{}]\n",
        list(&OKTA),
        list(&GOOGLE)
    );
    for (last, others) in [
        ("okta.deactivate", &OKTA[..7]),
        ("google.delete", &GOOGLE[..12]),
    ] {
        for before in others {
            toml.push_str(&format!(
                "\n[[order]]\nbefore = \"{before}\"\nafter = \"{last}\"\n"
            ));
        }
    }
    Policy::from_toml(&toml).unwrap()
}
