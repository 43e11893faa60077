//! Simulated Jira Cloud site (filled by the delegation issue).
