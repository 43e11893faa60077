//! Which URLs may carry a credential: `https`, or plain `http` only where the configuration
//! explicitly allows it and only to this machine (loopback tests and simulators).

use std::net::IpAddr;

use offboard_core::{Error, Result};
use url::{Host, Url};

/// Refuses a URL a token (or another capability) must not travel to.
///
/// # Behavior
/// - `https` passes.
/// - `http` passes only when `allow_plain_http` is set **and** the host is a loopback address
///   (`127.0.0.0/8`, `::1`) or `localhost`: a test or a simulator on this machine. Anywhere
///   else a token would cross the network in clear, so it is refused even when allowed.
/// - Any other scheme is refused.
///
/// # Errors
/// `Config` naming `key`.
///
/// # Example
/// ```
/// use offboard_http::require_https;
/// let ok = |u: &str, allow| require_https(&u.parse().unwrap(), "base_url", allow).is_ok();
/// assert!(ok("https://example.okta.com", false));
/// assert!(!ok("http://example.okta.com", false));
/// assert!(!ok("http://example.okta.com", true), "never in clear beyond this machine");
/// assert!(ok("http://127.0.0.1:8080", true));
/// assert!(!ok("http://127.0.0.1:8080", false));
/// ```
pub fn require_https(url: &Url, key: &str, allow_plain_http: bool) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_plain_http && is_loopback(url) => Ok(()),
        "http" if allow_plain_http => Err(Error::config(
            key,
            "plain http is allowed only to this machine (a loopback address or localhost); \
             use https",
        )),
        "http" => Err(Error::config(
            key,
            "plain http would send credentials in clear: use https (tests and simulators on \
             loopback set allow_plain_http)",
        )),
        _ => Err(Error::config(key, "must be an https URL")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(u: &str, allow: bool) -> Result<()> {
        require_https(&u.parse().unwrap(), "base_url", allow)
    }

    #[test]
    fn https_always_plain_http_only_to_loopback_when_allowed() {
        for u in ["https://x.example", "https://127.0.0.1"] {
            check(u, false).unwrap();
            check(u, true).unwrap();
        }
        for u in [
            "http://127.0.0.1:1",
            "http://127.8.0.1",
            "http://[::1]:80",
            "http://localhost:9",
        ] {
            assert!(check(u, false).is_err(), "{u} refused unless allowed");
            check(u, true).unwrap();
        }
        for u in [
            "http://example.okta.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://[::ffff:127.0.0.1]",
            "ftp://127.0.0.1",
        ] {
            let e = check(u, true).unwrap_err();
            assert_eq!(e.kind(), offboard_core::ErrorKind::Config, "{u}");
            assert!(
                e.context().any(|(k, v)| k == "key" && v == "base_url"),
                "{u}"
            );
        }
    }
}
