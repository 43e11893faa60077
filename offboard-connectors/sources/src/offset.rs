//! The full scan of a vendor that pages by offset (JumpCloud's `skip`, SailPoint's `offset`):
//! the offset in the cursor, run by the one full-scan loop ([`full_scan::changes`]: up to a
//! batch of people a call, the unlisted read directly at the end, managers completed last).

use async_trait::async_trait;
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord};
use offboard_core::{Error, Result};

use crate::full_scan::{self, Listed, Lister};
use crate::manager;

/// A vendor's person list, paged by offset. Records carry their manager by id only
/// ([`manager::by_id`]); [`changes`] reads the managers' emails.
#[async_trait]
pub(crate) trait OffsetList: Sync {
    /// The source's name (errors and cursors).
    fn source(&self) -> &str;

    /// People per page.
    fn page_size(&self) -> u32;

    /// People a call lists at least, page by page, before it returns (1: one page a call).
    fn batch(&self) -> usize;

    /// The page at `offset`, and how many people the vendor counts, when it says.
    async fn list(&self, offset: u64) -> Result<(Vec<PersonRecord>, Option<u64>)>;

    /// One person read directly; `None` when the vendor no longer finds them.
    async fn read(&self, id: &str) -> Result<Option<PersonRecord>>;
}

/// An [`OffsetList`] as the full-scan loop reads it.
struct Offsets<'a, L>(&'a L);

#[async_trait]
impl<L: OffsetList> Lister for Offsets<'_, L> {
    fn batch(&self) -> usize {
        self.0.batch()
    }

    async fn page(&self, at: Option<&str>) -> Result<Listed> {
        let offset: u64 = match at {
            None => 0,
            Some(at) => at.parse().map_err(|_| {
                Error::invalid_input(format!(
                    "{}: the cursor is not ours: offset {at:?}",
                    self.0.source()
                ))
            })?,
        };
        let (records, total) = self.0.list(offset).await?;
        let listed = records.len() as u64;
        let next = offset + listed;
        // The listing ends at a short page, or where the vendor's count says.
        let last = listed < u64::from(self.0.page_size()) || total.is_some_and(|t| next >= t);
        Ok(Listed {
            records,
            next: (!last).then(|| next.to_string()),
        })
    }

    async fn read(&self, id: &str) -> Result<Option<PersonRecord>> {
        self.0.read(id).await
    }

    async fn complete(&self, mut records: Vec<PersonRecord>) -> Result<Vec<PersonRecord>> {
        manager::fill(&mut records, |id| async move {
            Ok(self.0.read(&id).await?.map(|m| m.person.email))
        })
        .await?;
        Ok(records)
    }
}

/// Up to a batch of the scan `cursor` holds (see [`Scan`](crate::scan::Scan)): who is new or
/// changed; at the end of the listing (a short page, or the vendor's count reached), also who
/// is missing (read directly: reported gone when not found). `more` while pages remain.
///
/// # Errors
/// `InvalidInput` for a cursor that is not the source's; the vendor's errors (the cursor is
/// not advanced).
pub(crate) async fn changes<L: OffsetList>(
    list: &L,
    cursor: Option<&Cursor>,
) -> Result<ChangeBatch> {
    full_scan::changes(&Offsets(list), list.source(), cursor).await
}
