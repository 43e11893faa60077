//! The store conformance suite: plain async functions every [`Store`](super::Store) runs.
