//! The admin CLI, run as a process: the built `offboard` binary against simulated Okta and
//! Google Workspace tenants (started by the test on loopback; the binary reads their URLs from
//! the TOML configuration the test writes) and a SQLite file.

use std::path::PathBuf;
use std::process::Command;

use offboard_testkit::sim::google::{self as gsim, GoogleTenant};
use offboard_testkit::sim::okta::{NewUser, OktaTenant};
use offboard_testkit::sim::scim::{ScimProvider, ScimSettings};
use offboard_testkit::suite::postgres::ScratchDatabase;
use serde_json::Value;

const POLICY: &str = r#"
protected = ["ceo@example.com"]
critical = ["okta.unassign_apps"]
unknown_apps = "ignore"

[stages]
last_day = "0d"

[apps.okta]
method = "automatic"
actions = ["okta.suspend", "okta.clear_sessions", "okta.unassign_apps"]

[apps.google]
method = "automatic"
actions = ["google.sign_out", "google.suspend"]
"#;

/// What one run of the binary printed, and its exit code.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

/// The simulated tenants, the configuration and every output so far.
struct Session {
    okta: OktaTenant,
    google: GoogleTenant,
    dir: tempfile::TempDir,
    /// Variables the binary gets besides the tenants' tokens.
    env: Vec<(String, String)>,
    outputs: Vec<String>,
}

impl Session {
    /// A session whose configuration has `top` among its top-level keys and `tables` last.
    async fn start(top: &str, tables: &str) -> Self {
        Self::start_on("store = \"sqlite://offboard.db\"", top, tables).await
    }

    /// As [`Session::start`], on the store `store` (its line in the configuration).
    async fn start_on(store: &str, top: &str, tables: &str) -> Self {
        let okta = OktaTenant::start().await;
        let google = GoogleTenant::start().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
        let config = format!(
            "{store}\npolicy = \"policy.toml\"\n\
             actor = \"it-admin@example.com\"\n{top}\n\
             [connectors.okta]\norg_url = \"{}\"\nallow_plain_http = true\n\
             api_token_env = \"CLI_TEST_OKTA_TOKEN\"\n\
             [connectors.google]\nbase_url = \"{}\"\nallow_plain_http = true\n\
             access_token_env = \"CLI_TEST_GOOGLE_TOKEN\"\n{tables}",
            okta.uri(),
            google.uri()
        );
        std::fs::write(dir.path().join("offboard.toml"), config).unwrap();
        Self {
            okta,
            google,
            dir,
            env: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("offboard.toml")
    }

    /// Runs `offboard <args>` with the tokens in its environment (off the runtime's threads:
    /// the simulators answer it meanwhile).
    async fn run(&mut self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_offboard"));
        cmd.args(args)
            .env("OFFBOARD_CONFIG", self.config())
            .env_remove("OFFBOARD_ACTOR")
            .env("CLI_TEST_OKTA_TOKEN", self.okta.token())
            .env("CLI_TEST_GOOGLE_TOKEN", self.google.token())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        let out = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.outputs.push(format!("{}\n{}", out.stdout, out.stderr));
        out
    }

    /// Plans `email`'s offboarding, runs it with the plan's digest, asserts it completed and
    /// returns the run's JSON document.
    async fn run_confirmed(&mut self, email: &str) -> Value {
        let digest = self.run(&["--json", "plan", email]).await.json()["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        let ran = self
            .run(&["--json", "run", email, "--confirm", &digest])
            .await;
        assert_eq!(ran.code, 0, "{ran:?}");
        let doc = ran.json();
        assert_eq!(doc["state"], "completed", "{doc:#}");
        doc
    }

    /// Asserts no output so far showed either tenant's token (or a variable of `env`).
    fn assert_no_secret(&self) {
        for o in &self.outputs {
            for (k, v) in &self.env {
                assert!(!o.contains(v.as_str()), "{k} was printed: {o}");
            }
            assert!(
                !o.contains(self.okta.token()),
                "the Okta token was printed: {o}"
            );
            assert!(
                !o.contains(self.google.token()),
                "the Google token was printed: {o}"
            );
        }
    }
}

/// The element of the JSON list `list` whose `key` is `value`.
fn item<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|x| x[key] == value))
        .unwrap_or_else(|| panic!("no {key} = {value} in {list:#}"))
}

fn add_ada(s: &Session) -> (String, String) {
    let github = s.okta.add_app("GitHub");
    let okta_id = s.okta.add_user(NewUser {
        apps: vec![github],
        sessions: 2,
        ..NewUser::active("ada@example.com")
    });
    let google_id = s.google.add_user(gsim::NewUser {
        sessions: 1,
        ..gsim::NewUser::active("ada@example.com")
    });
    (okta_id, google_id)
}

/// Guards the operator's loop end to end: a critical plan prints its digest and exits 2; run
/// without `--confirm` (or with another digest) exits 2 and changes nothing; run with the
/// digest offboards Ada in both tenants; status, verify, the CSV and JSON reports, audit verify
/// and a confirmed rollback report what happened (after which verify finds access left: exit
/// 3); the tokens from the environment never show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_plans_runs_verifies_reports_and_rolls_back() {
    let mut s = Session::start("", "").await;
    let (okta_id, google_id) = add_ada(&s);

    let plan = s
        .run(&["plan", "ada@example.com", "--name", "Ada Lovelace"])
        .await;
    assert_eq!(
        plan.code, 2,
        "a critical plan needs a confirmation: {plan:?}"
    );
    let digest = plan
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .unwrap_or_else(|| panic!("no digest: {plan:?}"))
        .to_owned();
    assert_eq!(digest.len(), 64);
    assert!(
        plan.stdout.contains("okta.unassign_apps"),
        "{}",
        plan.stdout
    );
    let doc = s.run(&["--json", "plan", "ada@example.com"]).await.json();
    assert_eq!(doc["digest"], digest.as_str());
    assert_eq!(doc["needs_confirmation"], true);
    assert_eq!(doc["tasks"].as_array().unwrap().len(), 5);

    let refused = s.run(&["run", "ada@example.com"]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("--confirm"), "{refused:?}");
    let wrong = s
        .run(&["run", "ada@example.com", "--confirm", &"0".repeat(64)])
        .await;
    assert_eq!(wrong.code, 2, "{wrong:?}");
    let runs = s.run(&["--json", "status"]).await.json();
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        0,
        "nothing submitted"
    );
    assert_eq!(s.okta.user(&okta_id).unwrap().status, "ACTIVE");
    assert!(!s.google.user(&google_id).unwrap().suspended);

    let ran = s
        .run(&["--json", "run", "ada@example.com", "--confirm", &digest])
        .await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let doc = ran.json();
    assert_eq!(doc["state"], "completed", "{doc:#}");
    let run = doc["run"].as_str().unwrap().to_owned();
    let okta_user = s.okta.user(&okta_id).unwrap();
    assert_eq!(okta_user.status, "SUSPENDED");
    assert_eq!((okta_user.sessions, okta_user.apps.len()), (0, 0));
    assert!(s.google.user(&google_id).unwrap().suspended);

    check_status_and_verify(&mut s, &run).await;
    check_reports(&mut s, &run).await;
    check_rollback(&mut s, &run, &okta_id).await;
    s.assert_no_secret();
}

async fn check_status_and_verify(s: &mut Session, run: &str) {
    let list = s.run(&["status"]).await;
    assert_eq!(list.code, 0);
    assert!(
        list.stdout.contains(run) && list.stdout.contains("completed"),
        "{list:?}"
    );
    let one = s.run(&["status", run]).await;
    assert!(one.stdout.contains("okta.suspend") && one.stdout.contains("google.suspend"));
    let doc = s.run(&["--json", "status", run]).await.json();
    assert_eq!(doc["actions"].as_array().unwrap().len(), 5);
    let verify = s.run(&["--json", "verify", run]).await;
    assert_eq!(verify.code, 0, "{verify:?}");
    let doc = verify.json();
    assert_eq!(doc["access_left"], false);
    let apps = doc["apps"].as_array().unwrap();
    assert!(apps.iter().all(|a| a["revoked"] == true), "{doc:#}");
    let watch = s.run(&["--json", "watch", "--once", run]).await.json();
    let mut apps: Vec<&str> = watch["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap())
        .collect();
    apps.sort_unstable();
    assert_eq!(apps, ["google", "okta"]);
    let ended: u64 = watch["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ended"].as_u64().unwrap())
        .sum();
    assert_eq!(ended, 5);
}

async fn check_reports(s: &mut Session, run: &str) {
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (
        today.to_string(),
        (today + chrono::Days::new(1)).to_string(),
    );
    let csv = s
        .run(&["report", "--from", &from, "--to", &to, "--format", "csv"])
        .await;
    assert_eq!(csv.code, 0, "{csv:?}");
    let mut lines = csv.stdout.lines();
    assert!(lines.next().unwrap().starts_with("run,person,email"));
    assert_eq!(
        lines.filter(|l| l.starts_with(run)).count(),
        5,
        "{}",
        csv.stdout
    );
    let json = s
        .run(&["report", "--from", &from, "--to", &to, "--format", "json"])
        .await;
    let doc = json.json();
    assert_eq!(doc["runs"][0]["run"], run);
    assert_eq!(doc["summary"]["completed"], 1);
    let html = s
        .run(&["report", "--from", &from, "--to", &to, "--format", "html"])
        .await;
    assert_eq!(html.code, 0, "{html:?}");
    assert!(html.stdout.contains("<!DOCTYPE html>") || html.stdout.contains("<!doctype html>"));
    assert!(
        html.stdout.contains("Audit chain: intact"),
        "{}",
        html.stdout
    );
    assert!(html.stdout.contains("ada@example.com") && html.stdout.contains("okta.suspend"));
    let audit = s.run(&["--json", "audit", "verify"]).await;
    assert_eq!(audit.code, 0, "{audit:?}");
    let doc = audit.json();
    assert!(doc["verified"].as_u64().unwrap() > 5, "{doc:#}");
    assert_eq!(doc["problem"], Value::Null);
}

async fn check_rollback(s: &mut Session, run: &str, okta_id: &str) {
    let asked = s.run(&["--json", "rollback", run]).await;
    assert_eq!(asked.code, 2, "a run with critical tasks: {asked:?}");
    let digest = asked.json()["digest"].as_str().unwrap().to_owned();
    assert_eq!(s.okta.user(okta_id).unwrap().status, "SUSPENDED");
    let done = s
        .run(&["--json", "rollback", run, "--confirm", &digest])
        .await;
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.json()["state"], "rolled_back");
    assert_eq!(s.okta.user(okta_id).unwrap().status, "ACTIVE");
    // Her Okta account is active again: verification finds access left (exit 3).
    let verify = s.run(&["--json", "verify", run]).await;
    assert_eq!(verify.code, 3, "{verify:?}");
    let doc = verify.json();
    assert_eq!(doc["access_left"], true);
    let okta = item(&doc["apps"], "app", "okta");
    assert_eq!(okta["revoked"], false, "{doc:#}");
}

/// Guards exit code 4 and clear errors: an unknown run, a person no app knows, a secret
/// written in the configuration file (refused without repeating it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runs_and_people_exit_4_and_bad_config_exits_1() {
    let mut s = Session::start("", "").await;
    add_ada(&s);
    let unknown = s
        .run(&["status", "0190b5a0-0000-7000-8000-000000000000"])
        .await;
    assert_eq!(unknown.code, 4, "{unknown:?}");
    let nobody = s.run(&["--json", "plan", "nobody@example.com"]).await;
    assert_eq!(nobody.code, 4, "{nobody:?}");
    assert_eq!(nobody.json()["error"]["kind"], "not_found");
    let not_email = s.run(&["plan", "ada"]).await;
    assert_eq!(not_email.code, 1, "{not_email:?}");

    let token = s.okta.token().to_owned();
    let config = std::fs::read_to_string(s.config()).unwrap().replace(
        "api_token_env = \"CLI_TEST_OKTA_TOKEN\"",
        &format!("api_token = \"{token}\""),
    );
    std::fs::write(s.config(), config).unwrap();
    let refused = s.run(&["status"]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("api_token_env"), "{refused:?}");
    s.assert_no_secret();
}

/// Guards `sources poll` and the holds: Okta as the source of truth; a person deactivated
/// there starts a run whose critical actions wait for a confirmation (exit 2, the digest
/// printed); `confirm` with another digest exits 2 and releases nothing, with that digest
/// carries them out; `holds` lists no held batch.
/// Guards the SCIM wiring end to end: the engine the CLI builds gets one SCIM connector per
/// `[connectors.scim.<app>]` table (its token from the environment), so a run offboards Ada's
/// Slack account in the simulated SCIM provider (deactivated, out of its group) and leaves a
/// look-alike there untouched; verify covers slack; the token never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scim_app_table_offboards_through_its_connector() {
    let slack = ScimProvider::start(ScimSettings {
        delete_deactivates: true,
        etag_supported: false,
        ..ScimSettings::default()
    })
    .await;
    let table = format!(
        "[connectors.scim.slack]\nbase_url = \"{}\"\nprofile = \"slack\"\n\
         allow_plain_http = true\nbearer_token_env = \"CLI_TEST_SLACK_TOKEN\"\n",
        slack.base_url()
    );
    let mut s = Session::start("", &table).await;
    s.env
        .push(("CLI_TEST_SLACK_TOKEN".into(), slack.token().to_owned()));
    let policy = format!(
        "{POLICY}\n[apps.slack]\nmethod = \"automatic\"\n\
         actions = [\"slack.deactivate\", \"slack.remove_groups\"]\n"
    );
    std::fs::write(s.dir.path().join("policy.toml"), policy).unwrap();
    add_ada(&s);
    let ada = slack.add_user("ada", &["ada@example.com"]);
    let lookalike = slack.add_user("ada.lovelace", &["ada.lovett@example.org"]);
    let engineering = slack.add_group("#engineering");
    slack.add_member(&engineering, &ada);
    slack.add_member(&engineering, &lookalike);

    let doc = s.run_confirmed("ada@example.com").await;
    for action in ["slack.deactivate", "slack.remove_groups"] {
        assert_eq!(
            item(&doc["actions"], "action", action)["state"],
            "completed"
        );
    }
    let u = slack.user(&ada).unwrap();
    assert!(!u.active && u.groups.is_empty(), "{u:?}");
    let other = slack.user(&lookalike).unwrap();
    assert!(other.active && other.groups.len() == 1, "{other:?}");

    let run = doc["run"].as_str().unwrap().to_owned();
    let verify = s.run(&["--json", "verify", &run]).await;
    assert_eq!(verify.code, 0, "{verify:?}");
    assert_eq!(
        item(&verify.json()["apps"], "app", "slack")["revoked"],
        true
    );
    s.assert_no_secret();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_poll_starts_a_run_that_confirm_releases() {
    let mut s = Session::start("domains = [\"example.com\"]", "[sources.okta]\n").await;
    let (okta_id, _) = add_ada(&s);
    s.okta.add_user(NewUser::active("grace@example.com"));
    let first = s.run(&["--json", "sources", "poll"]).await;
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(first.json()["started"].as_array().unwrap().len(), 0);

    s.okta.deactivate_user(&okta_id);
    let second = s.run(&["--json", "sources", "poll"]).await;
    assert_eq!(second.code, 2, "critical actions held: {second:?}");
    let doc = second.json();
    let run = doc["started"][0][1].as_str().unwrap().to_owned();
    let digest = doc["needs_confirmation"][0][1].as_str().unwrap().to_owned();

    let status = s.run(&["--json", "status", &run]).await.json();
    assert_eq!(status["confirmation_digest"], digest.as_str());
    let wrong = s.run(&["confirm", &run, &"0".repeat(64)]).await;
    assert_eq!(wrong.code, 2, "another digest: {wrong:?}");
    let still = s.run(&["--json", "status", &run]).await.json();
    assert_eq!(still["confirmation_digest"], digest.as_str(), "still held");
    let confirmed = s.run(&["--json", "confirm", &run, &digest]).await;
    assert_eq!(confirmed.code, 0, "{confirmed:?}");
    let doc = confirmed.json();
    let held = doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "held");
    assert_eq!(held.count(), 0, "{doc:#}");
    let unassign = item(&doc["actions"], "action", "okta.unassign_apps");
    assert_eq!(unassign["state"], "completed", "{doc:#}");

    let holds = s.run(&["--json", "holds"]).await;
    assert_eq!(holds.code, 0, "{holds:?}");
    assert_eq!(holds.json()["holds"], serde_json::json!([]));
    let release = s.run(&["holds", "release", "okta"]).await;
    assert_eq!(release.code, 4, "nothing held: {release:?}");
    s.assert_no_secret();
}

/// Guards exit code 5: `audit verify` passes on the trail the CLI wrote and fails once an
/// event was altered behind the store's back (append-only triggers dropped, as an attacker
/// with the file could).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_exits_5_on_a_tampered_trail() {
    use sqlx::{ConnectOptions, Connection};

    let mut s = Session::start("", "").await;
    add_ada(&s);
    // A confirmation quoting another digest is refused and audited (nothing else is stored).
    let refused = s
        .run(&["run", "ada@example.com", "--confirm", &"0".repeat(64)])
        .await;
    assert_eq!(refused.code, 2, "{refused:?}");
    let intact = s.run(&["audit", "verify"]).await;
    assert_eq!(intact.code, 0, "{intact:?}");
    assert!(intact.stdout.contains("verifies: 1 events"), "{intact:?}");

    let path = s.dir.path().join("offboard.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();

    // Signed checkpoints: one of the real head verifies with its public key; one whose hash
    // the chain does not hold (as after a re-sealed chain) is exit 5 although the chain's own
    // hashes verify; without the key it is exit 5 too (unknown key id).
    let (seq, hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM offboard_audit ORDER BY seq DESC LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let signer = offboard::CheckpointSigner::from_seed([7; 32]);
    let other = offboard::CheckpointSigner::from_seed([8; 32]);
    let write = |name: &str, text: String| {
        let p = s.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let key = write("key.pem", signer.public_key().to_pem().unwrap());
    let other_key = write("other.pem", other.public_key().to_pem().unwrap());
    let now = chrono::Utc::now();
    let good = signer.sign(seq as u64, &hash, now).to_json().unwrap();
    let good = write("good.jsonl", format!("{good}\n"));
    let forged = signer
        .sign(seq as u64, &"0".repeat(64), now)
        .to_json()
        .unwrap();
    let forged = write("forged.jsonl", format!("{forged}\n"));
    let verify = |file: &str, key: &str| {
        ["audit", "verify", "--checkpoints", file, "--key", key].map(str::to_owned)
    };
    let ok = s
        .run(&verify(&good, &key).each_ref().map(String::as_str))
        .await;
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.contains("the chain holds every one"), "{ok:?}");
    let bad = s
        .run(&verify(&forged, &key).each_ref().map(String::as_str))
        .await;
    assert_eq!(bad.code, 5, "{bad:?}");
    assert!(bad.stdout.contains("CHECKPOINTS DO NOT MATCH"), "{bad:?}");
    let unknown = s
        .run(&verify(&good, &other_key).each_ref().map(String::as_str))
        .await;
    assert_eq!(unknown.code, 5, "{unknown:?}");

    for sql in [
        "DROP TRIGGER IF EXISTS offboard_audit_no_update",
        "UPDATE offboard_audit SET body = replace(body, 'it-admin', 'mallory') WHERE seq = 1",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    let broken = s.run(&["--json", "audit", "verify"]).await;
    assert_eq!(broken.code, 5, "{broken:?}");
    assert_eq!(broken.json()["verified"], 0);
    s.assert_no_secret();
}

/// Guards `evidence export` and `evidence verify` (issue 23 item 4): a completed run's bundle,
/// signed with the key from the environment and anchored to a signed checkpoint, verifies with
/// the public key alone (no configuration, no database: exit 0); a flipped byte, a key not
/// given and a bundle signed by another key are exit 5; export without a key is exit 1 naming
/// the variable, never a key; the key never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_export_and_verify_exit_5_on_a_tampered_bundle() {
    use base64::Engine as _;
    use sqlx::ConnectOptions;

    let mut s = Session::start("", "").await;
    add_ada(&s);
    let doc = s.run_confirmed("ada@example.com").await;
    let run = doc["run"].as_str().unwrap().to_owned();

    let seed = [21u8; 32];
    let signer = offboard::CheckpointSigner::from_seed(seed);
    let dir = s.dir.path().to_path_buf();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_owned()
    };
    // The engine's checkpoint of the head, as its sink writes it.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(s.dir.path().join("offboard.db"))
        .connect()
        .await
        .unwrap();
    let (seq, hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM offboard_audit ORDER BY seq DESC LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let checkpoint = signer
        .sign(seq as u64, &hash, chrono::Utc::now())
        .to_json()
        .unwrap();
    let checkpoints = write("checkpoints.jsonl", format!("{checkpoint}\n").as_bytes());
    let key = write(
        "evidence.pem",
        signer.public_key().to_pem().unwrap().as_bytes(),
    );
    let other = offboard::CheckpointSigner::from_seed([22; 32]);
    let other_key = write("other.pem", other.public_key().to_pem().unwrap().as_bytes());
    let bundle = s.dir.path().join("bundle.json");
    let bundle = bundle.to_str().unwrap().to_owned();

    let export = [
        "evidence",
        "export",
        &run,
        "--out",
        &bundle,
        "--checkpoints",
        &checkpoints,
    ];
    let missing = s.run(&export).await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing.stderr.contains("OFFBOARD_EVIDENCE_KEY"),
        "{missing:?}"
    );
    s.env.push((
        "OFFBOARD_EVIDENCE_KEY".into(),
        base64::engine::general_purpose::STANDARD.encode(seed),
    ));
    let exported = s.run(&export).await;
    assert_eq!(exported.code, 0, "{exported:?}");
    assert!(
        exported
            .stdout
            .contains("anchored to the signed checkpoint"),
        "{exported:?}"
    );

    // An auditor: the file and the public key, no configuration.
    let verify = |file: &str, key: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(["--json", "evidence", "verify", file, "--key", key])
            .env("OFFBOARD_CONFIG", "/nonexistent/offboard.toml")
            .output()
            .unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let ok = verify(&bundle, &key);
    assert_eq!(ok.code, 0, "{ok:?}");
    let doc = ok.json();
    assert_eq!(doc["verified"], true);
    assert_eq!(doc["bundle"]["run"], run.as_str());
    assert_eq!(doc["bundle"]["anchor"]["status"], "anchored");
    assert_eq!(doc["bundle"]["anchor"]["checkpoint_seq"], seq);
    assert_eq!(doc["bundle"]["summary"]["state"], "completed");

    let bytes = std::fs::read(&bundle).unwrap();
    let mut flipped = bytes.clone();
    let at = bytes.len() / 2;
    flipped[at] ^= 0x04;
    let flipped = write("flipped.json", &flipped);
    let bad = verify(&flipped, &key);
    assert_eq!(bad.code, 5, "{bad:?}");
    assert_eq!(bad.json()["verified"], false);
    let unknown = verify(&bundle, &other_key);
    assert_eq!(unknown.code, 5, "{unknown:?}");
    assert_eq!(unknown.json()["problem"]["problem"], "unknown_key");
    let mut forged: offboard::evidence::EvidenceBundle = serde_json::from_slice(&bytes).unwrap();
    forged.sign(&other).unwrap();
    let forged = write("forged.json", &forged.to_bytes().unwrap());
    let human = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["evidence", "verify", &forged, "--key", &key])
        .env("OFFBOARD_CONFIG", "/nonexistent/offboard.toml")
        .output()
        .unwrap();
    assert_eq!(human.status.code(), Some(5), "{human:?}");
    assert!(String::from_utf8_lossy(&human.stdout).contains("DOES NOT VERIFY"));
    s.assert_no_secret();
}

/// Guards `watch` on an open run: `run --hold-critical` submits a critical plan without a
/// confirmation (everything else runs, the critical task is held and its digest shown), and
/// `watch` draws it until its timeout, reporting the held task; `cancel` ends the run with
/// the held task never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_a_held_run_until_its_timeout() {
    let mut s = Session::start("", "").await;
    let (okta_id, _) = add_ada(&s);
    let ran = s
        .run(&["--json", "run", "ada@example.com", "--hold-critical"])
        .await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let doc = ran.json();
    assert_eq!(doc["state"], "awaiting_confirmation", "{doc:#}");
    assert!(doc["confirmation_digest"].is_string(), "{doc:#}");
    assert_eq!(s.okta.user(&okta_id).unwrap().status, "SUSPENDED");
    assert_eq!(
        s.okta.user(&okta_id).unwrap().apps.len(),
        1,
        "held: not unassigned"
    );

    let watch = s
        .run(&[
            "--json",
            "watch",
            "--timeout-secs",
            "1",
            "--interval-ms",
            "100",
        ])
        .await;
    assert_eq!(watch.code, 0, "{watch:?}");
    let doc = watch.json();
    let okta = item(&doc["apps"], "app", "okta");
    assert_eq!(
        (okta["held"].as_u64(), okta["ended"].as_u64()),
        (Some(1), Some(2)),
        "{doc:#}"
    );
    assert_eq!(okta["run_state"], "awaiting_confirmation");
    let run = doc["apps"][0]["run"].as_str().unwrap().to_owned();
    let cancelled = s.run(&["--json", "cancel", &run]).await;
    assert_eq!(cancelled.code, 0, "{cancelled:?}");
    assert_eq!(cancelled.json()["state"], "cancelled");
    assert_eq!(
        s.okta.user(&okta_id).unwrap().apps.len(),
        1,
        "cancelled: never unassigned"
    );
    s.assert_no_secret();
}

/// Guards the PostgreSQL store: a URL without its password, the password from the variable
/// `store_password_env` names (never printed); a run and the audit check work there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_postgres_with_the_password_from_the_environment() {
    let db = ScratchDatabase::create(&ScratchDatabase::test_server(), "offboard_cli")
        .await
        .unwrap();
    let mut url = url::Url::parse(db.url()).unwrap();
    // The test server's password, or (a server trusting loopback asks for none) one it ignores.
    let password = match url.password() {
        Some(p) => p.to_owned(),
        None => format!("cli-test-pg-{:016x}", rand::random::<u64>()),
    };
    url.set_password(None).unwrap();
    let store = format!("store = \"{url}\"\nstore_password_env = \"CLI_TEST_PG_PASSWORD\"");
    let mut s = Session::start_on(&store, "", "").await;
    assert!(
        !password.is_empty(),
        "the test server's URL carries a password"
    );
    s.env.push(("CLI_TEST_PG_PASSWORD".into(), password));
    let (okta_id, _) = add_ada(&s);
    s.run_confirmed("ada@example.com").await;
    assert_eq!(s.okta.user(&okta_id).unwrap().status, "SUSPENDED");
    let audit = s.run(&["--json", "audit", "verify"]).await;
    assert_eq!(audit.code, 0, "{audit:?}");
    s.assert_no_secret();
    db.drop_database().await;
}
