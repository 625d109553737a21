//! Alerts to the canary's AlertProviders or the global notifier. Being written.

use flagger_api::Canary;

use crate::cache::Caches;

/// Sends alerts in the background.
#[derive(Clone, Default)]
pub struct Alerts {}

impl Alerts {
    /// Sends `alert` for `canary`.
    pub async fn send(&self, canary: &Canary, alert: &flagger_core::machine::Alert, _caches: &Caches) {
        tracing::info!(canary = %canary.metadata.name.as_deref().unwrap_or_default(), "alert: {}", alert.message);
    }
}
