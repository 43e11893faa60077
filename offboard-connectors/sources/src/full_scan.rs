//! The one poll loop of a full-scan source: a page of the vendor's listing per call, kept in a
//! [`Scan`], people missing at the end read directly, managers completed last.

use async_trait::async_trait;
use offboard_core::Result;
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord};

use crate::scan::Scan;

/// The people a call lists at least before it returns, unless configured otherwise.
pub(crate) const DEFAULT_BATCH: usize = 5_000;

/// One page of a vendor's listing.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    /// The people on the page, as records. A manager may be known by id only (an empty
    /// email): [`Lister::complete`] fills in the address of those reported.
    pub(crate) records: Vec<PersonRecord>,
    /// Where the listing continues (the vendor's page token, offset or page number); `None`
    /// after the last page.
    pub(crate) next: Option<String>,
}

/// What a full-scan source tells [`changes`]: how to read a page, one person, and the rest of
/// a reported record.
#[async_trait]
pub(crate) trait Lister: Send + Sync {
    /// How many people one call lists at least, page by page, before it returns (its
    /// cursor is saved between calls: a large batch saves it less often, a crash repeats at
    /// most one batch). 1: one page a call.
    fn batch(&self) -> usize;

    /// The page at `at` (`None`: the first page).
    async fn page(&self, at: Option<&str>) -> Result<Listed>;

    /// One person by id, read directly; `None` when the vendor no longer finds them.
    async fn read(&self, id: &str) -> Result<Option<PersonRecord>>;

    /// Completes the records about to be reported (e.g. a manager's address read from the
    /// manager's record). Default: as they are.
    async fn complete(&self, records: Vec<PersonRecord>) -> Result<Vec<PersonRecord>> {
        Ok(records)
    }
}

/// One call of a full-scan source's [`SourceOfTruth::changes`](offboard_core::source::SourceOfTruth::changes):
/// reads pages from where the cursor's listing is until [`Lister::batch`] people are listed
/// or the listing ends, reports who is new or changed, and at the end
/// of the listing reads everyone last reported current who was not listed (`gone` when the
/// vendor no longer finds them). `name` names the source in errors.
///
/// # Errors
/// `InvalidInput` for a cursor that is not this kind's; the vendor's errors, with the cursor
/// left where it was (the same call repeats the page).
pub(crate) async fn changes<L: Lister>(
    lister: &L,
    name: &str,
    cursor: Option<&Cursor>,
) -> Result<ChangeBatch> {
    let op = format!("{name}.changes");
    let mut scan = Scan::load(cursor, name)?;
    let mut at = scan
        .next_page()
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let (mut changed, mut listed) = (Vec::new(), 0);
    let more = loop {
        let page = lister
            .page(at.as_deref())
            .await
            .map_err(|e| e.with_operation(op.clone()))?;
        listed += page.records.len();
        changed.extend(scan.listed(page.records));
        let Some(next) = page.next else {
            break false;
        };
        scan.continue_at(next.clone());
        if listed >= lister.batch() {
            break true;
        }
        at = Some(next);
    };
    if !more {
        for id in scan.missing() {
            let read = lister
                .read(&id)
                .await
                .map_err(|e| e.with_operation(op.clone()))?;
            changed.extend(scan.settle(&id, read));
        }
    }
    let changes = lister
        .complete(changed)
        .await
        .map_err(|e| e.with_operation(op.clone()))?;
    Ok(ChangeBatch {
        changes,
        next: scan.save(),
        more,
    })
}

/// `given family`, either part left out when empty: the display name of a person whose
/// vendor keeps the two names apart.
pub(crate) fn full_name(given: &str, family: &str) -> String {
    [given, family]
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A date (`YYYY-MM-DD`, or an RFC 3339 time whose date is taken) as midnight UTC; `None`
/// when empty or unreadable.
pub(crate) fn date(value: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    let v = value?.trim();
    let day = v.get(..10)?;
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_names() {
        assert_eq!(
            date(Some("2026-11-02")).map(|t| t.to_rfc3339()),
            Some("2026-11-02T00:00:00+00:00".into())
        );
        assert_eq!(
            date(Some("2026-11-02T17:00:00-08:00")).map(|t| t.date_naive().to_string()),
            Some("2026-11-02".into())
        );
        assert_eq!(date(Some("")), None);
        assert_eq!(date(Some("soon")), None);
        assert_eq!(date(None), None);
        assert_eq!(full_name("Ada", ""), "Ada");
        assert_eq!(full_name("Ada", "Tester"), "Ada Tester");
    }
}
