//! Release scenarios on the local control plane: each test starts its own operator process (`flagger run
//! -namespace=<its namespace>`), so they run in parallel in this one test binary. Analysis intervals are
//! Flagger's minimum (10s), so a release takes one to two minutes.
#![allow(dead_code, clippy::unwrap_used)]

mod alerts;
mod analysis;
mod appmesh;
mod autoscalers;
mod blue_green;
mod configs;
mod crash;
mod daemonset;
mod finalizer;
mod gates;
mod gatewayapi;
mod istio;
mod knative;
mod leader;
mod loadtester;
mod migration;
mod problems;
mod progressive;
mod revision;
mod rollback;
mod routers;
mod service_target;
mod smi_support;
mod support;
