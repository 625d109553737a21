//! The `kubernetes` provider: no routing objects. The apex Service always selects the primary's pods, so
//! traffic moves to a new revision only when it is promoted (blue/green).

use flagger_api::Canary;
use flagger_core::machine::Routes;

/// Flagger's no-op router reports all traffic on the canary once blue/green iterations started, and on
/// the primary otherwise.
pub fn get_routes(canary: &Canary) -> Routes {
    let iterations = canary.status.as_ref().map_or(0, |s| s.iterations());
    if iterations > 0 {
        Routes {
            primary: 0,
            canary: 100,
            mirrored: false,
        }
    } else {
        Routes::PRIMARY
    }
}
