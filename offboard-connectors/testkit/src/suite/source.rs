//! The source conformance suite: one plain async function per rule of the
//! [`SourceOfTruth`] contract as the engine relies on it, and [`run_source_conformance`], which
//! runs them all, each on a fresh simulated tenant.
//!
//! # Calling contract
//! 1. Implement [`SourceTenant`] for the simulated tenant of the source under test: it hires,
//!    terminates, reinstates and removes people directly (the simulator's controls, not the
//!    source), injects server errors, counts the requests it served, and builds the source.
//! 2. Call `run_source_conformance::<YourTenant>()` from a `#[tokio::test]`.
//!
//! # The rules
//! | rule | what it holds a source to |
//! |---|---|
//! | [`initial_sync_records_without_triggering`] | a first poll reports everyone as the vendor has them (ids, addresses, names, employee ids, managers, termination dates) and starts nothing, old leavers included |
//! | [`a_termination_starts_exactly_one_run`] | the vendor's termination starts one run, and polling again starts nothing |
//! | [`a_return_is_reported`] | a terminated person made active again is reported back |
//! | [`a_removed_person_is_reported_gone`] | someone the vendor no longer finds is reported past (where records can vanish) |
//! | [`a_restart_mid_scan_loses_and_repeats_nothing`] | a crash after one page and a server error later still give everyone exactly one run, and a steady poll then reports nothing |
//! | [`hostile_field_values_are_data`] | quotes, markup, filter syntax and bidi controls in names and ids come back byte for byte |
//! | [`a_mass_departure_is_held`] | the engine's mass-departure circuit breaker holds a batch turning too many people past |
//!
//! [`measure_detection`] is the benchmark's half: a tenant of N people, one termination, how
//! long a poll takes to report it and how many requests it sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::engine::{LifecycleRules, WatchReport};
use offboard_core::policy::DepartureLimits;
use offboard_core::source::{Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Engine, Lifecycle, MemoryStore, Policy, RunQuery, Store};

use crate::suite::reference::ReferenceConnector;

/// The company domain of every person the suite hires.
pub const DOMAIN: &str = "example.com";

/// A person to hire in a simulated source tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hire {
    /// Work email (`<name>@example.com`).
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// The HR employee number.
    pub employee_id: String,
    /// The manager: the id [`SourceTenant::hire`] returned for them.
    pub manager: Option<String>,
}

impl Hire {
    /// `<login>@example.com`, named `<Login> Tester`, employee id `E-<login>`.
    pub fn new(login: &str) -> Self {
        let mut first = login.to_owned();
        if let Some(c) = first.get_mut(0..1) {
            c.make_ascii_uppercase();
        }
        Self {
            email: format!("{login}@{DOMAIN}"),
            first_name: first,
            last_name: "Tester".into(),
            employee_id: format!("E-{login}"),
            manager: None,
        }
    }

    /// Reporting to `manager` (an id [`SourceTenant::hire`] returned).
    pub fn reporting_to(mut self, manager: &str) -> Self {
        self.manager = Some(manager.to_owned());
        self
    }

    /// `First Last`: the display name a source reports.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// A simulated tenant of a source of truth, as the suite drives it. Every control acts on the
/// tenant directly (what an HR administrator does in the vendor's UI), never through the
/// source under test.
#[async_trait]
pub trait SourceTenant: Send + Sync + Sized + 'static {
    /// Starts a fresh, empty tenant on loopback.
    async fn start() -> Self;

    /// A new instance of the source under test reading this tenant, `page_size` people per
    /// page (the vendor's page size parameter; for a source whose vendor does not page,
    /// ignored). Each call is a new instance, as after a process restart: all its state is in
    /// the cursor.
    fn source(&self, page_size: u32) -> Arc<dyn SourceOfTruth>;

    /// Whether the source reads changes incrementally (a changed-since read) rather than by
    /// full scan and diff.
    fn incremental(&self) -> bool;

    /// Hires an active person; returns the id the source reports them by
    /// ([`PersonRecord::person`]'s `id`).
    fn hire(&self, hire: &Hire) -> String;

    /// Terminates `id` the way the vendor records a departure (the status the table
    /// names), effective `on`.
    fn terminate(&self, id: &str, on: NaiveDate);

    /// Makes a terminated person active again (a rehire, a reactivation).
    fn reinstate(&self, id: &str);

    /// Deletes `id`'s record, so that the vendor's API no longer finds it; `false` when the
    /// vendor never lets a record vanish (the rule is then skipped).
    fn remove(&self, id: &str) -> bool;

    /// The next `n` requests fail with the vendor's server error.
    fn fail_next(&self, n: usize);

    /// Requests the tenant has served so far.
    fn served(&self) -> usize;

    /// Whether the source reports termination dates ([`PersonRecord::termination_at`]).
    fn reports_termination_date(&self) -> bool {
        true
    }

    /// Whether the source reports managers ([`offboard_core::Person::manager`]).
    fn reports_manager(&self) -> bool {
        true
    }
}

/// What [`run_source_conformance`] ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceReport {
    /// The rules that ran, in order.
    pub rules: Vec<&'static str>,
    /// The rules skipped, with why.
    pub skipped: Vec<(&'static str, &'static str)>,
}

/// Runs every rule, each on a fresh tenant. Panics at the first rule broken, naming it.
pub async fn run_source_conformance<T: SourceTenant>() -> SourceReport {
    let mut report = SourceReport::default();
    initial_sync_records_without_triggering(&T::start().await).await;
    report.rules.push("initial_sync_records_without_triggering");
    a_termination_starts_exactly_one_run(&T::start().await).await;
    report.rules.push("a_termination_starts_exactly_one_run");
    a_return_is_reported(&T::start().await).await;
    report.rules.push("a_return_is_reported");
    if a_removed_person_is_reported_gone(&T::start().await).await {
        report.rules.push("a_removed_person_is_reported_gone");
    } else {
        report.skipped.push((
            "a_removed_person_is_reported_gone",
            "the vendor never lets a record vanish",
        ));
    }
    a_restart_mid_scan_loses_and_repeats_nothing(&T::start().await).await;
    report
        .rules
        .push("a_restart_mid_scan_loses_and_repeats_nothing");
    hostile_field_values_are_data(&T::start().await).await;
    report.rules.push("hostile_field_values_are_data");
    a_mass_departure_is_held(&T::start().await).await;
    report.rules.push("a_mass_departure_is_held");
    report
}

/// An engine on a fresh memory store watching `source`; `limits` are its mass-departure
/// limits. The one app is an in-memory reference connector with nobody in it: the suite
/// judges triggers, not actions.
pub fn watching(source: Arc<dyn SourceOfTruth>, limits: DepartureLimits) -> Watch {
    watching_on(Arc::new(MemoryStore::new()), source, limits)
}

/// As [`watching`], on `store` (a second engine after a restart).
pub fn watching_on(
    store: Arc<MemoryStore>,
    source: Arc<dyn SourceOfTruth>,
    limits: DepartureLimits,
) -> Watch {
    let app = Arc::new(ReferenceConnector::builder("app").build());
    let policy =
        Policy::from_toml("[apps.app]\nmethod = \"automatic\"\nactions = [\"app.suspend\"]\n")
            .expect("the suite's policy parses");
    let engine = Engine::builder()
        .store(store.clone())
        .connector(app)
        .policy(policy)
        .lifecycle(LifecycleRules {
            domains: vec![DOMAIN.into()],
            departures: limits,
            ..LifecycleRules::default()
        })
        .source(source.clone(), Duration::from_secs(1))
        .build()
        .expect("the suite's engine builds");
    Watch {
        engine,
        store,
        source,
    }
}

/// An engine watching one source, as the rules use it.
#[derive(Debug)]
pub struct Watch {
    /// The engine.
    pub engine: Engine,
    /// Its store.
    pub store: Arc<MemoryStore>,
    /// The source it polls.
    pub source: Arc<dyn SourceOfTruth>,
}

impl Watch {
    /// One poll of the source (every page), panicking on an error.
    pub async fn poll(&self, rule: &str) -> WatchReport {
        self.engine
            .poll_sources()
            .await
            .unwrap_or_else(|e| panic!("{rule}: polling {}: {e}", self.source.name()))
    }

    /// How many runs `person` has.
    pub async fn runs_of(&self, person: &str) -> usize {
        self.store
            .list_runs(RunQuery::person(person))
            .await
            .expect("the memory store lists runs")
            .len()
    }
}

/// Reads the source from `cursor` until it has no more: every record, and the cursor after.
///
/// # Panics
/// When a read fails (naming `rule`).
pub async fn read_all(
    source: &dyn SourceOfTruth,
    mut cursor: Option<Cursor>,
    rule: &str,
) -> (Vec<PersonRecord>, Cursor) {
    let mut records = Vec::new();
    for _ in 0..100_000 {
        let batch = source
            .changes(cursor.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{rule}: {} changes: {e}", source.name()));
        records.extend(batch.changes);
        cursor = Some(batch.next);
        if !batch.more {
            return (records, cursor.expect("set above"));
        }
    }
    panic!("{rule}: {} never ends its reading", source.name());
}

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, n).expect("a November day")
}

fn started(report: &WatchReport) -> Vec<String> {
    let mut who: Vec<String> = report
        .started
        .iter()
        .map(|(p, _)| p.as_str().to_owned())
        .collect();
    who.sort();
    who
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// A first poll reports everyone as the vendor has them and starts nothing: current people
/// are current, a leaver terminated before the first poll is recorded past, never triggered.
pub async fn initial_sync_records_without_triggering<T: SourceTenant>(tenant: &T) {
    const RULE: &str = "initial_sync_records_without_triggering";
    let ada = Hire::new("ada");
    let ada_id = tenant.hire(&ada);
    let bob = Hire::new("bob").reporting_to(&ada_id);
    let bob_id = tenant.hire(&bob);
    let old = Hire::new("old");
    let old_id = tenant.hire(&old);
    tenant.terminate(&old_id, day(2));

    let (records, _) = read_all(tenant.source(100).as_ref(), None, RULE).await;
    for (hire, id, lifecycle) in [
        (&ada, &ada_id, Lifecycle::Current),
        (&bob, &bob_id, Lifecycle::Current),
        (&old, &old_id, Lifecycle::Past),
    ] {
        let mine: Vec<&PersonRecord> = records
            .iter()
            .filter(|r| r.person.id.as_str() == id)
            .collect();
        assert_eq!(mine.len(), 1, "{RULE}: {id} reported once: {records:?}");
        let r = mine[0];
        assert_eq!(r.lifecycle, lifecycle, "{RULE}: {r:?}");
        assert_eq!(r.person.email, hire.email, "{RULE}: {r:?}");
        assert_eq!(r.person.display_name, hire.display_name(), "{RULE}: {r:?}");
        assert_eq!(
            r.person.employee_id.as_deref(),
            Some(hire.employee_id.as_str()),
            "{RULE}: {r:?}"
        );
    }
    let bob_record = records.iter().find(|r| r.person.id.as_str() == bob_id);
    if tenant.reports_manager() {
        let manager = bob_record.and_then(|r| r.person.manager.clone());
        assert_eq!(
            manager.map(|m| m.email),
            Some(ada.email.clone()),
            "{RULE}: bob's manager is ada"
        );
    }
    if tenant.reports_termination_date() {
        let old_record = records.iter().find(|r| r.person.id.as_str() == old_id);
        let on = old_record
            .and_then(|r| r.termination_at)
            .map(|t| t.date_naive());
        assert_eq!(on, Some(day(2)), "{RULE}: the termination date");
    }

    let w = watching(tenant.source(100), DepartureLimits::unlimited());
    let first = w.poll(RULE).await;
    assert!(first.records >= 3, "{RULE}: {first:?}");
    assert!(
        first.started.is_empty(),
        "{RULE}: nothing starts: {first:?}"
    );
    assert_eq!(w.runs_of(&old_id).await, 0, "{RULE}: an old leaver");
}

/// After the first sync, the vendor's termination starts exactly one run, and further polls
/// start nothing.
pub async fn a_termination_starts_exactly_one_run<T: SourceTenant>(tenant: &T) {
    const RULE: &str = "a_termination_starts_exactly_one_run";
    let ada = tenant.hire(&Hire::new("ada"));
    let bob = tenant.hire(&Hire::new("bob").reporting_to(&ada));
    let w = watching(tenant.source(100), DepartureLimits::unlimited());
    w.poll(RULE).await;
    tenant.terminate(&bob, day(20));
    let r = w.poll(RULE).await;
    assert_eq!(started(&r), [bob.as_str()], "{RULE}: {r:?}");
    for _ in 0..2 {
        let again = w.poll(RULE).await;
        assert!(again.started.is_empty(), "{RULE}: {again:?}");
        assert_eq!(again.records, 0, "{RULE}: nothing new to report: {again:?}");
    }
    assert_eq!(w.runs_of(&bob).await, 1, "{RULE}: one run for bob");
    assert_eq!(w.runs_of(&ada).await, 0, "{RULE}: ada stays");
}

/// A terminated person made active again is reported back, and their open run is cancelled.
pub async fn a_return_is_reported<T: SourceTenant>(tenant: &T) {
    const RULE: &str = "a_return_is_reported";
    let cy = tenant.hire(&Hire::new("cy"));
    tenant.hire(&Hire::new("dee"));
    let w = watching(tenant.source(100), DepartureLimits::unlimited());
    w.poll(RULE).await;
    tenant.terminate(&cy, day(21));
    let gone = w.poll(RULE).await;
    assert_eq!(started(&gone), [cy.as_str()], "{RULE}: {gone:?}");
    tenant.reinstate(&cy);
    let back = w.poll(RULE).await;
    assert_eq!(
        back.returned.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        [cy.as_str()],
        "{RULE}: {back:?}"
    );
    assert!(back.started.is_empty(), "{RULE}: {back:?}");
}

/// Someone the vendor no longer finds is reported past (and starts a run). Returns `false`
/// when the tenant cannot remove a record.
pub async fn a_removed_person_is_reported_gone<T: SourceTenant>(tenant: &T) -> bool {
    const RULE: &str = "a_removed_person_is_reported_gone";
    let eve = tenant.hire(&Hire::new("eve"));
    tenant.hire(&Hire::new("fay"));
    let w = watching(tenant.source(100), DepartureLimits::unlimited());
    w.poll(RULE).await;
    if !tenant.remove(&eve) {
        return false;
    }
    let r = w.poll(RULE).await;
    assert_eq!(started(&r), [eve.as_str()], "{RULE}: {r:?}");
    let again = w.poll(RULE).await;
    assert!(again.started.is_empty(), "{RULE}: {again:?}");
    assert_eq!(w.runs_of(&eve).await, 1, "{RULE}");
    true
}

/// With two people per page: an engine handles one page of terminations and stops (a crash),
/// a second engine on the same store meets a server error and then polls again. Everyone
/// terminated has exactly one run, and a poll after that reports nothing.
pub async fn a_restart_mid_scan_loses_and_repeats_nothing<T: SourceTenant>(tenant: &T) {
    const RULE: &str = "a_restart_mid_scan_loses_and_repeats_nothing";
    let ids: Vec<String> = ["gus", "hal", "ivy", "jon", "kim", "lea", "max"]
        .iter()
        .map(|n| tenant.hire(&Hire::new(n)))
        .collect();
    let store = Arc::new(MemoryStore::new());
    let first = watching_on(
        store.clone(),
        tenant.source(2),
        DepartureLimits::unlimited(),
    );
    let sync = first.poll(RULE).await;
    assert!(sync.started.is_empty(), "{RULE}: {sync:?}");
    let leaving = &ids[..5];
    for id in leaving {
        tenant.terminate(id, day(22));
    }
    let partial = first
        .engine
        .poll_source_pages(first.source.as_ref(), 1)
        .await
        .unwrap_or_else(|e| panic!("{RULE}: the first page: {e}"));
    assert!(
        partial.started.len() <= leaving.len(),
        "{RULE}: {partial:?}"
    );
    drop(first);

    let second = watching_on(store, tenant.source(2), DepartureLimits::unlimited());
    tenant.fail_next(1);
    let failed = second.engine.poll_sources().await;
    assert!(failed.is_err(), "{RULE}: the injected error surfaces");
    let rest = second.poll(RULE).await;
    let mut all = started(&partial);
    all.extend(started(&rest));
    assert_eq!(
        sorted(all),
        sorted(leaving.to_vec()),
        "{RULE}: every leaver started once across the restart: {partial:?} {rest:?}"
    );
    for id in &ids {
        let want = usize::from(leaving.contains(id));
        assert_eq!(second.runs_of(id).await, want, "{RULE}: runs of {id}");
    }
    let steady = second.poll(RULE).await;
    assert_eq!(
        (steady.records, steady.started.len()),
        (0, 0),
        "{RULE}: a steady poll reports nothing: {steady:?}"
    );
}

/// Quotes, markup, filter and query syntax, and bidi controls in names and employee ids are
/// reported byte for byte, and the person's termination still starts their one run.
pub async fn hostile_field_values_are_data<T: SourceTenant>(tenant: &T) {
    const RULE: &str = "hostile_field_values_are_data";
    let hostile = Hire {
        email: format!("o'brien+x@{DOMAIN}"),
        first_name: "Robert'); DROP TABLE people;--".into(),
        last_name: "<script>alert(1)</script> \"*)(uid=*\" $filter=1 eq 1 \u{202e}ʎǝɹ".into(),
        employee_id: "E-1' OR '1'='1 & x=\\u0000".into(),
        manager: None,
    };
    let id = tenant.hire(&hostile);
    tenant.hire(&Hire::new("nia"));
    let (records, _) = read_all(tenant.source(100).as_ref(), None, RULE).await;
    let r = records
        .iter()
        .find(|r| r.person.id.as_str() == id)
        .unwrap_or_else(|| panic!("{RULE}: {id} reported: {records:?}"));
    assert_eq!(r.person.email, hostile.email, "{RULE}");
    assert_eq!(r.person.display_name, hostile.display_name(), "{RULE}");
    assert_eq!(
        r.person.employee_id.as_deref(),
        Some(hostile.employee_id.as_str()),
        "{RULE}"
    );
    let w = watching(tenant.source(100), DepartureLimits::unlimited());
    w.poll(RULE).await;
    tenant.terminate(&id, day(23));
    let gone = w.poll(RULE).await;
    assert_eq!(started(&gone), [id.as_str()], "{RULE}: {gone:?}");
}

/// Thirty people, twenty-six terminated at once: the engine's default mass-departure limits
/// (25 people, 5 %) hold the batch, nothing starts, and the hold names the source.
pub async fn a_mass_departure_is_held<T: SourceTenant>(tenant: &T) {
    const RULE: &str = "a_mass_departure_is_held";
    let ids: Vec<String> = (0..30)
        .map(|i| tenant.hire(&Hire::new(&format!("p{i:02}"))))
        .collect();
    let w = watching(tenant.source(100), DepartureLimits::default());
    w.poll(RULE).await;
    for id in &ids[..26] {
        tenant.terminate(id, day(24));
    }
    let r = w.poll(RULE).await;
    assert!(r.started.is_empty(), "{RULE}: {r:?}");
    assert_eq!(r.held.len(), 1, "{RULE}: {r:?}");
    assert_eq!(r.held[0].source, w.source.name(), "{RULE}");
    assert_eq!(r.held[0].count, 26, "{RULE}: {r:?}");
    for id in &ids {
        assert_eq!(w.runs_of(id).await, 0, "{RULE}: {id}");
    }
}

/// What one source needed to notice one termination in a large tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// People in the tenant.
    pub people: usize,
    /// Time of the first, full read (the initial sync).
    pub sync: Duration,
    /// Requests of a poll when nothing changed.
    pub idle_requests: usize,
    /// Time of the poll that reported the termination.
    pub detect: Duration,
    /// Requests of that poll.
    pub detect_requests: usize,
}

/// Hires `people`, reads them all once, polls once with nothing changed, terminates one
/// person and measures the poll that reports it. With a poll interval `i`, the time to
/// detect is at most `i + detect`.
///
/// # Panics
/// When the termination is not reported by the first poll after it.
pub async fn measure_detection<T: SourceTenant>(tenant: &T, people: usize, page: u32) -> Detection {
    const RULE: &str = "measure_detection";
    let ids: Vec<String> = (0..people)
        .map(|i| tenant.hire(&Hire::new(&format!("u{i:06}"))))
        .collect();
    let source = tenant.source(page);
    let t = Instant::now();
    let (_, cursor) = read_all(source.as_ref(), None, RULE).await;
    let sync = t.elapsed();
    let before = tenant.served();
    let (_, cursor) = read_all(source.as_ref(), Some(cursor), RULE).await;
    let idle_requests = tenant.served() - before;
    let leaver = &ids[people / 2];
    tenant.terminate(leaver, day(25));
    let before = tenant.served();
    let t = Instant::now();
    let (records, _) = read_all(source.as_ref(), Some(cursor), RULE).await;
    let detect = t.elapsed();
    assert!(
        records
            .iter()
            .any(|r| r.person.id.as_str() == leaver && r.lifecycle == Lifecycle::Past),
        "{RULE}: the termination is reported"
    );
    Detection {
        people,
        sync,
        idle_requests,
        detect,
        detect_requests: tenant.served() - before,
    }
}
