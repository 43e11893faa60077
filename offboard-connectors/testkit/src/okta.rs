//! Simulated Okta tenant (filled by the REST connectors issue).
