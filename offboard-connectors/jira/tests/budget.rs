//! offboard-jira's request budget: delegates (one per engine process of a fleet) drawing
//! from one shared `RateBudget` stay within the site's budget together; each pacing on its
//! own budget overspends it.

use std::sync::Arc;
use std::time::Duration;

use offboard_core::{Delegate, MemoryRateBudget, RateBudget, Ticket, TicketStatus};
use offboard_jira::{JiraBuilder, JiraDelegate};
use offboard_testkit::sim::jira::{DEFAULT_EMAIL, DEFAULT_TOKEN, JiraSim};

/// The site's budget: 10 requests a second.
const LIMIT: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);

fn delegate(sim: &JiraSim) -> JiraDelegate {
    JiraBuilder::new()
        .with_site(sim.uri())
        .with_allow_plain_http(true)
        .with_email(DEFAULT_EMAIL)
        .with_api_token(DEFAULT_TOKEN)
        .with_project("IT")
        .with_request_budget(LIMIT, WINDOW)
        .build()
        .unwrap()
}

/// Two delegates read the ticket `reads` times each, all at once; returns how many reads the
/// site answered 429.
async fn two_delegates_read(sim: &JiraSim, budgets: [Arc<dyn RateBudget>; 2], reads: usize) -> u64 {
    let key = sim.create_issue("Remove access", &["offb-budget"]);
    let ticket = Ticket {
        url: format!("{}/browse/{key}", sim.uri()),
        key,
        assignee: None,
    };
    sim.clear_requests();
    // One request of slack over the pacing: a request's way to the site on a loaded machine
    // may move it across the site's fixed window edge.
    sim.rate_budget(LIMIT + 1, WINDOW);
    let delegates = budgets.map(|b| {
        let d = delegate(sim);
        d.use_rate_budget(b);
        Arc::new(d)
    });
    let mut tasks = Vec::new();
    for d in &delegates {
        for _ in 0..reads {
            let (d, t) = (Arc::clone(d), ticket.clone());
            tasks.push(tokio::spawn(async move { d.status(&t).await }));
        }
    }
    for t in tasks {
        match t.await.unwrap() {
            Ok(TicketStatus::Open { .. }) => {}
            Ok(other) => panic!("{other:?}"),
            Err(e) => assert_eq!(e.kind(), offboard_core::ErrorKind::RateLimited, "{e}"),
        }
    }
    let requests = sim.requests();
    assert_eq!(requests.len(), 2 * reads);
    requests.iter().filter(|r| r.status == 429).count() as u64
}

#[tokio::test]
async fn delegates_sharing_a_budget_stay_within_the_sites_budget() {
    let sim = JiraSim::start().await;
    let shared: Arc<dyn RateBudget> = Arc::new(MemoryRateBudget::new());
    let throttled = two_delegates_read(&sim, [Arc::clone(&shared), shared], 12).await;
    assert_eq!(
        throttled, 0,
        "shared: the pair paces to 10 a second together"
    );
}

#[tokio::test]
async fn delegates_on_budgets_of_their_own_overspend_it() {
    let sim = JiraSim::start().await;
    let throttled = two_delegates_read(
        &sim,
        [
            Arc::new(MemoryRateBudget::new()),
            Arc::new(MemoryRateBudget::new()),
        ],
        12,
    )
    .await;
    assert!(
        throttled > 0,
        "each alone paces to 10 a second: 20 together"
    );
}

#[tokio::test]
async fn a_throttle_holds_the_shared_key_for_the_other_delegate() {
    let sim = JiraSim::start().await;
    let shared = Arc::new(MemoryRateBudget::new());
    let key = sim.create_issue("Remove access", &["offb-penalty"]);
    let ticket = Ticket {
        url: format!("{}/browse/{key}", sim.uri()),
        key,
        assignee: None,
    };
    let (a, b) = (delegate(&sim), delegate(&sim));
    a.use_rate_budget(shared.clone());
    b.use_rate_budget(shared.clone());
    sim.throttle_next(1, Duration::from_secs(1));
    let e = a.status(&ticket).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    // The other delegate's next read waits out the site's Retry-After: the request reaches
    // the site at least a second after the 429.
    let throttled_at = std::time::Instant::now();
    b.status(&ticket).await.unwrap();
    assert!(throttled_at.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        sim.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 200]
    );
}
