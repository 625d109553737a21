//! The `kubernetes` provider: no routing objects. The apex Service always selects the primary's pods, so
//! traffic moves to a new revision only when it is promoted (blue/green).

use flagger_api::Canary;
use flagger_core::machine::{Routes, kubernetes_routes};

/// Flagger's no-op router reports all traffic on the canary once blue/green iterations started, and on
/// the primary otherwise.
pub fn get_routes(canary: &Canary) -> Routes {
    kubernetes_routes(canary.status.as_ref())
}
