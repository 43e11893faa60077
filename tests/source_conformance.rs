//! The HR export feed (`offboard::source::hr::HrFeed`) against the source conformance suite:
//! the suite's first consumer, on an in-memory export served by a loader that can fail.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard::source::hr::{FeedLoader, HrFeed, HrFormat, Loaded};
use offboard::{Error, ErrorKind, Result, SourceOfTruth};
use offboard_testkit::suite::source::{Hire, SourceTenant, run_source_conformance};

#[derive(Debug, Clone)]
struct Row {
    hire: Hire,
    status: &'static str,
    termination: Option<NaiveDate>,
}

/// An HRMS export in memory: one row per employee, keyed by employee id.
#[derive(Debug, Default)]
struct Export {
    rows: Mutex<BTreeMap<String, Row>>,
    failing: AtomicUsize,
    served: AtomicUsize,
}

#[derive(Debug, Clone)]
struct ExportTenant(Arc<Export>);

#[async_trait]
impl FeedLoader for ExportTenant {
    fn location(&self) -> String {
        "memory:export.json".into()
    }

    async fn load(&self, _validator: Option<&str>) -> Result<Loaded> {
        let e = &self.0;
        e.served.fetch_add(1, Ordering::SeqCst);
        if e.failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(
                Error::new(ErrorKind::Unavailable, "the export is unavailable").retryable(),
            );
        }
        let rows = e.rows.lock().unwrap();
        let by_id: BTreeMap<&String, &Row> = rows.iter().collect();
        let body: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, r)| {
                let manager = r
                    .hire
                    .manager
                    .as_ref()
                    .and_then(|m| by_id.get(m))
                    .map(|m| m.hire.email.clone());
                serde_json::json!({
                    "employee_id": id,
                    "email": r.hire.email,
                    "name": r.hire.display_name(),
                    "status": r.status,
                    "termination_date": r.termination.map(|d| d.to_string()),
                    "manager_email": manager,
                })
            })
            .collect();
        Ok(Loaded::Content {
            body: serde_json::to_string(&body).unwrap(),
            validator: None,
        })
    }
}

#[async_trait]
impl SourceTenant for ExportTenant {
    async fn start() -> Self {
        Self(Arc::default())
    }

    fn source(&self, _page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(HrFeed::from_loader(
            "hr-export",
            Arc::new(self.clone()),
            HrFormat::Json,
        ))
    }

    fn incremental(&self) -> bool {
        false
    }

    fn hire(&self, hire: &Hire) -> String {
        let id = hire.employee_id.clone();
        self.0.rows.lock().unwrap().insert(
            id.clone(),
            Row {
                hire: hire.clone(),
                status: "active",
                termination: None,
            },
        );
        id
    }

    fn terminate(&self, id: &str, on: NaiveDate) {
        let mut rows = self.0.rows.lock().unwrap();
        let row = rows.get_mut(id).expect("hired");
        row.status = "terminated";
        row.termination = Some(on);
    }

    fn reinstate(&self, id: &str) {
        let mut rows = self.0.rows.lock().unwrap();
        let row = rows.get_mut(id).expect("hired");
        row.status = "active";
        row.termination = None;
    }

    fn remove(&self, id: &str) -> bool {
        self.0.rows.lock().unwrap().remove(id).is_some()
    }

    fn fail_next(&self, n: usize) {
        self.0.failing.store(n, Ordering::SeqCst);
    }

    fn served(&self) -> usize {
        self.0.served.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn the_hr_export_feed_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<ExportTenant>().await;
    assert_eq!(report.rules.len(), 7, "{report:?}");
}
