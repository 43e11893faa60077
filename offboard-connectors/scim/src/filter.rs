//! SCIM filter string literals (RFC 7644 §3.4.2.2: JSON strings in double quotes).

use offboard_core::{Error, Result};

/// The longest value put into a filter, in characters: longer than any login or email
/// (RFC 5321 caps an address at 254), so a huge "address" is refused before any request.
pub const MAX_FILTER_VALUE_CHARS: usize = 1024;

/// `value` as a SCIM filter string literal: in double quotes, `"` and `\` escaped.
///
/// # Errors
/// `InvalidInput` (not repeating the value) for a control character (NUL, CR, LF...), which no
/// login holds and some providers mis-parse, or a value longer than
/// [`MAX_FILTER_VALUE_CHARS`].
///
/// ```
/// use offboard_scim::quoted;
/// assert_eq!(quoted(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
/// assert!(quoted("a\u{0}b").is_err());
/// ```
pub fn quoted(value: &str) -> Result<String> {
    if value.chars().nth(MAX_FILTER_VALUE_CHARS).is_some() {
        return Err(Error::invalid_input(format!(
            "a value longer than {MAX_FILTER_VALUE_CHARS} characters cannot name a SCIM user"
        ))
        .fatal());
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid_input(
            "a value with a control character cannot be put in a SCIM filter safely",
        )
        .fatal());
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}
