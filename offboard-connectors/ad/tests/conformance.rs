//! The connector conformance suite against the Samba AD DC started by `./scripts/test`.

mod common;

use std::sync::Arc;

use offboard_ad::{AdConnector, SearchLog};
use offboard_core::{Connector, LookupRequest, Person};
use offboard_testkit::run_conformance;

/// The fixture reports the connector's LDAP searches, so the hostile-lookup rule judges the
/// filters that reached the directory (RFC 4515 escaping), not only the lookups' results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_samba_ad() {
    let env = common::env();
    let searches = SearchLog::new();
    let connector = Arc::new(
        AdConnector::connect(
            common::builder(&env)
                .with_search_log(searches.clone())
                .build()
                .expect("config"),
        )
        .await
        .expect("connect to the Samba AD DC"),
    );
    let fixture = common::AdFixture::new(&env)
        .await
        .observing(searches.clone());
    let started = std::time::Instant::now();
    let report = run_conformance(&connector, &fixture).await;
    eprintln!(
        "conformance rules passed in {:?}: {:?}",
        started.elapsed(),
        report.rules
    );
    assert!(report.rules.contains(&"restore_reproduces_snapshot"));
    assert!(report.rules.contains(&"verify_revoked_agrees_with_reality"));
    assert!(report.rules.contains(&"lookup_hostile_input_never_widens"));
    // What the rule read: a hostile address reaches the directory escaped (RFC 4515).
    let _ = searches.take();
    let hostile = LookupRequest::person(Person::new("p", "a*)(uid=*@offb.test"));
    assert_eq!(connector.lookup(&hostile).await.expect("lookup"), None);
    let filters: Vec<String> = searches.take().into_iter().map(|s| s.filter).collect();
    assert!(
        filters
            .iter()
            .any(|f| f.contains(r"(mail=a\2a\29\28uid=\2a@offb.test)")),
        "{filters:?}"
    );
}
