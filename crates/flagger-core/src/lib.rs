//! Pure logic of flagger-rs. Nothing in this crate performs I/O.
//!
//! - [`duration`]: Go duration strings, parsed exactly as Flagger parses them.
//! - [`provider`]: provider names (traffic, metric and alert providers) with Flagger's matching rules.

pub mod duration;
pub mod provider;
