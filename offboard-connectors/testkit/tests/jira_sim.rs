//! The simulated Jira site: official routes only, strict JQL, auth, throttling, faults,
//! workflow and signed webhooks.

use std::time::Duration;

use offboard_testkit::sim::jira::{DEFAULT_EMAIL, DEFAULT_TOKEN, JiraSim, ROUTES, sign};
use serde_json::{Value, json};

fn load_spec(name: &str) -> Value {
    offboard_testkit::sim::specs::json(&format!("jira/{name}"))
}

/// Whether `path` (concrete) matches the spec template `template` (`{x}` = one segment).
fn matches_template(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

#[test]
fn jira_every_route_exists_in_the_official_spec() {
    for file in ["jira-platform-v3.offboarding.json"] {
        let spec = load_spec(file);
        for (method, path) in ROUTES {
            let op = &spec["paths"][*path][method.to_ascii_lowercase()];
            assert!(op.is_object(), "{method} {path} is not in {file}");
            assert!(
                op.get("deprecated") != Some(&Value::Bool(true)),
                "{method} {path} is deprecated in {file}"
            );
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn authed(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb.basic_auth(DEFAULT_EMAIL, Some(DEFAULT_TOKEN))
}

fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]})
}

async fn create(sim: &JiraSim, label: &str) -> String {
    let r = authed(client().post(format!("{}/rest/api/3/issue", sim.uri())))
        .json(&json!({"fields": {
            "project": {"key": "IT"}, "issuetype": {"id": "10001"},
            "summary": "Remove access", "description": adf("please"), "labels": [label],
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["self"]
            .as_str()
            .unwrap()
            .ends_with(body["id"].as_str().unwrap())
    );
    body["key"].as_str().unwrap().to_string()
}

async fn search(sim: &JiraSim, jql: &str) -> (u16, Value) {
    let r = authed(client().post(format!("{}/rest/api/3/search/jql", sim.uri())))
        .json(&json!({"jql": jql, "fields": ["status", "assignee"], "maxResults": 50}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn jira_requests_need_the_configured_basic_auth() {
    let sim = JiraSim::start().await;
    let url = format!("{}/rest/api/3/issue/IT-1", sim.uri());
    let none = client().get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = client()
        .get(&url)
        .basic_auth(DEFAULT_EMAIL, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = authed(client().get(&url)).send().await.unwrap();
    assert_eq!(ok.status(), 404, "authenticated, but no such issue");
    for r in sim.requests() {
        for (k, v) in &r.headers {
            assert!(!v.contains(DEFAULT_TOKEN), "{k} leaks the token");
            if k == "authorization" {
                assert_eq!(v, "[REDACTED]");
            }
        }
    }
}

#[tokio::test]
async fn jira_create_search_transition_assign() {
    let sim = JiraSim::builder()
        .user("acc-sam", "Sam Admin", "sam@example.com")
        .start()
        .await;
    let key = create(&sim, "offb-a").await;
    assert_eq!(key, "IT-1");
    create(&sim, "offb-b").await;

    let (status, body) = search(&sim, r#"project = "IT" AND labels = "offb-a""#).await;
    assert_eq!(status, 200);
    assert_eq!(body["issues"].as_array().unwrap().len(), 1);
    assert_eq!(body["issues"][0]["key"], "IT-1");
    assert_eq!(body["issues"][0]["fields"]["status"]["name"], "To Do");
    assert_eq!(body["isLast"], true);
    let (_, both) = search(&sim, "key in (IT-1, \"IT-2\")").await;
    assert_eq!(both["issues"].as_array().unwrap().len(), 2);

    // GET with the fields asked for only.
    let r = authed(client().get(format!(
        "{}/rest/api/3/issue/IT-1?fields=status,assignee",
        sim.uri()
    )))
    .send()
    .await
    .unwrap();
    let issue: Value = r.json().await.unwrap();
    let fields = issue["fields"].as_object().unwrap();
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert_eq!(issue["fields"]["status"]["statusCategory"]["key"], "new");
    assert!(issue["fields"]["assignee"].is_null());

    // Transitions: listed from the current status, then performed.
    let r = authed(client().get(format!("{}/rest/api/3/issue/IT-1/transitions", sim.uri())))
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    let done = t["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"]["name"] == "Done")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = authed(client().post(format!("{}/rest/api/3/issue/IT-1/transitions", sim.uri())))
        .json(&json!({"transition": {"id": done}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(sim.issue("IT-1").unwrap().status, "Done");
    // The same transition is no longer available.
    let r = authed(client().post(format!("{}/rest/api/3/issue/IT-1/transitions", sim.uri())))
        .json(&json!({"transition": {"id": done}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = authed(client().put(format!("{}/rest/api/3/issue/IT-1/assignee", sim.uri())))
        .json(&json!({"accountId": "acc-sam"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        sim.issue("IT-1").unwrap().assignee.as_deref(),
        Some("acc-sam")
    );
    let r = authed(client().put(format!("{}/rest/api/3/issue/IT-1/assignee", sim.uri())))
        .json(&json!({"accountId": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    sim.reopen("IT-1");
    let i = sim.issue("IT-1").unwrap();
    assert_eq!((i.status.as_str(), i.reopened), ("To Do", 1));

    // Every request the client made matches a served route of the official spec.
    let spec = load_spec("jira-platform-v3.offboarding.json");
    for r in sim.requests() {
        let found = spec["paths"].as_object().unwrap().iter().any(|(t, ops)| {
            matches_template(t, &r.path) && ops[r.method.to_ascii_lowercase()].is_object()
        });
        assert!(
            found,
            "{} {} is not an official operation",
            r.method, r.path
        );
    }
}

#[tokio::test]
async fn jira_create_validates_like_jira() {
    let sim = JiraSim::start().await;
    let r = authed(client().post(format!("{}/rest/api/3/issue", sim.uri())))
        .json(&json!({"fields": {
            "project": {"key": "NOPE"}, "issuetype": {"id": "10001"},
            "summary": "x", "description": "plain text is v2 only", "labels": ["has space"],
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    for field in ["project", "description", "labels"] {
        assert!(body["errors"][field].is_string(), "{field}: {body}");
    }
    assert_eq!(sim.issues_created(), 0);
}

#[tokio::test]
async fn jira_jql_is_strict() {
    let sim = JiraSim::start().await;
    create(&sim, "offb-a").await;
    create(&sim, "offb-b").await;
    for bad in [
        "labels = \"offb-a\" OR labels = \"offb-b\"",
        "labels is not EMPTY",
        "order by key",
        "labels = \"unterminated",
        "text ~ \"x\"",
    ] {
        let (status, body) = search(&sim, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["errorMessages"][0].is_string());
    }
    // Escaped quotes stay inside the literal: no match, no widening.
    let (status, body) = search(&sim, r#"labels = "offb-a\" OR labels = \"offb-b""#).await;
    assert_eq!(status, 200);
    assert!(body["issues"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn jira_search_pages_with_tokens() {
    let sim = JiraSim::start().await;
    for _ in 0..3 {
        create(&sim, "same").await;
    }
    let r = authed(client().get(format!("{}/rest/api/3/search/jql", sim.uri())))
        .query(&[("jql", "labels = same"), ("maxResults", "2")])
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["issues"].as_array().unwrap().len(), 2);
    assert_eq!(page["isLast"], false);
    assert!(
        page["issues"][0]["fields"].as_object().unwrap().is_empty(),
        "default fields: id only"
    );
    let token = page["nextPageToken"].as_str().unwrap();
    let r = authed(client().get(format!("{}/rest/api/3/search/jql", sim.uri())))
        .query(&[
            ("jql", "labels = same"),
            ("maxResults", "2"),
            ("nextPageToken", token),
        ])
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["issues"].as_array().unwrap().len(), 1);
    assert_eq!(page["isLast"], true);
}

#[tokio::test]
async fn jira_throttles_and_fails_on_demand() {
    let sim = JiraSim::start().await;
    let url = format!("{}/rest/api/3/issue/IT-1", sim.uri());
    sim.throttle_next(1, Duration::from_secs(7));
    let r = authed(client().get(&url)).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(r.headers()["ratelimit-reason"], "jira-burst-based");
    sim.fail_next(&[503]);
    assert_eq!(
        authed(client().get(&url)).send().await.unwrap().status(),
        503
    );
    assert_eq!(
        authed(client().get(&url)).send().await.unwrap().status(),
        404
    );

    sim.rate_budget(2, Duration::from_secs(60));
    assert_eq!(
        authed(client().get(&url)).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        authed(client().get(&url)).send().await.unwrap().status(),
        404
    );
    let r = authed(client().get(&url)).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let secs: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&secs));
    sim.clear_faults();

    sim.fail_share(500, 42);
    let mut failed = 0;
    for _ in 0..40 {
        if authed(client().get(&url)).send().await.unwrap().status() == 503 {
            failed += 1;
        }
    }
    assert!((5..=35).contains(&failed), "about half fail: {failed}");
    sim.clear_faults();

    sim.latency(Duration::from_millis(150));
    let t = std::time::Instant::now();
    authed(client().get(&url)).send().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    sim.clear_faults();

    // A lost create: the issue exists, the client saw a 504.
    sim.lose_next_create_responses(1);
    let r = authed(client().post(format!("{}/rest/api/3/issue", sim.uri())))
        .json(&json!({"fields": {"project": {"key": "IT"}, "issuetype": {"id": "10001"}, "summary": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(sim.issues_created(), 1);
}

#[tokio::test]
async fn jira_webhooks_are_signed_and_redeliverable() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/jira"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let sim = JiraSim::builder()
        .user("acc-sam", "Sam Admin", "sam@example.com")
        .start()
        .await;
    sim.register_webhook(format!("{}/hooks/jira", receiver.uri()), Some("whsec"));
    let key = sim.create_issue("Remove access", &["offb-x"]);
    sim.assign(&key, "sam@example.com");
    sim.transition(&key, "Done");
    let sent = sim.deliver_webhooks().await;
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|d| d.status == 204));
    let done: Value = serde_json::from_str(&sent[1].body).unwrap();
    assert_eq!(done["webhookEvent"], "jira:issue_updated");
    assert!(done["timestamp"].as_i64().unwrap() > 0);
    assert_eq!(done["issue"]["key"], key.as_str());
    assert_eq!(done["issue"]["fields"]["status"]["name"], "Done");
    assert_eq!(done["issue"]["fields"]["assignee"]["accountId"], "acc-sam");
    assert_eq!(done["changelog"]["items"][0]["field"], "status");
    assert_eq!(done["changelog"]["items"][0]["toString"], "Done");
    assert_eq!(
        sent[1].signature.as_deref(),
        Some(sign("whsec", sent[1].body.as_bytes()).as_str())
    );
    let again = sim.redeliver(&sent[1].identifier).await;
    assert_eq!(again.body, sent[1].body);

    let got = receiver.received_requests().await.unwrap();
    assert_eq!(got.len(), 3);
    let last = &got[2];
    assert_eq!(
        last.headers["x-atlassian-webhook-identifier"],
        sent[1].identifier.as_str()
    );
    assert_eq!(last.headers["x-atlassian-webhook-retry"], "1");
    assert_eq!(
        last.headers["x-hub-signature"].to_str().unwrap(),
        sign("whsec", &last.body)
    );
}

/// Jira Cloud's search index lags behind writes; `reconcileIssues` (the spec's "strong
/// consistency issue ids to be reconciled with search results", at most 50) makes given ids
/// visible, and `GET /issue/{key}` always sees a new issue.
#[tokio::test]
async fn jira_search_lags_behind_creation_unless_reconciled() {
    let sim = JiraSim::start().await;
    sim.search_lag(Duration::from_secs(3600));
    let key = create(&sim, "offb-lag").await;
    let id: u64 = sim.issue(&key).unwrap().id.parse().unwrap();
    let (status, body) = search(&sim, r#"labels = "offb-lag""#).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["issues"].as_array().unwrap().len(),
        0,
        "not indexed yet"
    );
    let r = authed(client().get(format!("{}/rest/api/3/issue/{key}", sim.uri())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "reading by key is consistent");
    let reconciled = |ids: Value| {
        authed(client().post(format!("{}/rest/api/3/search/jql", sim.uri())))
            .json(&json!({"jql": "labels = \"offb-lag\"", "fields": ["labels"], "reconcileIssues": ids}))
            .send()
    };
    let r = reconciled(json!([id])).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["issues"][0]["key"], key.as_str());
    let too_many: Vec<u64> = (0..51).collect();
    assert_eq!(reconciled(json!(too_many)).await.unwrap().status(), 400);
    sim.reindex();
    let (_, body) = search(&sim, r#"labels = "offb-lag""#).await;
    assert_eq!(body["issues"].as_array().unwrap().len(), 1, "indexed now");
}

#[tokio::test]
async fn jira_orders_by_key_descending() {
    let sim = JiraSim::start().await;
    for l in ["a", "b", "c"] {
        create(&sim, l).await;
    }
    let (status, body) = search(&sim, "project = IT ORDER BY key DESC").await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = body["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["IT-3", "IT-2", "IT-1"]);
    assert_eq!(search(&sim, "ORDER BY key DESC").await.0, 400, "unbounded");
}

/// A done-category status carries a resolution; "Won't Do" closes an issue without the work.
#[tokio::test]
async fn jira_resolutions_come_with_done_category_statuses() {
    let sim = JiraSim::start().await;
    let key = create(&sim, "offb-r").await;
    let transition = |body: Value| {
        authed(client().post(format!("{}/rest/api/3/issue/{key}/transitions", sim.uri())))
            .json(&body)
            .send()
    };
    // A resolution on a move into a status that is not done: refused, nothing changes.
    let r = transition(
        json!({"transition": {"id": "21"}, "fields": {"resolution": {"name": "Won't Do"}}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(sim.issue(&key).unwrap().status, "To Do");
    // An unknown resolution: refused.
    let r =
        transition(json!({"transition": {"id": "61"}, "fields": {"resolution": {"name": "Nope"}}}))
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    // Closed (category done) as Won't Do.
    let r = transition(
        json!({"transition": {"id": "61"}, "fields": {"resolution": {"name": "Won't Do"}}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    let issue = sim.issue(&key).unwrap();
    assert_eq!(
        (issue.status.as_str(), issue.resolution.as_deref()),
        ("Closed", Some("Won't Do"))
    );
    let r = authed(client().get(format!(
        "{}/rest/api/3/issue/{key}?fields=status,resolution",
        sim.uri()
    )))
    .send()
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["fields"]["status"]["statusCategory"]["key"], "done");
    assert_eq!(body["fields"]["resolution"]["name"], "Won't Do");
    // Reopened: no resolution.
    sim.reopen(&key);
    assert_eq!(sim.issue(&key).unwrap().resolution, None);
    sim.transition(&key, "Done");
    assert_eq!(sim.issue(&key).unwrap().resolution.as_deref(), Some("Done"));
}
