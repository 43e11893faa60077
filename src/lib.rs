//! offboard: take a departing person's access away everywhere, provably.
//!
//! This facade re-exports [`offboard_core`].
#![forbid(unsafe_code)]

pub use offboard_core::*;
