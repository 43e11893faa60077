//! The shared Graph client against wiremock: exact requests (paths, queries, bodies, the
//! bearer token), paging, Graph error mapping, in-process 429 handling and `$batch`
//! (chunks of 20, per-item status, per-item 429 re-sent alone, `dependsOn`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offboard_core::{ErrorKind, LookupRequest, Person, Secret};
use offboard_http::graph::{BatchItem, GraphRetry, lookup_user, odata_string, vendor_code};
use offboard_http::{GraphClient, GraphRequest, HttpClient, StaticToken};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "eyJ.graph-token-do-not-print";

fn graph(server: &MockServer) -> GraphClient {
    let http = HttpClient::builder(format!("{}/v1.0", server.uri()))
        .allow_plain_http(true)
        .token_provider(StaticToken::bearer(Secret::new(TOKEN)))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    GraphClient::new(http)
}

fn graph_error(code: &str) -> Value {
    json!({"error": {"code": code, "message": format!("{code} (test)"), "innerError": {}}})
}

#[tokio::test]
async fn requests_are_relative_to_the_version_root_with_bearer_and_escaped_filters() {
    let server = MockServer::start().await;
    let filter = format!(
        "userPrincipalName eq {} or mail eq {}",
        odata_string("o'neil@x.com").unwrap(),
        odata_string("o'neil@x.com").unwrap()
    );
    assert_eq!(
        filter,
        "userPrincipalName eq 'o''neil@x.com' or mail eq 'o''neil@x.com'"
    );
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .and(query_param("$filter", filter.as_str()))
        .and(query_param("$select", "id,accountEnabled"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{"id": "u1"}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v1.0/users/u%2F1"))
        .and(body_json(json!({"accountEnabled": false})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1.0/groups/g1/members/u1/$ref"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(graph_error("Request_ResourceNotFound")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let g = graph(&server);
    let users: Vec<Value> = g
        .list(
            &GraphRequest::get(["users"])
                .query("$filter", filter.clone())
                .query("$select", "id,accountEnabled"),
        )
        .await
        .unwrap();
    assert_eq!(users, vec![json!({"id": "u1"})]);
    g.send(&GraphRequest::patch(
        ["users", "u/1"],
        json!({"accountEnabled": false}),
    ))
    .await
    .unwrap();
    let changed = g
        .send_gone_ok(&GraphRequest::delete([
            "groups", "g1", "members", "u1", "$ref",
        ]))
        .await
        .unwrap();
    assert!(!changed, "a 404 DELETE means already gone");
    let e = g
        .send(&GraphRequest::get(["users", ".."]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn next_links_are_followed_below_the_base_only() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/v1.0/users/u1/memberOf?$top=1&$skiptoken=p2",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/v1.0/users/u1/memberOf"))
        .and(query_param("$skiptoken", "p2"))
        .and(header("consistencylevel", "eventual"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{"id": "g2"}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/u1/memberOf"))
        .and(query_param("$top", "1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [{"id": "g1"}], "@odata.nextLink": next})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let g = graph(&server);
    let items: Vec<Value> = g
        .list(
            &GraphRequest::get(["users", "u1", "memberOf"])
                .query("$top", "1")
                .header("ConsistencyLevel", "eventual"),
        )
        .await
        .unwrap();
    assert_eq!(items, vec![json!({"id": "g1"}), json!({"id": "g2"})]);

    Mock::given(method("GET"))
        .and(path("/v1.0/users/u2/memberOf"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [], "@odata.nextLink": "https://evil.example/v1.0/users?x=1"}),
        ))
        .mount(&server)
        .await;
    let e = g
        .list::<Value>(&GraphRequest::get(["users", "u2", "memberOf"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Vendor);
    assert!(e.to_string().contains("outside"), "{e}");
}

#[tokio::test]
async fn graph_errors_map_codes_and_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/gone"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(graph_error("Request_ResourceNotFound")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/denied"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(graph_error("Authorization_RequestDenied")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/busy"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "120")
                .set_body_json(graph_error("TooManyRequests")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/down"))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("retry-after", "7")
                .set_body_json(graph_error("serviceNotAvailable")),
        )
        .mount(&server)
        .await;
    let g = graph(&server);
    let e = g
        .send(&GraphRequest::get(["users", "gone"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(vendor_code(&e), Some("Request_ResourceNotFound"));
    assert!(
        g.get_opt::<Value>(&GraphRequest::get(["users", "gone"]))
            .await
            .unwrap()
            .is_none()
    );
    let e = g
        .send(&GraphRequest::get(["users", "denied"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    // 120 s is beyond the in-process wait: returned with its hint, sent once.
    let e = g
        .send(&GraphRequest::get(["users", "busy"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    let e = g
        .send(&GraphRequest::get(["users", "down"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert!(!e.to_string().contains(TOKEN));
    let busy = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v1.0/users/busy")
        .count();
    assert_eq!(busy, 1);
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out_in_process() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/users/u1/revokeSignInSessions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(graph_error("TooManyRequests")),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/users/u1/revokeSignInSessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": true})))
        .mount(&server)
        .await;
    let g = graph(&server);
    let started = Instant::now();
    let v: Value = g
        .json(&GraphRequest::post(
            ["users", "u1", "revokeSignInSessions"],
            json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(v["value"], true);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    // Without in-process retry the 429 comes back at once.
    Mock::given(method("POST"))
        .and(path("/v1.0/users/u2/revokeSignInSessions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(graph_error("TooManyRequests")),
        )
        .mount(&server)
        .await;
    let e = graph(&server)
        .with_retry(GraphRetry::none())
        .send(&GraphRequest::post(
            ["users", "u2", "revokeSignInSessions"],
            json!({}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
}

/// A `$batch` endpoint: answers each item 204 (a GET 200 echoing its url), except items whose
/// id is in `throttle` (429 `Retry-After: 1` the first `n` times) or `fail` (404). Items that
/// depend on a non-2xx item get 424. Records every batch body.
#[derive(Clone, Default)]
struct BatchEndpoint {
    throttle: Arc<Mutex<BTreeMap<String, u32>>>,
    fail: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Respond for BatchEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        self.bodies.lock().unwrap().push(body.clone());
        let mut statuses: BTreeMap<String, u16> = BTreeMap::new();
        let mut out = Vec::new();
        for item in body["requests"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap().to_owned();
            let dep_failed = item["dependsOn"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|d| statuses.get(d.as_str().unwrap()).is_none_or(|s| *s >= 300))
            });
            let mut throttle = self.throttle.lock().unwrap();
            let reply = if dep_failed {
                json!({"id": id, "status": 424, "body": graph_error("FailedDependency")})
            } else if let Some(n) = throttle.get_mut(&id).filter(|n| **n > 0) {
                *n -= 1;
                json!({"id": id, "status": 429, "headers": {"Retry-After": "1"}, "body": graph_error("TooManyRequests")})
            } else if self.fail.lock().unwrap().contains(&id) {
                json!({"id": id, "status": 404, "body": graph_error("Request_ResourceNotFound")})
            } else if item["method"] == "GET" {
                json!({"id": id, "status": 200, "body": {"url": item["url"]}})
            } else {
                json!({"id": id, "status": 204})
            };
            statuses.insert(id, reply["status"].as_u64().unwrap() as u16);
            out.push(reply);
        }
        // Graph answers in any order.
        out.reverse();
        ResponseTemplate::new(200).set_body_json(json!({"responses": out}))
    }
}

async fn batch_server() -> (MockServer, BatchEndpoint) {
    let server = MockServer::start().await;
    let endpoint = BatchEndpoint::default();
    Mock::given(method("POST"))
        .and(path("/v1.0/$batch"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(endpoint.clone())
        .mount(&server)
        .await;
    (server, endpoint)
}

#[tokio::test]
async fn batches_split_at_twenty_and_carry_exact_items() {
    let (server, endpoint) = batch_server().await;
    let items: Vec<BatchItem> = (0..45)
        .map(|i| {
            BatchItem::new(
                i.to_string(),
                GraphRequest::delete(["groups", &format!("g{i}"), "members", "u 1", "$ref"]),
            )
        })
        .chain([BatchItem::new(
            "patch",
            GraphRequest::patch(["users", "u1"], json!({"accountEnabled": false})),
        )])
        .chain([BatchItem::new(
            "get",
            GraphRequest::get(["users", "u1"]).query("$select", "id,accountEnabled"),
        )])
        .collect();
    let replies = graph(&server).batch(items).await.unwrap();
    assert_eq!(replies.len(), 47);
    assert_eq!(replies[0].id, "0");
    assert_eq!(replies[46].id, "get");
    assert!(replies.iter().all(|r| r.is_success() && r.attempts == 1));
    assert_eq!(
        replies[46].result().unwrap()["url"],
        "/users/u1?%24select=id%2CaccountEnabled"
    );
    let bodies = endpoint.bodies.lock().unwrap().clone();
    let sizes: Vec<usize> = bodies
        .iter()
        .map(|b| b["requests"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![20, 20, 7]);
    assert_eq!(
        bodies[0]["requests"][3],
        json!({"id": "3", "method": "DELETE", "url": "/groups/g3/members/u%201/$ref"})
    );
    assert_eq!(
        bodies[2]["requests"][5],
        json!({
            "id": "patch", "method": "PATCH", "url": "/users/u1",
            "body": {"accountEnabled": false},
            "headers": {"Content-Type": "application/json"}
        })
    );
}

#[tokio::test]
async fn only_throttled_items_are_resent_after_their_retry_after() {
    let (server, endpoint) = batch_server().await;
    endpoint.throttle.lock().unwrap().insert("b".into(), 1);
    endpoint.throttle.lock().unwrap().insert("d".into(), 2);
    endpoint.fail.lock().unwrap().push("c".into());
    let items = ["a", "b", "c", "d"]
        .into_iter()
        .map(|id| BatchItem::new(id, GraphRequest::delete(["oauth2PermissionGrants", id])))
        .collect();
    let started = Instant::now();
    let replies = graph(&server).batch(items).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    let status: Vec<(String, u16, u32)> = replies
        .iter()
        .map(|r| (r.id.clone(), r.status, r.attempts))
        .collect();
    assert_eq!(
        status,
        vec![
            ("a".into(), 204, 1),
            ("b".into(), 204, 2),
            ("c".into(), 404, 1),
            ("d".into(), 204, 3),
        ]
    );
    assert!(!replies[2].deleted().unwrap(), "404 = already gone");
    let sent: Vec<Vec<String>> = endpoint
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| {
            b["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(
        sent,
        vec![vec!["a", "b", "c", "d"], vec!["b", "d"], vec!["d"]]
    );

    // Past the attempts the 429 is the item's answer, with its hint.
    endpoint.throttle.lock().unwrap().insert("e".into(), 10);
    let replies = graph(&server)
        .with_retry(GraphRetry::default().with_max_attempts(2))
        .batch(vec![BatchItem::new(
            "e",
            GraphRequest::delete(["oauth2PermissionGrants", "e"]),
        )])
        .await
        .unwrap();
    assert_eq!((replies[0].status, replies[0].attempts), (429, 2));
    let e = replies[0].result().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
}

#[tokio::test]
async fn depends_on_is_sent_within_a_call_and_enforced_across_calls() {
    let (server, endpoint) = batch_server().await;
    endpoint.throttle.lock().unwrap().insert("first".into(), 1);
    endpoint.fail.lock().unwrap().push("f19".into());
    let mut items: Vec<BatchItem> = vec![
        BatchItem::new("first", GraphRequest::delete(["users", "u1"])),
        BatchItem::new(
            "second",
            GraphRequest::post(["users", "u1", "revokeSignInSessions"], json!({})),
        )
        .depends_on("first"),
    ];
    for i in 2..20 {
        items.push(BatchItem::new(
            format!("f{i}"),
            GraphRequest::delete(["x", &i.to_string()]),
        ));
    }
    // In the next chunk, depending on a failed item of the first chunk: not sent.
    items.push(BatchItem::new("late", GraphRequest::delete(["y"])).depends_on("f19"));
    items.push(BatchItem::new("ok", GraphRequest::delete(["z"])).depends_on("f2"));
    let replies = graph(&server).batch(items).await.unwrap();
    let by_id: BTreeMap<&str, (u16, u32)> = replies
        .iter()
        .map(|r| (r.id.as_str(), (r.status, r.attempts)))
        .collect();
    assert_eq!(by_id["first"], (204, 2));
    assert_eq!(
        by_id["second"],
        (204, 2),
        "re-sent with the item it waits for"
    );
    assert_eq!(by_id["f19"], (404, 1));
    assert_eq!(by_id["late"], (424, 0));
    assert_eq!(by_id["ok"], (204, 1));
    let e = replies
        .iter()
        .find(|r| r.id == "late")
        .unwrap()
        .result()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let bodies = endpoint.bodies.lock().unwrap().clone();
    assert_eq!(bodies[0]["requests"][1]["dependsOn"], json!(["first"]));
    // The retry round carries both, the dependency still declared.
    assert_eq!(bodies[1]["requests"].as_array().unwrap().len(), 2);
    assert_eq!(bodies[1]["requests"][1]["dependsOn"], json!(["first"]));
    // The last call holds only "ok", without a dependsOn on an item of another call.
    assert_eq!(
        bodies[2]["requests"],
        json!([{"id": "ok", "method": "DELETE", "url": "/z"}])
    );

    let dup = graph(&server)
        .batch(vec![
            BatchItem::new("A", GraphRequest::delete(["a"])),
            BatchItem::new("a", GraphRequest::delete(["b"])),
        ])
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::InvalidInput);
    let forward = graph(&server)
        .batch(vec![
            BatchItem::new("a", GraphRequest::delete(["a"])).depends_on("b"),
            BatchItem::new("b", GraphRequest::delete(["b"])),
        ])
        .await
        .unwrap_err();
    assert_eq!(forward.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        endpoint.bodies.lock().unwrap().len(),
        3,
        "refused before sending"
    );
}

#[tokio::test]
async fn find_user_refilters_locally_and_refuses_two_matches() {
    let server = MockServer::start().await;
    // A server that widens: it answers every filter with three users.
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .and(query_param(
            "$select",
            "id,userPrincipalName,mail,proxyAddresses,otherMails",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            {"id": "1", "userPrincipalName": "jane@x.com", "mail": "jane@x.com"},
            {"id": "2", "userPrincipalName": "bob@x.com", "mail": "Jane.Doe@x.com"},
            {"id": "3", "userPrincipalName": "eve@x.com", "mail": null},
            {"id": "4", "userPrincipalName": "mallory@x.com", "mail": null,
             "proxyAddresses": ["x500:JANE@x.com", "smtp:jane@x.co", "sip:nobody@x.com"],
             "otherMails": ["jane@x.com.evil", "nobody@x.com "]},
            {"id": "5", "userPrincipalName": "p@x.com", "mail": null,
             "proxyAddresses": ["SMTP:proxy@x.com", "smtp:second@x.com"],
             "otherMails": ["other@x.com"]},
        ]})))
        .mount(&server)
        .await;
    let g = graph(&server);
    let one: Value = g
        .find_user(&["JANE@x.com"], "id,userPrincipalName,mail")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one["id"], "1");
    for address in ["PROXY@x.com", "second@x.com", "Other@X.com"] {
        let found: Value = g
            .find_user(&[address], "id,userPrincipalName,mail")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found["id"], "5", "{address}");
    }
    let none: Option<Value> = g
        .find_user(&["nobody@x.com", ""], "id,userPrincipalName,mail")
        .await
        .unwrap();
    assert!(none.is_none(), "the widened answer is filtered out");
    let e = g
        .find_user::<Value>(
            &["jane@x.com", "jane.doe@x.com"],
            "id,userPrincipalName,mail",
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ambiguous);
    assert!(e.to_string().contains("bob@x.com (2)"), "{e}");
    let sent = server.received_requests().await.unwrap();
    let filters: Vec<String> = sent
        .iter()
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "$filter")
                .unwrap()
                .1
                .into_owned()
        })
        .collect();
    assert_eq!(
        filters[4],
        "userPrincipalName eq 'nobody@x.com' or mail eq 'nobody@x.com' \
         or proxyAddresses/any(x:x eq 'smtp:nobody@x.com') \
         or otherMails/any(x:x eq 'nobody@x.com')",
        "empty addresses are left out"
    );
    // Nothing to look for: no request.
    assert!(g.find_user::<Value>(&[""], "id").await.unwrap().is_none());
    assert_eq!(server.received_requests().await.unwrap().len(), 6);
}

#[tokio::test]
async fn lookup_user_reads_the_external_id_or_the_addresses() {
    let server = MockServer::start().await;
    let select = "id,userPrincipalName,mail";
    Mock::given(method("GET"))
        .and(path("/v1.0/users/u1"))
        .and(query_param("$select", select))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"id": "u1", "userPrincipalName": "jane@x.com", "mail": null}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Graph resolves a UPN in place of an id: that is not the id asked for.
    Mock::given(method("GET"))
        .and(path("/v1.0/users/jane@x.com"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"id": "u1", "userPrincipalName": "jane@x.com", "mail": null}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/gone"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(graph_error("Request_ResourceNotFound")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/bad%20id"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error("Request_BadRequest")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/boom"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(graph_error("Authorization_RequestDenied")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .and(query_param(
            "$filter",
            "userPrincipalName eq 'x@x.com' or mail eq 'x@x.com' \
             or proxyAddresses/any(x:x eq 'smtp:x@x.com') or otherMails/any(x:x eq 'x@x.com') \
             or userPrincipalName eq 'jane@x.com' or mail eq 'jane@x.com' \
             or proxyAddresses/any(x:x eq 'smtp:jane@x.com') \
             or otherMails/any(x:x eq 'jane@x.com')",
        ))
        .and(query_param(
            "$select",
            format!("{select},proxyAddresses,otherMails"),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            {"id": "u1", "userPrincipalName": "jane@x.com", "mail": null},
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let g = graph(&server);
    let jane = || LookupRequest::person(Person::new("p", "x@x.com").with_alias("jane@x.com"));
    let by = |id: &str| jane().with_external_id(id);

    let found: Value = lookup_user(&g, &by("u1"), select).await.unwrap().unwrap();
    assert_eq!(found["userPrincipalName"], "jane@x.com");
    for none in ["jane@x.com", "gone", "bad id", "", ".", ".."] {
        let r: Option<Value> = lookup_user(&g, &by(none), select).await.unwrap();
        assert!(r.is_none(), "{none:?} found {r:?}");
    }
    let e = lookup_user::<Value>(&g, &by("boom"), select)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    let before = server.received_requests().await.unwrap().len();
    let e = lookup_user::<Value>(&g, &by("u1\r\nX: y"), select)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(!e.is_retryable());
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        before,
        "a control character sends nothing"
    );
    let by_address: Value = lookup_user(&g, &jane(), select).await.unwrap().unwrap();
    assert_eq!(by_address["id"], "u1");
}
