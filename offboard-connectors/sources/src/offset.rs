//! The full scan of a vendor that pages by offset (JumpCloud's `skip`, SailPoint's `offset`):
//! one page per call, the offset in the cursor, the unlisted read directly at the end.

use async_trait::async_trait;
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord};
use offboard_core::{Error, Result};

use crate::manager;
use crate::scan::Scan;

/// A vendor's person list, paged by offset. Records carry their manager by id only
/// ([`manager::by_id`]); [`changes`] reads the managers' emails.
#[async_trait]
pub(crate) trait OffsetList: Sync {
    /// The source's name (errors and cursors).
    fn source(&self) -> &str;

    /// People per page.
    fn page_size(&self) -> u32;

    /// The page at `offset`, and how many people the vendor counts, when it says.
    async fn list(&self, offset: u64) -> Result<(Vec<PersonRecord>, Option<u64>)>;

    /// One person read directly; `None` when the vendor no longer finds them.
    async fn read(&self, id: &str) -> Result<Option<PersonRecord>>;
}

/// One page of the scan `cursor` holds (see [`Scan`]): who on it is new or changed; at the
/// end of the listing (a short page, or the vendor's count reached), also who is missing
/// (read directly: reported gone when not found). `more` while pages remain.
///
/// # Errors
/// `InvalidInput` for a cursor that is not the source's; the vendor's errors (the cursor is
/// not advanced).
pub(crate) async fn changes<L: OffsetList>(
    list: &L,
    cursor: Option<&Cursor>,
) -> Result<ChangeBatch> {
    let name = list.source();
    let mut scan = Scan::load(cursor, name)?;
    let offset: u64 = match scan.next_page() {
        None => 0,
        Some(at) => at.parse().map_err(|_| {
            Error::invalid_input(format!("{name}: the cursor is not ours: offset {at:?}"))
        })?,
    };
    let (records, total) = list.list(offset).await?;
    let listed = records.len() as u64;
    let mut changes = scan.listed(records);
    let next = offset + listed;
    let complete = listed < u64::from(list.page_size()) || total.is_some_and(|total| next >= total);
    scan.continue_at(next.to_string());
    if complete {
        for id in scan.missing() {
            let read = list.read(&id).await?;
            changes.extend(scan.settle(&id, read));
        }
    }
    manager::fill(&mut changes, |id| async move {
        Ok(list.read(&id).await?.map(|m| m.person.email))
    })
    .await?;
    Ok(ChangeBatch {
        changes,
        next: scan.save(),
        more: !complete,
    })
}
