//! The flagger-rs operator: it watches Canaries and drives each one through Flagger's release state
//! machine.
//!
//! Each reconcile is **observe → decide → act**:
//!
//! - [`observe`] reads the Canary, its target and primary workloads and its routes from the watch caches
//!   ([`cache`]) — no GET per tick — and computes the revision hash and readiness;
//! - `flagger_core::machine::decide` (pure) says which webhook or metric check to run next, and finally
//!   the plan: routes, scaling, promotion, status, events, alerts and when to look again;
//! - [`act`] applies the plan in order, every write gated on leadership ([`gate`]) and named by its
//!   field manager.
//!
//! The next tick of a canary is derived from its status (`status.lastTickTime` + the analysis interval)
//! and scheduled as a requeue; there is no timer per canary, and an idle canary is not requeued at all.

pub mod act;
pub mod alerts;
pub mod analysis;
pub mod cache;
pub mod config;
pub mod configs;
pub mod context;
pub mod controller;
pub mod events;
pub mod finalizer;
pub mod gate;
pub mod hooks;
pub mod knative;
pub mod observe;
pub mod reconcile;
pub mod router;
pub mod scaler;
pub mod workload;

pub use config::ControllerConfig;
pub use controller::{RunError, Runtime, run};
