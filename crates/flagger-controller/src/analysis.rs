//! The metric checks of an analysis tick. Being written.

use flagger_api::Canary;
use flagger_core::machine::MetricsOutcome;

use crate::cache::Caches;

/// Runs metric checks.
#[derive(Clone, Default)]
pub struct Analysis {}

impl Analysis {
    /// Whether the metric providers of `canary` answer (`Action::CheckMetricProviders`); `Err` carries the
    /// text for the event `Error checking metric providers: <text>`.
    pub async fn check_providers(&self, _canary: &Canary, _caches: &Caches) -> Result<(), String> {
        Ok(())
    }

    /// Runs the builtin then the template checks of `canary`, stopping at the first failure.
    pub async fn run(&self, canary: &Canary, _caches: &Caches) -> MetricsOutcome {
        let none = canary
            .analysis()
            .is_none_or(|a| a.metrics.as_ref().is_none_or(Vec::is_empty));
        MetricsOutcome {
            passed: none,
            events: Vec::new(),
        }
    }
}
