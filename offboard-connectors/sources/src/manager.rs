//! Managers known by the vendor's id only: each reported record's manager email, read once
//! per manager per call.

use std::collections::HashMap;
use std::future::Future;

use offboard_core::source::PersonRecord;
use offboard_core::{ErrorKind, Manager, PersonId, Result};

/// Fills in the email of each record's manager, whose id the record carries
/// (`Manager { id, email: "" }`), with `read(id)`: the manager's email, `None` when the vendor
/// no longer finds them. A manager id the vendor refuses (or that cannot be a path segment:
/// `InvalidInput`) names nobody; a manager without an email is left out.
///
/// # Errors
/// What `read` returns, but `InvalidInput`.
pub(crate) async fn fill<F, Fut>(records: &mut [PersonRecord], read: F) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<String>>>,
{
    let mut known: HashMap<String, Option<String>> = HashMap::new();
    for record in records.iter_mut() {
        let Some(id) = record
            .person
            .manager
            .as_ref()
            .and_then(|m| m.id.as_ref())
            .map(|id| id.as_str().to_owned())
        else {
            continue;
        };
        if !known.contains_key(&id) {
            let email = match read(id.clone()).await {
                Err(e) if e.kind() == ErrorKind::InvalidInput => None,
                other => other?,
            };
            known.insert(id.clone(), email.filter(|e| !e.is_empty()));
        }
        record.person.manager = known[&id].clone().map(|email| Manager {
            id: Some(PersonId::new(id.as_str())),
            email,
        });
    }
    Ok(())
}

/// A manager known by id only, as a record carries them until [`fill`] reads the email.
pub(crate) fn by_id(id: Option<&str>) -> Option<Manager> {
    id.filter(|id| !id.is_empty()).map(|id| Manager {
        id: Some(PersonId::new(id)),
        email: String::new(),
    })
}
