//! Shared by the SCIM connector's test binaries.
#![allow(dead_code, unreachable_pub)]

/// The conformance rules the SCIM connector runs (it snapshots and verifies), in order.
pub const CONFORMANCE_RULES: &[&str] = &[
    "lookup_zero_matches",
    "lookup_finds_exact_match",
    "lookup_two_matches_is_ambiguous",
    "lookup_hostile_input_never_widens",
    "unknown_action_is_unsupported",
    "repeat_reports_already_done",
    "deleted_user_counts_as_done",
    "restore_reproduces_snapshot",
    "verify_revoked_agrees_with_reality",
    "no_secret_in_debug",
];
