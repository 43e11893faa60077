//! Checks every source's own tests share.

use offboard_core::ErrorKind;
use offboard_core::source::Cursor;
use offboard_testkit::suite::source::SourceTenant;

/// A cursor the source did not write (not JSON, another shape, a field of the wrong type) is
/// refused as `InvalidInput` before anything is sent.
pub(crate) async fn foreign_cursors_are_refused<T: SourceTenant>(tenant: &T) {
    let source = tenant.source(10);
    let before = tenant.served();
    for garbage in ["not json", "[1,2]", r#"{"known": 5}"#] {
        let e = source
            .changes(Some(&Cursor(garbage.into())))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{garbage}: {e}");
    }
    assert_eq!(tenant.served(), before, "nothing sent");
}
