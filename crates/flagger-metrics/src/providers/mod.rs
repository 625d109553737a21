//! MetricTemplate providers, and the dispatch from `MetricTemplate.spec.provider.type` to one of them
//! (Flagger's `providers.Factory`).
//!
//! [`AnyProvider::new`] builds the provider a template names; [`ProviderKey`] identifies a built provider's
//! configuration so callers can keep one client per configuration.

pub mod cloudwatch;
pub mod datadog;
pub mod dynatrace;
pub mod externalmetrics;
pub mod graphite;
pub mod influxdb;
pub mod keptn;
pub mod newrelic;
pub mod splunk;
pub mod stackdriver;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderValue;
use url::Url;

use crate::prometheus::{PrometheusConfig, PrometheusProvider};
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit, truncate_body};

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
    /// `datadog`.
    Datadog(datadog::DatadogProvider),
    /// `dynatrace`.
    Dynatrace(dynatrace::DynatraceProvider),
    /// `graphite`.
    Graphite(graphite::GraphiteProvider),
    /// `influxdb`.
    Influxdb(influxdb::InfluxdbProvider),
    /// `newrelic`.
    NewRelic(newrelic::NewRelicProvider),
    /// `splunk`.
    Splunk(splunk::SplunkProvider),
    /// `stackdriver`.
    Stackdriver(stackdriver::StackdriverProvider),
    /// `cloudwatch`.
    CloudWatch(cloudwatch::CloudWatchProvider),
    /// `externalmetrics`.
    ExternalMetrics(externalmetrics::ExternalMetricsProvider),
    /// `keptn`.
    Keptn(keptn::KeptnProvider),
}

impl AnyProvider {
    /// Builds the provider `init.provider.type_` names. A type Flagger does not know is built as Prometheus
    /// (see [`falls_back_to_prometheus`]).
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        match init.provider.type_.as_str() {
            "prometheus" => prometheus(init),
            "datadog" => datadog::DatadogProvider::new(init).map(Self::Datadog),
            "dynatrace" => dynatrace::DynatraceProvider::new(init).map(Self::Dynatrace),
            "graphite" => graphite::GraphiteProvider::new(init).map(Self::Graphite),
            "influxdb" => influxdb::InfluxdbProvider::new(init).map(Self::Influxdb),
            "newrelic" => newrelic::NewRelicProvider::new(init).map(Self::NewRelic),
            "splunk" => splunk::SplunkProvider::new(init).map(Self::Splunk),
            "stackdriver" => stackdriver::StackdriverProvider::new(init).map(Self::Stackdriver),
            "cloudwatch" => cloudwatch::CloudWatchProvider::new(init).map(Self::CloudWatch),
            "externalmetrics" => {
                externalmetrics::ExternalMetricsProvider::new(init).map(Self::ExternalMetrics)
            }
            "keptn" => keptn::KeptnProvider::new(init).map(Self::Keptn),
            // Every other type is unknown to Flagger (see `falls_back_to_prometheus`).
            _ => prometheus(init),
        }
    }
}

fn prometheus(init: &ProviderInit<'_>) -> Result<AnyProvider, ProviderError> {
    let config = PrometheusConfig::from_template(init.provider, Some(init.credentials))?;
    Ok(AnyProvider::Prometheus(PrometheusProvider::new(config)?))
}

impl MetricProvider for AnyProvider {
    fn kind(&self) -> &'static str {
        match self {
            Self::Prometheus(p) => p.kind(),
            Self::Datadog(p) => p.kind(),
            Self::Dynatrace(p) => p.kind(),
            Self::Graphite(p) => p.kind(),
            Self::Influxdb(p) => p.kind(),
            Self::NewRelic(p) => p.kind(),
            Self::Splunk(p) => p.kind(),
            Self::Stackdriver(p) => p.kind(),
            Self::CloudWatch(p) => p.kind(),
            Self::ExternalMetrics(p) => p.kind(),
            Self::Keptn(p) => p.kind(),
        }
    }

    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        match self {
            Self::Prometheus(p) => p.run_query(query).await,
            Self::Datadog(p) => p.run_query(query).await,
            Self::Dynatrace(p) => p.run_query(query).await,
            Self::Graphite(p) => p.run_query(query).await,
            Self::Influxdb(p) => p.run_query(query).await,
            Self::NewRelic(p) => p.run_query(query).await,
            Self::Splunk(p) => p.run_query(query).await,
            Self::Stackdriver(p) => p.run_query(query).await,
            Self::CloudWatch(p) => p.run_query(query).await,
            Self::ExternalMetrics(p) => p.run_query(query).await,
            Self::Keptn(p) => p.run_query(query).await,
        }
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        match self {
            Self::Prometheus(p) => p.is_online().await,
            Self::Datadog(p) => p.is_online().await,
            Self::Dynatrace(p) => p.is_online().await,
            Self::Graphite(p) => p.is_online().await,
            Self::Influxdb(p) => p.is_online().await,
            Self::NewRelic(p) => p.is_online().await,
            Self::Splunk(p) => p.is_online().await,
            Self::Stackdriver(p) => p.is_online().await,
            Self::CloudWatch(p) => p.is_online().await,
            Self::ExternalMetrics(p) => p.is_online().await,
            Self::Keptn(p) => p.is_online().await,
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

// Helpers shared by the HTTP providers.

/// Flagger's request timeout of most HTTP providers.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// The value of credential `key`, if the Secret has it (bytes read as UTF-8, lossily).
pub(crate) fn credential(credentials: &BTreeMap<String, Vec<u8>>, key: &str) -> Option<String> {
    credentials
        .get(key)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A [`ProviderError::Config`] with Flagger's `message`.
pub(crate) fn config_error(provider: &'static str, message: impl Into<String>) -> ProviderError {
    ProviderError::Config {
        provider,
        message: message.into(),
    }
}

/// `address` as an http(s) base URL without query or fragment.
pub(crate) fn base_url(provider: &'static str, address: &str) -> Result<Url, ProviderError> {
    let invalid = |reason: String| ProviderError::InvalidAddress {
        provider,
        address: address.to_owned(),
        reason,
    };
    let mut url = Url::parse(address).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("scheme {:?} is not http or https", url.scheme())));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// `base` with `path` (starting with `/`) appended to its path.
pub(crate) fn join_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

/// An HTTP client with a request timeout, optionally skipping TLS verification.
pub(crate) fn http_client(
    provider: &'static str,
    timeout: Duration,
    insecure_skip_verify: bool,
) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .tls_danger_accept_invalid_certs(insecure_skip_verify)
        .build()
        .map_err(|e| ProviderError::Client {
            provider,
            reason: error_chain(&e),
        })
}

/// A header value holding a credential: never logged.
pub(crate) fn secret_header(
    provider: &'static str,
    name: &str,
    value: &str,
) -> Result<HeaderValue, ProviderError> {
    let mut value = HeaderValue::from_str(value).map_err(|e| ProviderError::InvalidHeader {
        provider,
        name: name.to_owned(),
        reason: format!("credentials are not a valid header value: {e}"),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Sends `request` (to `url`, named without its query in errors) and returns the status and body; a
/// failed send or body read is a [`ProviderError::Request`].
pub(crate) async fn send(
    provider: &'static str,
    request: reqwest::RequestBuilder,
    url: &Url,
) -> Result<(reqwest::StatusCode, String), ProviderError> {
    let request_error = |e: reqwest::Error| ProviderError::Request {
        provider,
        url: url_without_query(url),
        reason: error_chain(&e),
    };
    let response = request.send().await.map_err(request_error)?;
    let status = response.status();
    let body = response.text().await.map_err(request_error)?;
    Ok((status, body))
}

/// Sends `request` (to `url`, named in errors) and returns the body when `accept(status)`, else a
/// [`ProviderError::Status`].
pub(crate) async fn fetch(
    provider: &'static str,
    request: reqwest::RequestBuilder,
    url: &Url,
    accept: fn(u16) -> bool,
) -> Result<String, ProviderError> {
    let (status, body) = send(provider, request, url).await?;
    if !accept(status.as_u16()) {
        return Err(status_error(provider, status, &body));
    }
    Ok(body)
}

/// A [`ProviderError::Status`] for `status` and `body`.
pub(crate) fn status_error(provider: &'static str, status: reqwest::StatusCode, body: &str) -> ProviderError {
    ProviderError::Status {
        provider,
        status: status.as_u16(),
        status_text: status.canonical_reason().unwrap_or_default().to_owned(),
        body: truncate_body(body),
    }
}

/// Only 200 OK (Datadog, New Relic, Dynatrace, Splunk).
pub(crate) fn only_200(status: u16) -> bool {
    status == 200
}

/// The `is_online` of providers with a validation endpoint: a GET of `url` with `headers`, answered 200.
pub(crate) async fn validate(
    provider: &'static str,
    http: &reqwest::Client,
    url: &Url,
    headers: &reqwest::header::HeaderMap,
) -> Result<(), ProviderError> {
    let request = http.get(url.clone()).headers(headers.clone());
    fetch(provider, request, url, only_200).await.map(drop)
}

/// `url` without its query string, for error messages (queries can be long).
pub(crate) fn url_without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// A [`ProviderError::Parse`].
pub(crate) fn parse_error(provider: &'static str, detail: impl Into<String>, body: &str) -> ProviderError {
    ProviderError::Parse {
        provider,
        detail: detail.into(),
        body: truncate_body(body),
    }
}

/// A [`ProviderError::NoValues`].
pub(crate) fn no_values(provider: &'static str, reason: NoDataReason) -> ProviderError {
    ProviderError::NoValues { provider, reason }
}

/// `value` unless it is NaN (no data).
pub(crate) fn not_nan(provider: &'static str, value: f64) -> Result<f64, ProviderError> {
    if value.is_nan() {
        Err(no_values(provider, NoDataReason::NaN))
    } else {
        Ok(value)
    }
}

/// Go's `strconv.ParseFloat` on the usual value spellings (`1.5`, `NaN`, `+Inf`, `-Inf`, `1e-3`); an
/// out-of-range finite spelling (`1e999`) is not a number.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok().filter(|v: &f64| v.is_finite()),
    }
}

/// The time since the Unix epoch (zero if the clock is before it).
pub(crate) fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Saturating conversion of a duration in seconds or milliseconds to `i64`.
pub(crate) fn to_i64(value: u128) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// An error and its sources, `: `-separated.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Lower-case hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and `/` when `keep_slash`).
pub(crate) fn uri_encode(input: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), for basic auth.
pub(crate) fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
