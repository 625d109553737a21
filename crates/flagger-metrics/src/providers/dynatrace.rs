//! The Dynatrace provider: the Metrics API v2, `GET /api/v2/metrics/query`, over the last 10 metric
//! intervals.
//!
//! Facts from Flagger 1.44 (`pkg/metrics/providers/dynatrace.go`): the address is required (`dynatrace
//! endpoint is not set`), Secret key `dynatrace_token` sent as `Authorization: Api-Token <token>`, query
//! parameters `metricSelector`, `resolution=Inf`, `from` = now − 10×interval and `to` = now (Unix
//! milliseconds, `to` a whole second), 5 s timeout, any status but 200 is an error; the value is
//! `result[0].data[last].values[0]`. `is_online` is `GET /api/v2/metrics?pageSize=1`.
//!
//! Unlike Flagger, a `null` value is no data (Flagger decodes it as 0).

use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde_json::Value;
use url::Url;

use super::{
    HTTP_TIMEOUT, base_url, config_error, credential, fetch, http_client, join_path, no_values, not_nan,
    only_200, parse_error, secret_header, to_i64, unix_now,
};
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit};

const KIND: &str = "dynatrace";

/// The window is this many metric intervals.
const WINDOW_INTERVALS: u128 = 10;

/// A Dynatrace Metrics API v2 client.
#[derive(Clone, Debug)]
pub struct DynatraceProvider {
    http: reqwest::Client,
    query_url: Url,
    validate_url: Url,
    headers: HeaderMap,
    /// `to − from`, in milliseconds.
    from_delta: i64,
}

impl DynatraceProvider {
    /// Reads the address, the token and the interval of `init`.
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        let address = init
            .provider
            .address
            .as_deref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| config_error(KIND, "dynatrace endpoint is not set"))?;
        let base = base_url(KIND, address)?;
        let token = credential(init.credentials, "dynatrace_token")
            .ok_or_else(|| config_error(KIND, "dynatrace credentials does not contain dynatrace_token"))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            secret_header(KIND, "Authorization", &format!("Api-Token {token}"))?,
        );
        let mut validate_url = join_path(&base, "/api/v2/metrics");
        validate_url.set_query(Some("pageSize=1"));
        Ok(Self {
            http: http_client(KIND, HTTP_TIMEOUT, init.provider.insecure_skip_verify())?,
            query_url: join_path(&base, "/api/v2/metrics/query"),
            validate_url,
            headers,
            from_delta: to_i64(WINDOW_INTERVALS * init.interval.as_millis()),
        })
    }

    async fn query(&self, query: &str) -> Result<f64, ProviderError> {
        let now = to_i64(u128::from(unix_now().as_secs()) * 1000);
        let from = (now - self.from_delta).to_string();
        let to = now.to_string();
        let request = self
            .http
            .get(self.query_url.clone())
            .headers(self.headers.clone())
            .query(&[
                ("from", from.as_str()),
                ("metricSelector", query),
                ("resolution", "Inf"),
                ("to", to.as_str()),
            ]);
        let body = fetch(KIND, request, &self.query_url, only_200).await?;
        parse_response(&body)
    }
}

impl MetricProvider for DynatraceProvider {
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

/// The value of a `/api/v2/metrics/query` response: the first value of the last data element of the first
/// result. No result, no data element, no value or a `null` value is no data.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let error = |detail: String| parse_error(KIND, detail, body);
    let json: Value = serde_json::from_str(body).map_err(|e| error(format!("invalid JSON: {e}")))?;
    if !json.is_object() {
        return Err(error("the response is not a JSON object".to_owned()));
    }
    let empty = || no_values(KIND, NoDataReason::Empty);
    let results = list(json.get("result"), "result", body)?.ok_or_else(empty)?;
    let first = results.first().ok_or_else(empty)?;
    let data = list(first.get("data"), "result[0].data", body)?.ok_or_else(empty)?;
    let last = data.last().ok_or_else(empty)?;
    let values = list(last.get("values"), "the values of the last data element", body)?.ok_or_else(empty)?;
    match values.first() {
        None | Some(Value::Null) => Err(empty()),
        Some(Value::Number(n)) => {
            let value = n
                .as_f64()
                .ok_or_else(|| error(format!("value {n} is not a float")))?;
            not_nan(KIND, value)
        }
        Some(other) => Err(error(format!("value {other} is not a number"))),
    }
}

/// `value` as a borrowed list (`None` when absent or `null`); anything else is a parse error of `body`.
fn list<'a>(value: Option<&'a Value>, what: &str, body: &str) -> Result<Option<&'a [Value]>, ProviderError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(parse_error(KIND, format!("{what} is not a list: {other}"), body)),
    }
}
