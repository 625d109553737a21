//! Operator observability for flagger-rs: logging, Prometheus metrics and the operator's HTTP endpoints.
//!
//! * [`logging`]: `tracing` initialisation. JSON lines shaped like Flagger's zap JSON (`level`, `ts`,
//!   `caller`, `msg`, then the fields of the enclosing spans and of the event, flattened), or plain text;
//!   the level can be changed at runtime through [`logging::LogHandle`].
//! * [`metrics`]: [`metrics::OperatorMetrics`], Flagger's `flagger_*` metrics with their exact names,
//!   types and labels, plus a few `flagger_rs_*` metrics of our own.
//! * [`process`]: Go-style `process_*` metrics read from `/proc`.
//! * [`http`]: the axum router serving `/metrics`, `/healthz` and `/readyz`.

pub mod http;
pub mod logging;
pub mod metrics;
pub mod process;

pub use http::{Readiness, router, serve};
pub use logging::{LogFormat, LogHandle, LogLevel, canary_span};
pub use metrics::{AnalysisStatus, DeploymentStrategy, OperatorMetrics};
