//! An HR feed: an HRMS export (CSV or JSON) read from a file, as a [`SourceOfTruth`].
//!
//! Columns (CSV header names, or JSON object keys; case-insensitive):
//!
//! | column | required | meaning |
//! | --- | --- | --- |
//! | `employee_id` (or `id`) | yes | the person's stable id |
//! | `email` | yes | primary email |
//! | `status` | yes | `active`, `current`, `employed`, `on_leave` → current; `terminated`, `inactive`, `past`, `leaver`, `offboarded` → past |
//! | `termination_date` | no | `YYYY-MM-DD` (midnight UTC) or RFC 3339 |
//! | `name` | no | display name |
//! | `manager_email` | no | the manager, who receives data |
//!
//! A JSON feed is an array of such objects. Each poll reads the whole export (a full scan) and
//! reports only what changed since the previous scan, whose digest and ids the cursor carries;
//! a person missing from the export is reported past ("no longer found").
//!
//! Loading is separate from parsing: a [`FeedLoader`] fetches the export ([`FileLoader`] here;
//! an HTTP loader with authentication and conditional requests lives in `offboard-http`), and
//! [`HrFeed`] parses and diffs it. A loader may answer [`Loaded::Unchanged`] to a validator it
//! gave before (an ETag), which costs nothing to diff.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Lifecycle, Manager, Person};

/// The feed's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HrFormat {
    /// Comma-separated with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// What a [`FeedLoader`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// The export is the one the validator describes (e.g. HTTP 304).
    Unchanged,
    /// The export's content.
    Content {
        /// The whole export, as text.
        body: String,
        /// An opaque token to pass to the next [`FeedLoader::load`] (ETag, Last-Modified), kept
        /// in the source's cursor.
        validator: Option<String>,
    },
}

/// Fetches an HR export for [`HrFeed`].
///
/// # Behavior
/// - `load(None)` always returns the content.
/// - `load(Some(v))` with a validator this loader returned earlier may return
///   [`Loaded::Unchanged`] when the export has not changed since; otherwise the content.
/// - Errors are clear about where the export is and never contain a credential.
#[async_trait]
pub trait FeedLoader: Send + Sync + fmt::Debug {
    /// Where the export comes from, for messages (a path, a URL without its query).
    fn location(&self) -> String;

    /// Loads the export.
    ///
    /// # Errors
    /// Retryable errors when the export cannot be reached; `InvalidInput` or `Vendor` when
    /// what was fetched is not an export.
    async fn load(&self, validator: Option<&str>) -> Result<Loaded>;
}

/// Reads an export from a file on every poll.
#[derive(Debug, Clone)]
pub struct FileLoader {
    path: PathBuf,
}

impl FileLoader {
    /// A loader of `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait]
impl FeedLoader for FileLoader {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn load(&self, _validator: Option<&str>) -> Result<Loaded> {
        let body = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot read {}: {e}", self.path.display()),
            )
            .retryable()
        })?;
        Ok(Loaded::Content {
            body,
            validator: None,
        })
    }
}

/// An HR export as a source of truth.
#[derive(Debug, Clone)]
pub struct HrFeed {
    name: String,
    loader: Arc<dyn FeedLoader>,
    format: HrFormat,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ScanState {
    /// Digest of each person's last reported record.
    records: BTreeMap<String, String>,
    /// The loader's validator of the export these digests describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    validator: Option<String>,
}

impl HrFeed {
    /// A feed named `name` (the cursor's key) read from the file `path`; the format follows
    /// the extension (`.json` → JSON, otherwise CSV).
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let format = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            HrFormat::Json
        } else {
            HrFormat::Csv
        };
        Self::from_loader(name, Arc::new(FileLoader::new(path)), format)
    }

    /// A feed named `name` fetched by `loader` (e.g. `offboard_http::HttpFeedLoader`).
    pub fn from_loader(
        name: impl Into<String>,
        loader: Arc<dyn FeedLoader>,
        format: HrFormat,
    ) -> Self {
        Self {
            name: name.into(),
            loader,
            format,
        }
    }

    /// The format the export is parsed as.
    pub fn format(&self) -> HrFormat {
        self.format
    }

    /// Forces a format.
    pub fn with_format(mut self, format: HrFormat) -> Self {
        self.format = format;
        self
    }

    /// Parses the feed's content into records.
    ///
    /// # Errors
    /// `InvalidInput` naming the row (1-based, header excluded) and column of the first bad
    /// value; a duplicate employee id is an error (never a guess between two rows).
    pub fn parse(&self, content: &str) -> Result<Vec<PersonRecord>> {
        let rows: Vec<BTreeMap<String, String>> = match self.format {
            HrFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .trim(csv::Trim::All)
                    .from_reader(content.as_bytes());
                let headers: Vec<String> = reader
                    .headers()
                    .map_err(|e| {
                        Error::invalid_input(format!("HR feed {}: header: {e}", self.name))
                    })?
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect();
                let mut rows = Vec::new();
                for (i, rec) in reader.records().enumerate() {
                    let rec = rec.map_err(|e| {
                        Error::invalid_input(format!("HR feed {} row {}: {e}", self.name, i + 1))
                    })?;
                    rows.push(
                        headers
                            .iter()
                            .cloned()
                            .zip(rec.iter().map(str::to_owned))
                            .collect(),
                    );
                }
                rows
            }
            HrFormat::Json => {
                let values: Vec<serde_json::Map<String, serde_json::Value>> =
                    serde_json::from_str(content).map_err(|e| {
                        Error::invalid_input(format!(
                            "HR feed {}: not a JSON array of objects: {e}",
                            self.name
                        ))
                    })?;
                values
                    .into_iter()
                    .map(|m| {
                        m.into_iter()
                            .map(|(k, v)| {
                                (
                                    k.to_ascii_lowercase(),
                                    v.as_str().map_or_else(
                                        || {
                                            if v.is_null() {
                                                String::new()
                                            } else {
                                                v.to_string()
                                            }
                                        },
                                        str::to_owned,
                                    ),
                                )
                            })
                            .collect()
                    })
                    .collect()
            }
        };
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let row_no = i + 1;
            let get = |k: &str| row.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
            let bad = |col: &str, msg: String| {
                Error::invalid_input(format!(
                    "HR feed {} row {row_no}, column `{col}`: {msg}",
                    self.name
                ))
            };
            let id = get("employee_id")
                .or_else(|| get("id"))
                .ok_or_else(|| bad("employee_id", "missing".into()))?;
            let email = get("email").ok_or_else(|| bad("email", "missing".into()))?;
            if !email.contains('@') || email.chars().any(char::is_control) {
                return Err(bad("email", format!("{email:?} is not an email address")));
            }
            let status = get("status").ok_or_else(|| bad("status", "missing".into()))?;
            let lifecycle = match status.to_ascii_lowercase().as_str() {
                "active" | "current" | "employed" | "on_leave" => Lifecycle::Current,
                "terminated" | "inactive" | "past" | "leaver" | "offboarded" => Lifecycle::Past,
                other => return Err(bad("status", format!("{other:?} is not a known status"))),
            };
            let termination_at = match get("termination_date") {
                None => None,
                Some(d) => Some(parse_date(d).ok_or_else(|| {
                    bad(
                        "termination_date",
                        format!("{d:?} is not YYYY-MM-DD or RFC 3339"),
                    )
                })?),
            };
            if !seen.insert(id.to_owned()) {
                return Err(bad("employee_id", format!("{id:?} appears twice")));
            }
            let mut person = Person::new(id, email);
            person.employee_id = Some(id.to_owned());
            if let Some(n) = get("name") {
                person.display_name = n.to_owned();
            }
            if let Some(m) = get("manager_email") {
                person.manager = Some(Manager {
                    id: None,
                    email: m.to_owned(),
                });
            }
            out.push(PersonRecord {
                person,
                lifecycle,
                termination_at,
            });
        }
        Ok(out)
    }
}

fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc())
}

fn digest(record: &PersonRecord) -> String {
    let json = serde_json::to_vec(record).expect("records serialise");
    hex::encode(&Sha256::digest(&json)[..12])
}

#[async_trait]
impl SourceOfTruth for HrFeed {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let previous: ScanState = Cursor::decode(cursor, &format!("HR feed {}", self.name))?;
        let loaded = self
            .loader
            .load(previous.validator.as_deref())
            .await
            .map_err(|e| {
                e.with_context("feed", &self.name)
                    .with_context("location", self.loader.location())
            })?;
        let (content, validator) = match loaded {
            Loaded::Content { body, validator } => (body, validator),
            // Nothing changed since the export these digests describe.
            Loaded::Unchanged if cursor.is_some() => {
                return Ok(ChangeBatch {
                    changes: Vec::new(),
                    next: cursor.cloned().expect("checked"),
                    more: false,
                });
            }
            Loaded::Unchanged => {
                return Err(Error::new(
                    ErrorKind::Vendor,
                    format!(
                        "HR feed {}: {} answered \"unchanged\" to a first load",
                        self.name,
                        self.loader.location()
                    ),
                ));
            }
        };
        let records = self.parse(&content)?;
        let mut next = ScanState {
            validator,
            ..ScanState::default()
        };
        let mut changes = Vec::new();
        for r in records {
            let d = digest(&r);
            if previous.records.get(r.person.id.as_str()) != Some(&d) {
                changes.push(r.clone());
            }
            next.records.insert(r.person.id.to_string(), d);
        }
        // People no longer in the export are past.
        for (id, _) in previous
            .records
            .iter()
            .filter(|(id, _)| !next.records.contains_key(*id))
        {
            changes.push(PersonRecord::gone(id));
        }
        Ok(ChangeBatch {
            changes,
            next: Cursor::encode(&next),
            more: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed() -> HrFeed {
        HrFeed::new("hr", "/nonexistent.csv")
    }

    #[test]
    fn parses_csv_rows() {
        let csv = "Employee_ID,Email,Status,Termination_Date,Name,Manager_Email\n\
                   e1, ada@example.com ,active,,Ada,boss@example.com\n\
                   e2,bob@example.com,Terminated,2026-11-30,,\n";
        let r = feed().parse(csv).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].person.email, "ada@example.com");
        assert_eq!(r[0].lifecycle, Lifecycle::Current);
        assert_eq!(
            r[0].person.manager.as_ref().unwrap().email,
            "boss@example.com"
        );
        assert_eq!(r[1].lifecycle, Lifecycle::Past);
        assert_eq!(
            r[1].termination_at.unwrap().to_rfc3339(),
            "2026-11-30T00:00:00+00:00"
        );
    }

    #[test]
    fn bad_rows_name_row_and_column() {
        let e = feed()
            .parse("employee_id,email,status\ne1,ada@example.com,fired-ish\n")
            .unwrap_err();
        assert!(e.to_string().contains("row 1, column `status`"), "{e}");
        let e = feed()
            .parse(
                "employee_id,email,status\ne1,ada@example.com,active\ne1,ada2@example.com,active\n",
            )
            .unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        let e = feed()
            .parse(
                "employee_id,email,status,termination_date\ne1,ada@example.com,past,30/11/2026\n",
            )
            .unwrap_err();
        assert!(e.to_string().contains("termination_date"), "{e}");
    }

    #[test]
    fn parses_json() {
        let f = HrFeed::new("hr", "x.json");
        let r = f.parse(r#"[{"id": "e1", "email": "ada@example.com", "status": "leaver", "termination_date": "2026-11-30T17:00:00Z"}]"#).unwrap();
        assert_eq!(r[0].lifecycle, Lifecycle::Past);
    }

    /// A loader serving a body with an ETag-like validator, counting loads.
    #[derive(Debug, Default)]
    struct Versioned {
        body: std::sync::Mutex<(String, u32)>,
        seen: std::sync::Mutex<Vec<Option<String>>>,
    }

    #[async_trait]
    impl FeedLoader for Versioned {
        fn location(&self) -> String {
            "memory".into()
        }
        async fn load(&self, validator: Option<&str>) -> Result<Loaded> {
            self.seen.lock().unwrap().push(validator.map(str::to_owned));
            let (body, version) = self.body.lock().unwrap().clone();
            let v = format!("v{version}");
            if validator == Some(v.as_str()) {
                return Ok(Loaded::Unchanged);
            }
            Ok(Loaded::Content {
                body,
                validator: Some(v),
            })
        }
    }

    #[tokio::test]
    async fn an_unchanged_export_is_not_parsed_again_and_keeps_the_cursor() {
        let loader = Arc::new(Versioned::default());
        *loader.body.lock().unwrap() = (
            "employee_id,email,status\ne1,ada@example.com,active\n".into(),
            1,
        );
        let f = HrFeed::from_loader("hr", loader.clone(), HrFormat::Csv);
        let b1 = f.changes(None).await.unwrap();
        assert_eq!(b1.changes.len(), 1);
        let b2 = f.changes(Some(&b1.next)).await.unwrap();
        assert!(b2.changes.is_empty());
        assert_eq!(b2.next, b1.next, "the cursor is kept as is");
        *loader.body.lock().unwrap() = (
            "employee_id,email,status\ne1,ada@example.com,terminated\n".into(),
            2,
        );
        let b3 = f.changes(Some(&b2.next)).await.unwrap();
        assert_eq!(b3.changes[0].lifecycle, Lifecycle::Past);
        assert_eq!(
            *loader.seen.lock().unwrap(),
            [None, Some("v1".to_owned()), Some("v1".to_owned())],
            "the validator of the last export is passed back"
        );
    }

    #[tokio::test]
    async fn a_missing_file_is_a_retryable_error_naming_the_feed() {
        let e = HrFeed::new("workday", "/nonexistent/offboard/export.csv")
            .changes(None)
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        let msg = e.to_string();
        assert!(
            msg.contains("workday") && msg.contains("/nonexistent/offboard/export.csv"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn reports_changes_and_removals_between_scans() {
        let dir = std::env::temp_dir().join(format!("offboard-hr-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("feed.csv");
        std::fs::write(
            &path,
            "employee_id,email,status\ne1,ada@example.com,active\ne2,bob@example.com,active\n",
        )
        .unwrap();
        let f = HrFeed::new("hr", &path);
        let b1 = f.changes(None).await.unwrap();
        assert_eq!(b1.changes.len(), 2);
        let b2 = f.changes(Some(&b1.next)).await.unwrap();
        assert!(b2.changes.is_empty(), "an unchanged file reports nothing");
        std::fs::write(
            &path,
            "employee_id,email,status\ne1,ada@example.com,terminated\n",
        )
        .unwrap();
        let b3 = f.changes(Some(&b2.next)).await.unwrap();
        let got: Vec<(&str, Lifecycle)> = b3
            .changes
            .iter()
            .map(|r| (r.person.id.as_str(), r.lifecycle))
            .collect();
        assert_eq!(got, [("e1", Lifecycle::Past), ("e2", Lifecycle::Past)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
