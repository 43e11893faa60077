//! Erasing a person ([`offboard_core::Store::erase_person`]), planned once for both SQL
//! dialects: what to rewrite and delete, from the person's runs as loaded and the
//! records naming them; each dialect's store runs the plan in one transaction.

use chrono::{DateTime, Utc};
use offboard_core::store::erasure::{self, RecordErasure};
use offboard_core::{Error, PersonId, Result, Run};

use crate::codec::{self, ts};

/// What erasing one person writes.
#[derive(Debug)]
pub(crate) struct ErasurePlan {
    /// The person's id (the runs' and accounts' `person_id`, the side table's `person_id`).
    pub(crate) person: String,
    /// The pseudonym their runs get.
    pub(crate) pseudonym: String,
    /// `finished_before`, as stored: a run update also requires `finished_at` before it.
    pub(crate) cutoff: String,
    /// Each run's id and pseudonymised body.
    pub(crate) runs: Vec<(String, String)>,
    /// Each task's id and pseudonymised body.
    pub(crate) tasks: Vec<(String, String)>,
    /// The records that are the person's, deleted: (namespace, key).
    pub(crate) records: Vec<(String, String)>,
    /// The records that name the person only in their value, redacted in place: (namespace,
    /// key, redacted value JSON).
    pub(crate) redactions: Vec<(String, String, String)>,
}

impl ErasurePlan {
    /// The plan for `person`, whose runs are `runs`, among delegates' records `records`
    /// (namespace, key, value JSON).
    ///
    /// # Errors
    /// `Conflict` ([`erasure::erasure_refused`]) when a run is open or finished at or after
    /// `finished_before`.
    pub(crate) fn new(
        person: &PersonId,
        finished_before: DateTime<Utc>,
        runs: &[Run],
        records: Vec<(String, String, String)>,
    ) -> Result<Self> {
        erasure::check_erasable(
            runs.iter()
                .map(|r| (r.id, !r.state.is_terminal(), r.finished_at)),
            finished_before,
        )?;
        let pseudonym = erasure::pseudonym();
        let mut plan = Self {
            person: person.to_string(),
            pseudonym: pseudonym.to_string(),
            cutoff: ts(finished_before),
            runs: Vec::with_capacity(runs.len()),
            tasks: Vec::new(),
            records: Vec::new(),
            redactions: Vec::new(),
        };
        for run in runs {
            let mut erased = erasure::pseudonymise_run(run, &pseudonym)?;
            for task in &erased.tasks {
                plan.tasks
                    .push((task.id.to_string(), codec::task_body(task)?));
            }
            plan.runs
                .push((run.id.to_string(), codec::run_body(&mut erased)?));
        }
        let needles = erasure::record_needles(person, runs);
        for (namespace, key, value) in records {
            let value: serde_json::Value = serde_json::from_str(&value).map_err(|e| {
                Error::storage(format!("record {namespace}/{key} is not JSON: {e}"))
            })?;
            match erasure::record_erasure(&key, &value, &needles) {
                Some(RecordErasure::Delete) => plan.records.push((namespace, key)),
                Some(RecordErasure::Redact(v)) => {
                    plan.redactions.push((namespace, key, v.to_string()));
                }
                None => {}
            }
        }
        Ok(plan)
    }

    /// The run ids.
    pub(crate) fn run_ids(&self) -> Vec<String> {
        self.runs.iter().map(|(id, _)| id.clone()).collect()
    }

    /// The task ids.
    pub(crate) fn task_ids(&self) -> Vec<String> {
        self.tasks.iter().map(|(id, _)| id.clone()).collect()
    }
}
