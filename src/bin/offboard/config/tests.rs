//! The configuration mapping: one test per connector and delegate kind that it builds, and
//! the rules for secrets (from the environment only, never shown).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use offboard::{ErrorKind, MemoryStore};

use super::*;

const SECRET: &str = "s3cr3t-value-from-the-environment-0123456789abcdef";

fn env_with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn parse(text: &str) -> Result<Settings> {
    let env = env_with(&[("TOKEN", SECRET), ("PGPASS", SECRET)]);
    Settings::parse(text, Path::new("/etc/offboard"), &env)
}

fn with(table: &str) -> Settings {
    let text = format!("store = \"sqlite://offboard.db\"\npolicy = \"policy.toml\"\n{table}");
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Guards the Okta mapping: keys (and aliases) by the crate's own parser, the token from the
/// environment.
#[test]
fn builds_okta() {
    let s = with(
        "[connectors.okta]\nurl = \"https://example.okta.com\"\napi_token_env = \"TOKEN\"\n\
         timeout_secs = 10\n",
    );
    assert!(okta(&s.connectors["okta"]).is_ok());
}

/// Guards the Google Workspace mapping.
#[test]
fn builds_google() {
    let s = with(
        "[connectors.google]\nbase_url = \"http://127.0.0.1:9\"\nallow_plain_http = true\n\
         access_token_env = \"TOKEN\"\n",
    );
    google(&s.connectors["google"]).unwrap();
}

/// Guards the Entra ID mapping (Graph keys).
#[test]
fn builds_entra() {
    let s = with(
        "[connectors.entra]\ntenant_id = \"contoso.onmicrosoft.com\"\n\
         client_id = \"00000000-0000-0000-0000-000000000001\"\nclient_secret_env = \"TOKEN\"\n\
         max_concurrency = 4\n",
    );
    entra(&s.connectors["entra"]).unwrap();
}

/// Guards the Office 365 mapping (Graph keys).
#[test]
fn builds_o365() {
    let s = with(
        "[connectors.o365]\ntenant_id = \"contoso.onmicrosoft.com\"\n\
         client_id = \"00000000-0000-0000-0000-000000000001\"\nclient_secret_env = \"TOKEN\"\n",
    );
    o365(&s.connectors["o365"]).unwrap();
}

/// Guards the Active Directory mapping (the configuration; connecting needs a DC).
#[test]
fn builds_ad() {
    let s = with(
        "[connectors.ad]\nurl = \"ldaps://dc.example.com\"\n\
         bind_dn = \"CN=svc,OU=Service,DC=example,DC=com\"\npassword_env = \"TOKEN\"\n\
         base_dn = \"DC=example,DC=com\"\ndisabled_ou = \"OU=Disabled,DC=example,DC=com\"\n",
    );
    let config = ad(&s.connectors["ad"]).unwrap();
    assert_eq!(config.base_dn(), "DC=example,DC=com");
}

/// Guards the Jira delegate mapping.
#[test]
fn builds_jira() {
    let s = with(
        "[delegates.jira]\nsite = \"https://example.atlassian.net\"\n\
         email = \"offboard@example.com\"\napi_token_env = \"TOKEN\"\nproject = \"IT\"\n",
    );
    jira(&s.delegates["jira"]).unwrap();
}

/// Guards the email delegate mapping (built with the store, as the engine builds it).
#[test]
fn builds_email() {
    let s = with(
        "[delegates.email]\nsmtp_host = \"smtp.example.com\"\nfrom = \"it@example.com\"\n\
         task_url = \"https://it.example.com/tasks\"\nsigning_key_env = \"TOKEN\"\n\
         password_env = \"TOKEN\"\nusername = \"it\"\nowner = \"it-owner@example.com\"\n",
    );
    let store = Arc::new(MemoryStore::new());
    email(&s.delegates["email"])
        .unwrap()
        .with_store(store)
        .build()
        .unwrap();
}

/// Guards the SCIM mapping: one connector per app (`[connectors.scim.<app>]`, the table's name
/// the app id), each with its own profile and authentication (bearer; basic, whose password
/// sorts before its user; OAuth client credentials, whose secret sorts before its token URL),
/// secrets from the environment, and `Debug` without them.
#[test]
fn builds_scim() {
    let s = with(
        "[connectors.scim.slack]\nbase_url = \"https://api.slack.com/scim/v2\"\n\
         profile = \"slack\"\ntoken_env = \"TOKEN\"\n\
         [connectors.scim.notion]\nurl = \"https://api.notion.com/scim/v2\"\n\
         profile = \"notion\"\nbasic_user = \"offboard\"\nbasic_password_env = \"TOKEN\"\n\
         timeout_secs = 10\n\
         [connectors.scim.zoom]\nbase_url = \"https://api.zoom.us/scim2\"\nprofile = \"zoom\"\n\
         oauth_client_id = \"zoom-client\"\noauth_client_secret_env = \"TOKEN\"\n\
         oauth_token_url = \"https://zoom.us/oauth/token\"\noauth_scope = \"scim2\"\n",
    );
    assert!(s.connectors.is_empty(), "{s:?}");
    let apps: Vec<&str> = s.scim.keys().map(String::as_str).collect();
    assert_eq!(apps, ["notion", "slack", "zoom"]);
    let slack = scim("slack", &s.scim["slack"]).unwrap();
    let notion = scim("notion", &s.scim["notion"]).unwrap();
    let zoom = scim("zoom", &s.scim["zoom"]).unwrap();
    assert_eq!(slack.profile().name, "slack");
    assert_eq!(notion.profile().name, "notion");
    assert_eq!(zoom.profile().name, "zoom");
    use offboard::Connector as _;
    assert_eq!(slack.capabilities().app.as_str(), "slack");
    assert_eq!(notion.capabilities().app.as_str(), "notion");
    for shown in [
        format!("{s:?}"),
        format!("{slack:?}"),
        format!("{notion:?}"),
        format!("{zoom:?}"),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
    }
    // The standard variables of one app fill its table, and not another app's.
    let env = env_with(&[
        (
            "OFFBOARD_SCIM_SLACK_BASE_URL",
            "https://api.slack.com/scim/v2",
        ),
        ("OFFBOARD_SCIM_SLACK_BEARER_TOKEN", SECRET),
    ]);
    let text = "store = \"sqlite://x.db\"\npolicy = \"p.toml\"\n[connectors.scim.slack]\n\
                [connectors.scim.canva]\n";
    let s = Settings::parse(text, Path::new("."), &env).unwrap();
    scim("slack", &s.scim["slack"]).unwrap();
    let e = scim("canva", &s.scim["canva"]).unwrap_err();
    assert!(e.to_string().contains("base_url"), "{e}");
}

/// Guards the SCIM tables' shape: an app that is not a table, an app id of another connector,
/// a key the SCIM connector has not got (`app` is the table's name) are refused by name.
#[test]
fn scim_tables_are_checked() {
    let base = "store = \"sqlite://x.db\"\npolicy = \"p.toml\"\n";
    let e = parse(&format!("{base}[connectors.scim]\nslack = \"x\"\n")).unwrap_err();
    assert!(e.to_string().contains("[connectors.scim.slack]"), "{e}");
    let e = parse(&format!("{base}[connectors.scim.okta]\n")).unwrap_err();
    assert!(e.to_string().contains("[connectors.okta]"), "{e}");
    let e = parse(&format!("{base}[connectors.scim.slack]\napp = \"zoom\"\n")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

/// Guards that a secret written in the file is refused, and the error does not repeat it.
#[test]
fn a_secret_in_the_file_is_refused() {
    let text = format!(
        "store = \"sqlite://x.db\"\npolicy = \"p.toml\"\n[connectors.okta]\n\
         org_url = \"https://example.okta.com\"\ntoken = \"{SECRET}\"\n"
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("token_env"), "{e}");
    assert!(!e.to_string().contains(SECRET), "{e}");
}

/// Guards the same rule for SCIM apps: each of the SCIM connector's secrets (`bearer_token` and
/// its alias `token`, `basic_password`, `oauth_client_secret`) written in an app's table is
/// refused, naming the app and the `_env` key, without repeating the value.
#[test]
fn a_scim_secret_in_the_file_is_refused() {
    for key in [
        "token",
        "bearer_token",
        "basic_password",
        "oauth_client_secret",
    ] {
        let text = format!(
            "store = \"sqlite://x.db\"\npolicy = \"p.toml\"\n[connectors.scim.slack]\n\
             base_url = \"https://api.slack.com/scim/v2\"\n{key} = \"{SECRET}\"\n"
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains(&format!("scim.slack.{key}")), "{e}");
        assert!(e.to_string().contains(&format!("{key}_env")), "{e}");
        assert!(!e.to_string().contains(SECRET), "{e}");
    }
}

/// Guards that settings read from the environment never show in `Debug`.
#[test]
fn debug_redacts_secrets() {
    let s = with(
        "store_password_env = \"PGPASS\"\n[connectors.okta]\norg_url = \"https://e.okta.com\"\n\
         api_token_env = \"TOKEN\"\n",
    );
    assert!(!format!("{s:?}").contains(SECRET));
    let pg = "store = \"postgres://offboard@127.0.0.1:5432/offboard\"\n\
              store_password_env = \"PGPASS\"\npolicy = \"p.toml\"\n";
    let s = parse(pg).unwrap();
    assert!(!format!("{s:?}").contains(SECRET));
    let StoreSpec::Postgres { url, password } = &s.store else {
        panic!("not postgres: {s:?}");
    };
    let full = StoreSpec::postgres_url(url, password.as_ref()).unwrap();
    assert!(full.expose().contains(SECRET));
    assert!(!format!("{full:?}").contains(SECRET));
}

/// Guards a PostgreSQL password in the URL (it must come from the environment).
#[test]
fn a_password_in_the_store_url_is_refused() {
    let e = parse("store = \"postgres://u:pw@h/db\"\npolicy = \"p.toml\"\n").unwrap_err();
    assert!(e.to_string().contains("store_password_env"), "{e}");
    assert!(!e.to_string().contains("pw@"), "{e}");
}

/// Guards a variable that is not set: the error names the variable.
#[test]
fn a_missing_variable_is_named() {
    let text = "store = \"sqlite://x.db\"\npolicy = \"p.toml\"\n[connectors.okta]\n\
                api_token_env = \"NOT_SET_ANYWHERE\"\n";
    let e = parse(text).unwrap_err();
    assert!(e.to_string().contains("NOT_SET_ANYWHERE"), "{e}");
}

/// Guards paths relative to the configuration file, and unknown kinds and keys.
#[test]
fn paths_and_unknown_names() {
    let s = with("[sources.hr]\npath = \"hr.csv\"\n");
    assert_eq!(
        s.store,
        StoreSpec::Sqlite("/etc/offboard/offboard.db".into())
    );
    assert_eq!(s.policy, Path::new("/etc/offboard/policy.toml"));
    assert_eq!(
        s.sources["hr"].path.as_deref(),
        Some(Path::new("/etc/offboard/hr.csv"))
    );
    let bad = "store = \"sqlite://x.db\"\npolicy = \"p.toml\"\n[connectors.salesforce]\n";
    assert!(parse(bad).unwrap_err().to_string().contains("unknown kind"));
    let bad = "store = \"sqlite://x.db\"\npolicy = \"p.toml\"\n[connectors.okta]\ncolour = 1\n";
    assert_eq!(parse(bad).unwrap_err().kind(), ErrorKind::Config);
    let bad = "store = \"sqlite://x.db\"\npolicy = \"p.toml\"\n[sources.okta]\n";
    assert!(
        parse(bad)
            .unwrap_err()
            .to_string()
            .contains("connectors.okta")
    );
    assert!(parse("store = \"mysql://x\"\npolicy = \"p\"\n").is_err());
}

/// Guards the crates' standard variables: an empty `[connectors.okta]` table is filled from
/// `OFFBOARD_OKTA_*`, and a key in the file overrides its variable.
#[test]
fn standard_variables_fill_a_table_and_the_file_overrides_them() {
    let env = env_with(&[
        ("OFFBOARD_OKTA_ORG_URL", "https://from-env.okta.com"),
        ("OFFBOARD_OKTA_API_TOKEN", SECRET),
    ]);
    let base = "store = \"sqlite://x.db\"\npolicy = \"p.toml\"\n[connectors.okta]\n";
    let s = Settings::parse(base, Path::new("."), &env).unwrap();
    assert!(okta(&s.connectors["okta"]).is_ok());
    assert!(!format!("{s:?}").contains(SECRET));
    let without = Settings::parse(base, Path::new("."), &env_with(&[])).unwrap();
    let e = okta(&without.connectors["okta"]).unwrap_err();
    assert!(e.to_string().contains("org_url"), "{e}");

    let file = format!("{base}org_url = \"not a url\"\n");
    let s = Settings::parse(&file, Path::new("."), &env).unwrap();
    let urls: Vec<&str> = s.connectors["okta"]
        .iter()
        .filter(|(k, _)| *k == "org_url")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        urls,
        ["https://from-env.okta.com", "not a url"],
        "the file's value last"
    );
    assert!(okta(&s.connectors["okta"]).is_err());
}
