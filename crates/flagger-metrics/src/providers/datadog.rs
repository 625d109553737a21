//! The Datadog provider: `GET /api/v1/query` (metrics query API v1) over the last 10 metric intervals.
//!
//! Facts from Flagger 1.44 (`pkg/metrics/providers/datadog.go`): default address `https://api.datadoghq.com`,
//! headers `DD-API-KEY` and `DD-APPLICATION-KEY` from the Secret keys `datadog_api_key` and
//! `datadog_application_key`, query parameters `query`, `from` = now − 10×interval and `to` = now (Unix
//! seconds), 5 s timeout, any status but 200 is an error, the value is the first (oldest) point of the first
//! series. `is_online` is `GET /api/v1/validate` with the same headers.
//!
//! Unlike Flagger, a `null` point value is no data (Flagger decodes it as 0), and a body with
//! `"status": "error"` is an error naming Datadog's message.

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::{
    HTTP_TIMEOUT, base_url, config_error, credential, fetch, http_client, join_path, no_values, not_nan,
    only_200, parse_error, secret_header, to_i64, unix_now,
};
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit};

const KIND: &str = "datadog";

/// The Datadog API address when the template has none.
pub const DEFAULT_ADDRESS: &str = "https://api.datadoghq.com";

/// The window is this many metric intervals.
const WINDOW_INTERVALS: u64 = 10;

/// A Datadog metrics API client.
#[derive(Clone, Debug)]
pub struct DatadogProvider {
    http: reqwest::Client,
    query_url: Url,
    validate_url: Url,
    headers: HeaderMap,
    /// `to − from`, in seconds.
    from_delta: i64,
}

impl DatadogProvider {
    /// Reads the address, the API and application keys and the interval of `init`.
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        let address = init
            .provider
            .address
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or(DEFAULT_ADDRESS);
        let base = base_url(KIND, address)?;
        let api_key = credential(init.credentials, "datadog_api_key")
            .ok_or_else(|| config_error(KIND, "datadog credentials does not contain datadog_api_key"))?;
        let application_key = credential(init.credentials, "datadog_application_key").ok_or_else(|| {
            config_error(
                KIND,
                "datadog credentials does not contain datadog_application_key",
            )
        })?;
        let mut headers = HeaderMap::new();
        headers.insert("DD-API-KEY", secret_header(KIND, "DD-API-KEY", &api_key)?);
        headers.insert(
            "DD-APPLICATION-KEY",
            secret_header(KIND, "DD-APPLICATION-KEY", &application_key)?,
        );
        Ok(Self {
            http: http_client(KIND, HTTP_TIMEOUT, init.provider.insecure_skip_verify())?,
            query_url: join_path(&base, "/api/v1/query"),
            validate_url: join_path(&base, "/api/v1/validate"),
            headers,
            from_delta: to_i64(u128::from(WINDOW_INTERVALS) * init.interval.as_millis() / 1000),
        })
    }

    async fn query(&self, query: &str) -> Result<f64, ProviderError> {
        let now = to_i64(u128::from(unix_now().as_secs()));
        let from = (now - self.from_delta).to_string();
        let to = now.to_string();
        let request = self
            .http
            .get(self.query_url.clone())
            .headers(self.headers.clone())
            .query(&[("from", from.as_str()), ("query", query), ("to", to.as_str())]);
        let body = fetch(KIND, request, &self.query_url, only_200).await?;
        parse_response(&body)
    }
}

impl MetricProvider for DatadogProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
        self.query(query)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        super::validate(KIND, &self.http, &self.validate_url, &self.headers).await
    }
}

/// The value of a `/api/v1/query` response: `series[0].pointlist[0][1]`. No series, no points or a `null`
/// value is no data.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let error = |detail: String| parse_error(KIND, detail, body);
    let json: Value = serde_json::from_str(body).map_err(|e| error(format!("invalid JSON: {e}")))?;
    if !json.is_object() {
        return Err(error("the response is not a JSON object".to_owned()));
    }
    if json.get("status").and_then(Value::as_str) == Some("error") {
        let message = json.get("error").and_then(Value::as_str).unwrap_or_default();
        return Err(error(format!("status is \"error\": {message}")));
    }
    let series = match json.get("series") {
        None | Some(Value::Null) => return Err(no_values(KIND, NoDataReason::Empty)),
        Some(Value::Array(series)) => series,
        Some(other) => return Err(error(format!("series is not a list: {other}"))),
    };
    let Some(first) = series.first() else {
        return Err(no_values(KIND, NoDataReason::Empty));
    };
    let points = match first.get("pointlist") {
        None | Some(Value::Null) => return Err(no_values(KIND, NoDataReason::Empty)),
        Some(Value::Array(points)) => points,
        Some(other) => return Err(error(format!("series[0].pointlist is not a list: {other}"))),
    };
    let Some(point) = points.first() else {
        return Err(no_values(KIND, NoDataReason::Empty));
    };
    let Some(pair) = point.as_array().filter(|p| p.len() == 2) else {
        return Err(error(format!(
            "a point is not a [timestamp, value] pair: {point}"
        )));
    };
    match &pair[1] {
        Value::Null => Err(no_values(KIND, NoDataReason::Empty)),
        Value::Number(n) => {
            let value = n
                .as_f64()
                .ok_or_else(|| error(format!("value {n} is not a float")))?;
            not_nan(KIND, value)
        }
        other => Err(error(format!("value {other} is not a number"))),
    }
}
