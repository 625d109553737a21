//! Metric analysis for flagger-rs (Flagger 1.44 §4):
//!
//! - [`builtin`]: the builtin `request-success-rate` and `request-duration` queries of every mesh/ingress
//!   observer, and how a canary selects its observer;
//! - [`template`]: rendering of MetricTemplate and inline queries (`{{ namespace }}`, `{{ variables.x }}`, ...);
//! - [`provider`]: the [`MetricProvider`](provider::MetricProvider) trait and its typed errors;
//! - [`prometheus`]: the Prometheus provider;
//! - [`providers`]: the other MetricTemplate providers and the dispatch by provider type ([`AnyProvider`]);
//! - [`outcome`]: the classification of a check as Pass, Fail, NoData or Error, with Flagger's Event text.
//!
//! Nothing here reads Kubernetes objects: callers pass the Canary, the MetricTemplate and Secret data in.

pub mod builtin;
pub mod gofmt;
pub mod outcome;
pub mod prometheus;
pub mod provider;
pub mod providers;
pub mod template;

pub use builtin::{BuiltinMetric, Observer, metrics_provider_key};
pub use outcome::{Check, CheckError, CheckKind, Outcome, Verdict, evaluate, plan};
pub use prometheus::{PrometheusAuth, PrometheusConfig, PrometheusProvider};
pub use provider::{MetricProvider, ProviderError, ProviderInit};
pub use providers::{AnyProvider, ProviderKey};
pub use template::{MetricModel, RenderError, render};
