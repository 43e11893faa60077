//! Which URLs may carry a credential: `https`, or plain `http` only where the configuration
//! explicitly allows it and only to this machine (loopback tests and simulators).

use std::fmt;
use std::net::IpAddr;

use offboard_core::{Error, Result, Secret};
use url::{Host, Url};

/// A client certificate and its private key, for vendors that require mutual TLS (ADP):
/// presented by an [`crate::HttpClient`] and a [`crate::ClientSecretCredentials`] built with
/// it. `Debug` shows neither.
#[derive(Clone)]
pub struct ClientIdentity(pub(crate) reqwest::Identity);

impl ClientIdentity {
    /// From PEM text holding the certificate (and its chain) and its private key (PKCS#8,
    /// PKCS#1 or SEC1).
    ///
    /// # Errors
    /// `Config` naming `client_identity` when the text holds no certificate and key.
    pub fn from_pem(pem: &Secret) -> Result<Self> {
        reqwest::Identity::from_pem(pem.expose().as_bytes())
            .map(Self)
            .map_err(|e| {
                Error::config(
                    "client_identity",
                    format!("not a certificate and private key in PEM: {e}"),
                )
            })
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIdentity([REDACTED])")
    }
}

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

    /// A throwaway self-signed test certificate (CN offboard-test-client) and its P-256 key,
    /// made for this test and used nowhere else.
    const TEST_IDENTITY: &str = "-----BEGIN CERTIFICATE-----\nMIIBlTCCATugAwIBAgIUdJyMPXzRXPad33eat4ZKy9uaWSgwCgYIKoZIzj0EAwIw\nHzEdMBsGA1UEAwwUb2ZmYm9hcmQtdGVzdC1jbGllbnQwIBcNMjYxMjA3MDA1MzUy\nWhgPMjEyNjExMTMwMDUzNTJaMB8xHTAbBgNVBAMMFG9mZmJvYXJkLXRlc3QtY2xp\nZW50MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEVExTEDS2UBA5JhjaupDZwR5s\nF0moFVvbtszC52NkLtgFdYMb01qR/gCYnj5OY6miMEdFmNExRaOXqTii/5EQjKNT\nMFEwHQYDVR0OBBYEFNDjO3oiD1wQcyVGoPH3Hk4dT3kXMB8GA1UdIwQYMBaAFNDj\nO3oiD1wQcyVGoPH3Hk4dT3kXMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID\nSAAwRQIhANZGGXX10kAR8YTov4P3pi6Rvz9FW+Owaha5AXpLIDbdAiAL4Y6kcRn4\nZ3r7Tds280JZpq2dBaRktuZs6RDlMMYX3A==\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgEARwM+FE0a5ny/Pu\n4Q9LibP+dX5nPASZSf1kow6Y0juhRANCAARUTFMQNLZQEDkmGNq6kNnBHmwXSagV\nW9u2zMLnY2Qu2AV1gxvTWpH+AJiePk5jqaIwR0WY0TFFo5epOKL/kRCM\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_client_identity_is_read_from_pem_and_never_shown() {
        let id = ClientIdentity::from_pem(&Secret::new(TEST_IDENTITY)).unwrap();
        assert_eq!(format!("{id:?}"), "ClientIdentity([REDACTED])");
        let cert_only = TEST_IDENTITY
            .split("-----BEGIN PRIVATE KEY-----")
            .next()
            .unwrap();
        for bad in ["", "not pem", cert_only] {
            let e = ClientIdentity::from_pem(&Secret::new(bad)).unwrap_err();
            assert!(e.to_string().contains("client_identity"), "{e}");
            assert!(!e.to_string().contains("BEGIN"), "{e}");
        }
        crate::HttpClient::builder("https://api.example.com")
            .token_provider(crate::StaticToken::bearer(Secret::new("t")))
            .client_identity(id.clone())
            .build()
            .unwrap();
        crate::ClientSecretCredentials::builder(
            "https://auth.example.com/t",
            "c",
            Secret::new("s"),
        )
        .client_identity(id)
        .build()
        .unwrap();
    }

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
