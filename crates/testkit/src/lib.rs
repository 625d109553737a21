//! Dev-only helpers for flagger-rs integration tests.
//!
//! Tests run against the local control plane (`cargo xtask testenv up --with-prometheus`, or simply
//! `cargo xtask test`, which starts it). Nothing here skips a test when the environment is missing: it fails
//! with a message that says how to start it.

pub mod hooks;
pub mod kube;
pub mod load;
pub mod operator;
pub mod prometheus;
pub mod testapp;

pub use crate::kube::{TestNamespace, apply_yaml, client, install_crds, wait_for};
