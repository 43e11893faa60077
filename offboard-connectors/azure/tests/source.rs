//! `EntraSource` against the simulated Microsoft tenant: `GET /users/delta()` rounds, the delta
//! link and what was reported persisted in the cursor between polls (and between source
//! objects), the full-round fallback when the token expired.

use std::sync::Arc;

use offboard_azure::{AzureConfig, EntraSource};
use offboard_core::source::{ChangeBatch, Cursor, SourceOfTruth};
use offboard_core::{Lifecycle, Secret};
use offboard_http::GraphClient;
use offboard_http::graph::GraphRequest;
use offboard_testkit::sim::graph::{GraphTenant, NewUser};
use serde_json::json;

fn graph(t: &GraphTenant) -> GraphClient {
    AzureConfig::new()
        .with_tenant_id(t.tenant_id())
        .with_client_id(t.client_id())
        .with_client_secret(Secret::new(t.client_secret()))
        .with_graph_url(t.graph_url())
        .with_allow_plain_http(true)
        .with_token_url(t.token_url())
        .graph_client()
        .unwrap()
}

fn source(t: &GraphTenant) -> EntraSource {
    EntraSource::from_client(graph(t))
}

/// Person id → lifecycle of each change, sorted by id.
fn summary(batch: &ChangeBatch) -> Vec<(String, Lifecycle)> {
    let mut v: Vec<(String, Lifecycle)> = batch
        .changes
        .iter()
        .map(|r| (r.person.id.to_string(), r.lifecycle))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The `GET /users/delta()` requests the tenant received (and no `GET /users` listing).
fn delta_requests(t: &GraphTenant) -> Vec<offboard_testkit::sim::graph::RecordedRequest> {
    let requests = t.requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "GET" && r.path == "/v1.0/users"),
        "no full listing"
    );
    requests
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v1.0/users/delta"))
        .collect()
}

fn sorted(mut v: Vec<(String, Lifecycle)>) -> Vec<(String, Lifecycle)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

async fn set_enabled(t: &GraphTenant, id: &str, enabled: bool) {
    graph(t)
        .send(&GraphRequest::patch(
            ["users", id],
            json!({"accountEnabled": enabled}),
        ))
        .await
        .unwrap();
}

fn user(upn: &str, employee: &str) -> NewUser {
    NewUser {
        employee_id: Some(employee.into()),
        ..NewUser::new(upn)
    }
}

#[tokio::test]
async fn disabled_and_deleted_users_become_past_and_nothing_repeats() {
    let t = Arc::new(GraphTenant::start().await);
    let ada = t.add_user(NewUser {
        mail: Some("ada@example.test".into()),
        ..user("ada.l@example.test", "E1")
    });
    let bob = t.add_user(user("bob@example.test", "E2"));
    let cy = t.add_user(user("cy@example.test", "E3"));
    let dee = t.add_user(user("dee@example.test", "E4"));
    let eve = t.add_user(user("eve@example.test", "E5"));
    let src = source(&t).with_page_size(2);

    // First scan: everyone, current; pages of 2 followed through nextLink.
    let first = src.changes(None).await.unwrap();
    assert!(!first.more);
    let mut all = [&ada, &bob, &cy, &dee, &eve];
    all.sort();
    assert_eq!(
        summary(&first),
        all.iter()
            .map(|id| ((*id).clone(), Lifecycle::Current))
            .collect::<Vec<_>>()
    );
    let a = first
        .changes
        .iter()
        .find(|r| r.person.id.as_str() == ada)
        .unwrap();
    assert_eq!(a.person.email, "ada@example.test");
    assert_eq!(a.person.aliases, ["ada.l@example.test"]);
    assert_eq!(a.person.employee_id.as_deref(), Some("E1"));
    let lists = delta_requests(&t);
    assert_eq!(lists.len(), 3, "5 users in pages of 2");
    assert!(lists[1].query_param("$skiptoken").is_some());
    assert_eq!(
        lists[0].query_param("$select"),
        Some("id,userPrincipalName,mail,displayName,accountEnabled,employeeId")
    );
    assert_eq!(lists[0].query_param("$top"), Some("2"));

    // Unchanged: nothing.
    let again = src.changes(Some(&first.next)).await.unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);

    // Bob disabled, Cy soft-deleted, Dee hard-deleted.
    let g = graph(&t);
    g.send(&GraphRequest::patch(
        ["users", bob.as_str()],
        json!({"accountEnabled": false}),
    ))
    .await
    .unwrap();
    g.send(&GraphRequest::delete(["users", cy.as_str()]))
        .await
        .unwrap();
    t.remove_user(&dee);
    t.clear_requests();
    let gone = src.changes(Some(&again.next)).await.unwrap();
    assert_eq!(summary(&gone), {
        let mut v = vec![
            (bob.clone(), Lifecycle::Past),
            (cy.clone(), Lifecycle::Past),
            (dee.clone(), Lifecycle::Past),
        ];
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    });
    let by_id = |id: &str| {
        gone.changes
            .iter()
            .find(|r| r.person.id.as_str() == id)
            .unwrap()
            .clone()
    };
    assert!(
        by_id(&cy).termination_at.is_some(),
        "soft-deleted: deletedDateTime"
    );
    assert_eq!(by_id(&cy).person.email, "cy@example.test");
    assert!(by_id(&dee).termination_at.is_none(), "gone for good");
    // The two missing users were read in one $batch (deletedItems + users each).
    let batches: Vec<_> = t
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1.0/$batch")
        .collect();
    assert_eq!(batches.len(), 1);
    let urls: Vec<String> = batches[0].body.as_ref().unwrap()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["url"]
                .as_str()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(urls.len(), 4);
    assert!(urls.contains(&format!("/directory/deletedItems/{cy}")));
    assert!(urls.contains(&format!("/directory/deletedItems/{dee}")));

    // Reported once only.
    let quiet = src.changes(Some(&gone.next)).await.unwrap();
    assert!(quiet.changes.is_empty(), "{:?}", quiet.changes);
}

#[tokio::test]
async fn a_restarted_source_with_the_persisted_cursor_misses_and_repeats_nothing() {
    let t = Arc::new(GraphTenant::start().await);
    let ada = t.add_user(user("ada@example.test", "E1"));
    let bob = t.add_user(user("bob@example.test", "E2"));
    let first = source(&t).changes(None).await.unwrap();
    assert_eq!(first.changes.len(), 2);
    let persisted: String = first.next.0.clone();

    // While "down": Ada leaves, Cy joins.
    graph(&t)
        .send(&GraphRequest::patch(
            ["users", ada.as_str()],
            json!({"accountEnabled": false}),
        ))
        .await
        .unwrap();
    let cy = t.add_user(user("cy@example.test", "E3"));

    let restarted = source(&t);
    let batch = restarted
        .changes(Some(&Cursor(persisted.clone())))
        .await
        .unwrap();
    let mut want = vec![
        (ada.clone(), Lifecycle::Past),
        (cy.clone(), Lifecycle::Current),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(summary(&batch), want);
    // A crash before the new cursor was persisted: the same cursor gives the same changes.
    let replay = source(&t).changes(Some(&Cursor(persisted))).await.unwrap();
    assert_eq!(summary(&replay), want);
    let after = source(&t).changes(Some(&batch.next)).await.unwrap();
    assert!(after.changes.is_empty(), "{:?}", after.changes);
    assert!(!summary(&first).iter().any(|(id, _)| id == &cy));
    let _ = bob;

    let e = source(&t)
        .changes(Some(&Cursor("not json".into())))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cursor"), "{e}");
}

/// Issue 20 item 7. "Seen correctly" for a user disabled and re-enabled between two polls:
/// Graph's delta lists them (changed) in their latest state, enabled; they were last reported
/// current and still are, so the source reports nothing for them and the engine has nothing
/// to start (no offboarding), while a user disabled and still disabled is reported past and a
/// hard-deleted one gone (past by id). The second poll sends only the stored delta link
/// (`$deltatoken`, no full listing) and follows its pages. Before the delta feed the source
/// listed `GET /users` every poll.
#[tokio::test]
async fn a_user_disabled_and_re_enabled_between_two_polls_stays_current() {
    let t = Arc::new(GraphTenant::start().await);
    let ada = t.add_user(user("ada@example.test", "E1"));
    let bob = t.add_user(user("bob@example.test", "E2"));
    let cy = t.add_user(user("cy@example.test", "E3"));
    let dee = t.add_user(user("dee@example.test", "E4"));
    let src = source(&t).with_page_size(2);
    let first = src.changes(None).await.unwrap();
    assert_eq!(first.changes.len(), 4);
    assert!(
        first.next.0.contains("deltatoken"),
        "the cursor holds the delta link"
    );

    // Between the polls: Ada disabled then re-enabled, Bob disabled, Dee deleted for good,
    // Eve joins.
    set_enabled(&t, &ada, false).await;
    set_enabled(&t, &ada, true).await;
    set_enabled(&t, &bob, false).await;
    t.remove_user(&dee);
    let eve = t.add_user(user("eve@example.test", "E5"));
    t.clear_requests();
    let second = src.changes(Some(&first.next)).await.unwrap();
    assert_eq!(
        summary(&second),
        sorted(vec![
            (bob.clone(), Lifecycle::Past),
            (dee.clone(), Lifecycle::Past),
            (eve.clone(), Lifecycle::Current),
        ]),
        "Ada, disabled and re-enabled, is not reported: still current"
    );
    let d = second
        .changes
        .iter()
        .find(|r| r.person.id.as_str() == dee)
        .unwrap();
    assert!(d.is_vanished(), "hard-deleted: gone, by id");
    // Only the delta link: 4 changed users (Ada, Bob, Dee removed, Eve) in pages of 2.
    let rounds = delta_requests(&t);
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert!(rounds[0].query_param("$deltatoken").is_some());
    assert!(rounds[1].query_param("$skiptoken").is_some());
    // Cy, unchanged, was not read at all.
    assert!(!t.requests().iter().any(|r| r.path.contains(cy.as_str())));

    // Bob stays disabled: reported once, nothing more. Ada still current.
    let third = src.changes(Some(&second.next)).await.unwrap();
    assert!(third.changes.is_empty(), "{:?}", third.changes);
    // Ada now disabled for good: past.
    set_enabled(&t, &ada, false).await;
    let fourth = src.changes(Some(&third.next)).await.unwrap();
    assert_eq!(summary(&fourth), vec![(ada.clone(), Lifecycle::Past)]);
}

/// Issue 20 item 7: an expired delta token (410 `syncStateNotFound`) makes the poll fall back
/// to a full round diffed against the cursor: what changed while the token expired is
/// reported (disabled, soft-deleted with its deletion date, new), nothing unchanged repeats,
/// and the next poll is incremental again from the new delta link.
#[tokio::test]
async fn an_expired_delta_token_falls_back_to_a_full_round_with_the_right_changes() {
    let t = Arc::new(GraphTenant::start().await);
    let ada = t.add_user(user("ada@example.test", "E1"));
    let bob = t.add_user(user("bob@example.test", "E2"));
    let cy = t.add_user(user("cy@example.test", "E3"));
    let src = source(&t);
    let first = src.changes(None).await.unwrap();
    assert_eq!(first.changes.len(), 3);

    set_enabled(&t, &ada, false).await;
    graph(&t)
        .send(&GraphRequest::delete(["users", cy.as_str()]))
        .await
        .unwrap();
    let fay = t.add_user(user("fay@example.test", "E6"));
    t.expire_delta_tokens();
    t.clear_requests();
    let batch = src.changes(Some(&first.next)).await.unwrap();
    assert_eq!(
        summary(&batch),
        sorted(vec![
            (ada.clone(), Lifecycle::Past),
            (cy.clone(), Lifecycle::Past),
            (fay.clone(), Lifecycle::Current),
        ])
    );
    let c = batch
        .changes
        .iter()
        .find(|r| r.person.id.as_str() == cy)
        .unwrap();
    assert!(c.termination_at.is_some(), "soft-deleted: deletedDateTime");
    let rounds = delta_requests(&t);
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert!(
        rounds[0].query_param("$deltatoken").is_some(),
        "the stored link"
    );
    assert!(
        rounds[1].query_param("$deltatoken").is_none()
            && rounds[1].query_param("$select").is_some(),
        "then a full round"
    );

    // Incremental again.
    set_enabled(&t, &bob, false).await;
    t.clear_requests();
    let next = src.changes(Some(&batch.next)).await.unwrap();
    assert_eq!(summary(&next), vec![(bob.clone(), Lifecycle::Past)]);
    let rounds = delta_requests(&t);
    assert_eq!(rounds.len(), 1);
    assert!(rounds[0].query_param("$deltatoken").is_some());
}

/// Graph may list an updated user in a delta round with only the properties that changed: a
/// disabled user renamed, listed as `{id, displayName}`, must not read as enabled (a false
/// rehire). The source reads such a user directly ($batch) and judges what it read: nothing
/// to report for the renamed past user; a partially listed user re-enabled is reported current.
#[tokio::test]
async fn a_user_listed_partially_is_read_before_being_judged() {
    let t = Arc::new(GraphTenant::start().await);
    let ada = t.add_user(user("ada@example.test", "E1"));
    let bob = t.add_user(user("bob@example.test", "E2"));
    set_enabled(&t, &bob, false).await;
    let src = source(&t);
    let first = src.changes(None).await.unwrap();
    assert_eq!(
        summary(&first),
        sorted(vec![
            (ada.clone(), Lifecycle::Current),
            (bob.clone(), Lifecycle::Past)
        ])
    );
    t.set_partial_delta_updates(true);
    graph(&t)
        .send(&GraphRequest::patch(
            ["users", bob.as_str()],
            json!({"displayName": "Bob R."}),
        ))
        .await
        .unwrap();
    t.clear_requests();
    let second = src.changes(Some(&first.next)).await.unwrap();
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    assert_eq!(
        t.requests()
            .iter()
            .filter(|r| r.path == "/v1.0/$batch")
            .count(),
        1,
        "the partial user was read"
    );
    set_enabled(&t, &bob, true).await;
    let third = src.changes(Some(&second.next)).await.unwrap();
    assert_eq!(summary(&third), vec![(bob.clone(), Lifecycle::Current)]);
}
