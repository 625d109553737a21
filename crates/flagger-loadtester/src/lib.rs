//! flagger-rs's load tester: a drop-in replacement for Flagger's `flagger-loadtester` (Flagger 1.44,
//! load tester 0.38.0). See the crate's README for the flags, endpoints, task types, gate stores and the
//! differences from Flagger's.
//!
//! * [`server`]: the HTTP API (`/`, `/healthz`, `/metrics`, `/gate/*`, `/rollback/*`) and
//!   [`LoadTester`], the handle to a running instance (used by the binary and by tests).
//! * [`tasks`]: the task types run by `POST /` (`cmd`, `bash`, `helm`/`helmv3`, `kubectl`, `concord`,
//!   `ngrinder`).
//! * [`hey`]: the built-in, hey-compatible load generator behind `cmd: "hey ..."`.
//! * [`gate`]: gate storage, in memory (Flagger's) or in a ConfigMap (survives restarts, shared by
//!   replicas).
//! * [`cli`]: the command line.

pub mod cli;
pub mod gate;
pub mod hey;
pub mod metrics;
pub mod payload;
pub mod server;
pub mod tasks;

pub use gate::GateStore;
pub use server::{Config, LoadTester};

/// The version of Flagger's load tester this one replaces.
pub const FLAGGER_LOADTESTER_VERSION: &str = "0.38.0";
