//! The interface every metric provider implements, and its typed errors.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use flagger_api::MetricTemplateProvider;

/// A metrics backend that turns a query into one number: Flagger's `providers.Interface`.
pub trait MetricProvider {
    /// The provider's type, as in `MetricTemplate.spec.provider.type` (e.g. `prometheus`).
    fn kind(&self) -> &'static str;

    /// Runs `query` and returns its single value.
    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send;

    /// Checks that the provider answers (Prometheus: `vector(1)` must return 1).
    fn is_online(&self) -> impl Future<Output = Result<(), ProviderError>> + Send;
}

/// What a MetricTemplate provider is built from. Every provider module has
/// `pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError>`.
#[derive(Clone, Copy)]
pub struct ProviderInit<'a> {
    /// `MetricTemplate.spec.provider`.
    pub provider: &'a MetricTemplateProvider,
    /// The data of `provider.secretRef` (empty without one).
    pub credentials: &'a BTreeMap<String, Vec<u8>>,
    /// The metric's interval (`analysis.metrics[].interval`, default 1m): the time window of providers
    /// whose query does not carry one (Datadog, New Relic, Dynatrace, CloudWatch, Splunk).
    pub interval: Duration,
    /// The operator's API client, for the providers that query Kubernetes (externalmetrics, keptn).
    pub kube: Option<&'a kube::Client>,
}

impl std::fmt::Debug for ProviderInit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderInit")
            .field("provider", &self.provider.type_)
            .field("address", &self.provider.address)
            .field("credential_keys", &self.credentials.keys().collect::<Vec<_>>())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// Why a query returned no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoDataReason {
    /// The result had no series or points.
    Empty,
    /// The (last) value was NaN, e.g. a ratio of two zero rates.
    NaN,
}

impl std::fmt::Display for NoDataReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Empty => "the result is empty",
            Self::NaN => "the value is NaN",
        })
    }
}

/// A failed query or provider set-up. Every message names the provider and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The query ran but returned nothing usable (Flagger's `ErrNoValuesFound`).
    #[error("{provider}: no values found ({reason})")]
    NoValues {
        /// Provider type.
        provider: &'static str,
        /// What the result looked like.
        reason: NoDataReason,
    },
    /// The query returned a range vector (Flagger's `ErrMultipleValuesReturned`).
    #[error("{provider}: query returned multiple values ({detail})")]
    MultipleValues {
        /// Provider type.
        provider: &'static str,
        /// What was returned.
        detail: String,
    },
    /// The configured address is not a usable URL.
    #[error("{provider} address {address:?} is not a valid URL: {reason}")]
    InvalidAddress {
        /// Provider type.
        provider: &'static str,
        /// The address as configured.
        address: String,
        /// Why it is not usable.
        reason: String,
    },
    /// The credentials Secret lacks a required key.
    #[error("{provider} credentials does not contain a {key}")]
    MissingCredential {
        /// Provider type.
        provider: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// The template or its credentials cannot build the provider. `message` is Flagger's text for it, which
    /// names the provider (e.g. `datadog credentials does not contain datadog_api_key`).
    #[error("{message}")]
    Config {
        /// Provider type.
        provider: &'static str,
        /// What is wrong, in Flagger's words.
        message: String,
    },
    /// A configured header name or value is not valid HTTP.
    #[error("{provider}: invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// Provider type.
        provider: &'static str,
        /// Header name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("{provider}: cannot build the HTTP client: {reason}")]
    Client {
        /// Provider type.
        provider: &'static str,
        /// Why.
        reason: String,
    },
    /// The request did not complete (connection refused, timeout, TLS).
    #[error("{provider}: request to {url} failed: {reason}")]
    Request {
        /// Provider type.
        provider: &'static str,
        /// Requested URL without the query string.
        url: String,
        /// The transport error with its causes.
        reason: String,
    },
    /// The provider answered with an HTTP error status.
    #[error("{provider}: error response: Status {status} {status_text}: {body}")]
    Status {
        /// Provider type.
        provider: &'static str,
        /// HTTP status code.
        status: u16,
        /// Its canonical reason phrase.
        status_text: String,
        /// The response body (truncated).
        body: String,
    },
    /// The response body is not what the provider's API documents.
    #[error("{provider}: cannot parse the response: {detail}: {body:?}")]
    Parse {
        /// Provider type.
        provider: &'static str,
        /// What was wrong.
        detail: String,
        /// The response body (truncated).
        body: String,
    },
    /// The online check returned an unexpected value.
    #[error("{provider}: not online: {detail}")]
    NotOnline {
        /// Provider type.
        provider: &'static str,
        /// What the check returned.
        detail: String,
    },
}

impl ProviderError {
    /// Whether this is "no data" (Flagger's `ErrNoValuesFound`) rather than a failure.
    pub fn is_no_data(&self) -> bool {
        matches!(self, Self::NoValues { .. })
    }

    /// A stable, low-cardinality name of the error kind, for metric labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::NoValues { .. } => "NoValues",
            Self::MultipleValues { .. } => "MultipleValues",
            Self::InvalidAddress { .. } => "InvalidAddress",
            Self::MissingCredential { .. } => "MissingCredential",
            Self::Config { .. } => "Config",
            Self::InvalidHeader { .. } => "InvalidHeader",
            Self::Client { .. } => "Client",
            Self::Request { .. } => "Request",
            Self::Status { .. } => "Status",
            Self::Parse { .. } => "Parse",
            Self::NotOnline { .. } => "NotOnline",
        }
    }
}

/// At most this many bytes of a response body go into an error message.
pub(crate) const BODY_LIMIT: usize = 1024;

/// `body` cut to [`BODY_LIMIT`] bytes at a character boundary, with a marker when cut.
pub(crate) fn truncate_body(body: &str) -> String {
    if body.len() <= BODY_LIMIT {
        return body.to_owned();
    }
    let mut end = BODY_LIMIT;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &body[..end], body.len())
}
