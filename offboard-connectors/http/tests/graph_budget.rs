//! The Graph client's resource-unit (RU) pacing against the Graph simulator: what it draws
//! from the shared budget per request kind (a `$batch` the sum of its requests), that pacing
//! to the tenant's RU limit ahead keeps its 429s away where the same load unpaced is
//! throttled, and which budget a 429 penalises (`x-ms-throttle-information`).

use std::sync::Arc;
use std::time::Duration;

use offboard_core::{ErrorKind, Secret};
use offboard_http::graph::{BatchItem, GraphRetry};
use offboard_http::{GraphClient, GraphClientBuilder, GraphRequest};
use offboard_testkit::graph::{GraphLimits, GraphTenant, NewUser};
use offboard_testkit::suite::budget::RecordingBudget;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn builder(t: &GraphTenant) -> GraphClientBuilder {
    GraphClient::builder()
        .tenant_id(t.tenant_id())
        .client_id(t.client_id())
        .client_secret(Secret::new(t.client_secret()))
        .graph_url(t.graph_url())
        .token_url(t.token_url())
        .allow_plain_http(true)
        .retry(GraphRetry::none())
}

/// `n` list-users requests (2 RU each) in flight at once, as a busy engine's are; how many
/// were throttled (any other failure fails the test).
async fn list_users(graph: &GraphClient, n: usize) -> usize {
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..n {
        let graph = graph.clone();
        sends.spawn(async move { graph.json::<Value>(&GraphRequest::get(["users"])).await });
    }
    let mut throttled = 0;
    while let Some(result) = sends.join_next().await {
        if let Err(e) = result.unwrap() {
            assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
            throttled += 1;
        }
    }
    throttled
}

/// The same burst of list-users requests against a tenant whose RU limit it exceeds: paced to
/// that limit, every request is served and the tenant answers no 429; unpaced, the tenant
/// throttles it.
#[tokio::test]
async fn pacing_ahead_to_the_ru_limit_avoids_the_throttling_unpaced_load_meets() {
    const N: usize = 24;
    let limits = GraphLimits::small_tenant().with_resource_units(20, Duration::from_secs(1));
    let t = GraphTenant::start_with(limits.clone()).await;
    t.add_user(NewUser::new("a@example.com"));
    let paced = builder(&t)
        .resource_unit_budget(limits.resource_units, limits.window)
        .build()
        .unwrap();
    assert_eq!(list_users(&paced, N).await, 0);
    assert_eq!(t.rate_limited_count(), 0, "no 429 reached the paced client");
    assert_eq!(t.resource_units_served(), 2 * N as u64);

    let t = GraphTenant::start_with(limits.clone()).await;
    t.add_user(NewUser::new("a@example.com"));
    let unpaced = builder(&t)
        .resource_unit_budget(0, limits.window)
        .build()
        .unwrap();
    let failed = list_users(&unpaced, N).await;
    eprintln!("unpaced: {failed} of {N} list-users requests throttled");
    // The bucket holds 20 RU: at most 10 list-users fit at once; the rest are throttled.
    assert!(failed >= N - 11, "{failed} of {N} throttled");
    assert_eq!(t.rate_limited_count(), failed as u64);
}

/// Each request draws what Graph charges for it under the app registration and tenant's
/// `resource_units` key; a `$batch` draws the sum of its requests once per send; writes draw
/// from the write budget as well.
#[tokio::test]
async fn each_request_acquires_its_resource_units_under_the_tenant_key() {
    let t = GraphTenant::start().await;
    let id = t.add_user(NewUser::new("a@example.com"));
    let graph = builder(&t)
        .resource_unit_budget(5_000, Duration::from_secs(10))
        .build()
        .unwrap();
    let budget = Arc::new(RecordingBudget::default());
    graph.http().use_rate_budget(budget.clone());
    let get = |segments: &[&str]| GraphRequest::get(segments.iter().copied());
    graph.json::<Value>(&get(&["users"])).await.unwrap();
    graph
        .json::<Value>(&get(&["users"]).query("$select", "id").query("$top", "5"))
        .await
        .unwrap();
    graph.json::<Value>(&get(&["users", &id])).await.unwrap();
    graph
        .json::<Value>(&get(&["users", &id, "memberOf"]))
        .await
        .unwrap();
    graph
        .json::<Value>(&get(&["subscribedSkus"]).query("$expand", "x"))
        .await
        .ok();
    graph
        .send(&GraphRequest::patch(
            ["users", &id],
            json!({"displayName": "A"}),
        ))
        .await
        .unwrap();
    let replies = graph
        .batch(vec![
            BatchItem::new("1", get(&["users"])),
            BatchItem::new("2", get(&["users", &id, "memberOf"]).query("$select", "id")),
            BatchItem::new(
                "3",
                GraphRequest::patch(["users", &id], json!({"displayName": "B"})),
            ),
            BatchItem::new("4", get(&["users", &id, "licenseDetails"])),
        ])
        .await
        .unwrap();
    assert!(replies.iter().all(|r| r.is_success()), "{replies:?}");
    let scope = format!("graph|{}|{}", t.tenant_id(), t.client_id());
    let ru = |n: u32| format!("acquire {scope}|resource_units 5000/10s x{n}");
    let write = |n: u32| format!("acquire {scope}|writes 3000/150s x{n}");
    assert_eq!(
        budget.calls(),
        vec![
            ru(2),    // GET users
            ru(1),    // GET users?$select&$top=5: 2 − 1 − 1, at least 1
            ru(1),    // GET users/{id}
            ru(2),    // GET users/{id}/memberOf
            ru(4),    // GET subscribedSkus?$expand: 3 + 1
            write(1), // PATCH users/{id}
            ru(1),
            write(1), // the batch's one write
            ru(6),    // 2 + 1 + 1 + 2
        ]
    );
    assert!(t.rate_limited_count() == 0);
}

/// A simulated tenant with `limits` and one user, a client of it (RU pacing at Graph's
/// default, no in-process retry) drawing from a recording budget, and the user's id.
async fn throttling_tenant(
    limits: GraphLimits,
) -> (GraphTenant, GraphClient, Arc<RecordingBudget>, String) {
    let t = GraphTenant::start_with(limits).await;
    let id = t.add_user(NewUser::new("a@example.com"));
    let graph = builder(&t).build().unwrap();
    let budget = Arc::new(RecordingBudget::default());
    graph.http().use_rate_budget(budget.clone());
    (t, graph, budget, id)
}

/// The keys a budget was told to hold, apart from the HTTP client's own read and write
/// buckets (`…|graph read`, which it holds after any 429).
fn penalised(t: &GraphTenant, budget: &RecordingBudget) -> Vec<String> {
    let scope = format!("graph|{}|{}|", t.tenant_id(), t.client_id());
    budget
        .calls()
        .into_iter()
        .filter_map(|c| c.strip_prefix("penalise ").map(str::to_owned))
        .filter(|c| !c.contains("|graph "))
        .map(|c| c.replace(&scope, "").split(' ').next().unwrap().to_owned())
        .collect()
}

/// A 429 for the RU limit holds the RU budget (for every process sharing it) for its
/// Retry-After, whether the request was a read, a write or a `$batch` item; one for the write
/// limit holds the write budget. (One tenant each: a held budget makes the next request
/// wait, and the simulator's limits run on the real clock.)
#[tokio::test]
async fn a_429_penalises_the_budget_graph_names() {
    let ru = || GraphLimits::small_tenant().with_resource_units(2, Duration::from_secs(10));
    let users = || GraphRequest::get(["users"]);
    let patch = |id: &str| GraphRequest::patch(["users", id], json!({"displayName": "C"}));

    // The RU bucket holds 2: one list of users spends it, the second is throttled.
    let (t, graph, budget, _) = throttling_tenant(ru()).await;
    graph.json::<Value>(&users()).await.unwrap();
    let e = graph.json::<Value>(&users()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(penalised(&t, &budget), ["resource_units"]);

    // A write throttled for RUs holds the RU budget, not the write budget.
    let (t, graph, budget, id) = throttling_tenant(ru()).await;
    graph.json::<Value>(&users()).await.unwrap();
    let e = graph.send(&patch(&id)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(penalised(&t, &budget), ["resource_units"]);

    // So does a $batch item throttled for RUs (inside a 200).
    let (t, graph, budget, id) = throttling_tenant(ru()).await;
    graph.json::<Value>(&users()).await.unwrap();
    let replies = graph
        .batch(vec![BatchItem::new("1", GraphRequest::get(["users", &id]))])
        .await
        .unwrap();
    assert_eq!(replies[0].status, 429);
    assert_eq!(penalised(&t, &budget), ["resource_units"]);

    // With RUs to spare, the second write meets the write limit: the write budget is held.
    let writes = GraphLimits::small_tenant().with_writes(1, Duration::from_secs(100));
    let (t, graph, budget, id) = throttling_tenant(writes).await;
    graph.send(&patch(&id)).await.unwrap();
    let e = graph.send(&patch(&id)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(penalised(&t, &budget), ["writes"]);
    // And for how long Graph said.
    let held = budget
        .calls()
        .into_iter()
        .find(|c| c.starts_with("penalise") && c.contains("|writes "))
        .unwrap();
    let wait: u64 = held
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert_eq!(Some(Duration::from_secs(wait)), e.retry_after(), "{held}");
    assert_eq!(t.rate_limited_count(), 1);
}

/// When Graph reports that a request cost more RUs than the published table says
/// (`x-ms-resource-unit`), the client draws the difference as well; a cheaper answer is not
/// refunded.
#[tokio::test]
async fn a_reported_cost_above_the_estimate_is_drawn_too() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/u-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ms-resource-unit", "5")
                .set_body_json(json!({"id": "u-1"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ms-resource-unit", "1")
                .set_body_json(json!({"value": []})),
        )
        .mount(&server)
        .await;
    let http = offboard_http::HttpClient::builder(format!("{}/v1.0", server.uri()))
        .allow_plain_http(true)
        .token_provider(offboard_http::StaticToken::bearer(Secret::new("t")))
        .budget_scope("graph|t|c")
        .build()
        .unwrap();
    let graph = GraphClient::new(http).with_resource_unit_budget(3_500, Duration::from_secs(10));
    let budget = Arc::new(RecordingBudget::default());
    graph.http().use_rate_budget(budget.clone());
    graph
        .json::<Value>(&GraphRequest::get(["users", "u-1"]))
        .await
        .unwrap();
    graph
        .json::<Value>(&GraphRequest::get(["users"]))
        .await
        .unwrap();
    let ru = |n: u32| format!("acquire graph|t|c|resource_units 3500/10s x{n}");
    assert_eq!(budget.calls(), [ru(1), ru(4), ru(2)]);
}
