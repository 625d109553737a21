//! MetricTemplate providers, and the dispatch from `MetricTemplate.spec.provider.type` to one of them
//! (Flagger's `providers.Factory`).
//!
//! [`AnyProvider::new`] builds the provider a template names; [`ProviderKey`] identifies a built provider's
//! configuration so callers can keep one client per configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::prometheus::{PrometheusConfig, PrometheusProvider};
use crate::provider::{MetricProvider, ProviderError, ProviderInit};

/// Every provider type Flagger 1.44 knows (`MetricTemplate.spec.provider.type`).
pub const KNOWN_TYPES: [&str; 11] = [
    "prometheus",
    "influxdb",
    "datadog",
    "externalmetrics",
    "stackdriver",
    "cloudwatch",
    "newrelic",
    "graphite",
    "dynatrace",
    "keptn",
    "splunk",
];

/// Whether a template of type `type_` is queried as Prometheus although it names another type: Flagger's
/// factory falls back to Prometheus for any type it does not know (callers log a warning).
pub fn falls_back_to_prometheus(type_: &str) -> bool {
    !KNOWN_TYPES.contains(&type_)
}

/// One provider of any type, implementing [`MetricProvider`] by delegation.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyProvider {
    /// `prometheus`, and unknown types.
    Prometheus(PrometheusProvider),
}

impl AnyProvider {
    /// Builds the provider `init.provider.type_` names. A type Flagger does not know is built as Prometheus
    /// (see [`falls_back_to_prometheus`]). A known type this build cannot query is an error.
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        match init.provider.type_.as_str() {
            "prometheus" => prometheus(init),
            other if falls_back_to_prometheus(other) => prometheus(init),
            other => Err(ProviderError::Config {
                provider: known_type(other),
                message: format!("the {other} metric provider is not available in this build of flagger-rs"),
            }),
        }
    }
}

fn prometheus(init: &ProviderInit<'_>) -> Result<AnyProvider, ProviderError> {
    let config = PrometheusConfig::from_template(init.provider, Some(init.credentials))?;
    Ok(AnyProvider::Prometheus(PrometheusProvider::new(config)?))
}

/// The `&'static` spelling of a known type.
fn known_type(type_: &str) -> &'static str {
    KNOWN_TYPES
        .iter()
        .find(|t| **t == type_)
        .copied()
        .unwrap_or("prometheus")
}

impl MetricProvider for AnyProvider {
    fn kind(&self) -> &'static str {
        match self {
            Self::Prometheus(p) => p.kind(),
        }
    }

    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        match self {
            Self::Prometheus(p) => p.run_query(query).await,
        }
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        match self {
            Self::Prometheus(p) => p.is_online().await,
        }
    }
}

/// Everything a provider is built from except the API client: equal keys build equal providers, so a
/// caller can keep one [`AnyProvider`] per key (the credentials are part of the key, so a rotated Secret
/// builds a new client).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProviderKey {
    type_: String,
    address: Option<String>,
    headers: Option<BTreeMap<String, Vec<String>>>,
    has_secret_ref: bool,
    region: Option<String>,
    insecure_skip_verify: bool,
    credentials: BTreeMap<String, Vec<u8>>,
    interval: Duration,
}

impl ProviderKey {
    /// The key of what `init` builds.
    pub fn of(init: &ProviderInit<'_>) -> Self {
        let p = init.provider;
        Self {
            type_: p.type_.clone(),
            address: p.address.clone(),
            headers: p.headers.clone(),
            has_secret_ref: p.secret_ref.is_some(),
            region: p.region.clone(),
            insecure_skip_verify: p.insecure_skip_verify(),
            credentials: init.credentials.clone(),
            interval: init.interval,
        }
    }
}

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKey")
            .field("type", &self.type_)
            .field("address", &self.address)
            .field("credential_keys", &self.credentials.keys().collect::<Vec<_>>())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}
