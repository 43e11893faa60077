//! Distinguished-name helpers (RFC 4514 aware: an escaped `\,` does not split).

/// Splits a DN at its first unescaped comma: `(rdn, parent)`. The parent is empty for a
/// single-component DN.
pub(crate) fn split_first(dn: &str) -> (&str, &str) {
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' => return (dn[..i].trim(), dn[i + 1..].trim()),
            _ => i += 1,
        }
    }
    (dn.trim(), "")
}

/// The parent DN.
pub(crate) fn parent(dn: &str) -> &str {
    split_first(dn).1
}

/// The first RDN.
pub(crate) fn rdn(dn: &str) -> &str {
    split_first(dn).0
}

/// A comparable form: components trimmed, ASCII case folded (AD compares DNs case-insensitively).
pub(crate) fn normalize(dn: &str) -> String {
    let mut out = Vec::new();
    let mut rest = dn;
    while !rest.is_empty() {
        let (first, tail) = split_first(rest);
        let normalized = match first.split_once('=') {
            Some((t, v)) => format!("{}={}", t.trim(), v.trim()),
            None => first.to_owned(),
        };
        out.push(normalized.to_ascii_lowercase());
        rest = tail;
    }
    out.join(",")
}

/// Whether two DNs name the same entry.
pub(crate) fn same(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

/// Whether `dn` equals `base` or lies beneath it.
pub(crate) fn is_within(dn: &str, base: &str) -> bool {
    let (dn, base) = (normalize(dn), normalize(base));
    dn == base || dn.ends_with(&format!(",{base}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_unescaped_commas() {
        assert_eq!(
            split_first("CN=Smith\\, John,OU=Staff,DC=x"),
            ("CN=Smith\\, John", "OU=Staff,DC=x")
        );
        assert_eq!(parent("DC=x"), "");
        assert_eq!(rdn("CN=a\\\\,OU=b"), "CN=a\\\\");
        assert!(same("cn=A, ou=Staff,DC=x", "CN=a,OU=staff,dc=X"));
        assert!(is_within("OU=Disabled Users,DC=x,DC=test", "dc=x,dc=test"));
        assert!(!is_within("OU=a,DC=xx,DC=test", "DC=x,DC=test"));
    }
}
