//! SMI TrafficSplit router (`linkerd`, `osm`, `smi:*`). Being written.

use flagger_core::machine::Routes;
use flagger_core::provider::MeshProvider;

use super::{RouteCx, RouterError};

/// The SMI router of one TrafficSplit API version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmiRouter {
    provider: MeshProvider,
}

impl SmiRouter {
    /// The router for `linkerd`, `osm` or `smi:<version>[:<mesh>]`.
    pub fn for_provider(provider: &MeshProvider) -> Self {
        Self {
            provider: provider.clone(),
        }
    }

    fn unavailable(&self) -> RouterError {
        RouterError::Unsupported(format!("{:?}", self.provider).to_lowercase())
    }

    /// Creates or updates the TrafficSplit.
    pub async fn reconcile(&self, _cx: &RouteCx<'_>) -> Result<(), RouterError> {
        Err(self.unavailable())
    }

    /// Reads the weights.
    pub async fn get_routes(&self, _cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        Err(self.unavailable())
    }

    /// Writes the weights.
    pub async fn set_routes(&self, _cx: &RouteCx<'_>, _routes: Routes) -> Result<(), RouterError> {
        Err(self.unavailable())
    }

    /// Nothing to restore.
    pub async fn finalize(&self, _cx: &RouteCx<'_>) -> Result<(), RouterError> {
        Ok(())
    }
}
