//! The New Relic provider: NRQL through the Insights query API, `GET /v1/accounts/<account>/query`.
//!
//! Facts from Flagger 1.44 (`pkg/metrics/providers/newrelic.go`): default address
//! `https://insights-api.newrelic.com`, Secret keys `newrelic_account_id` (in the path) and
//! `newrelic_query_key` (header `X-Query-Key`), query parameter `nrql` = `<query> SINCE <interval seconds>
//! seconds ago`, 5 s timeout, any status but 200 is an error; `results` must hold exactly one element whose
//! `result` is not null (else no data). `is_online` runs `SELECT * FROM Metric` the same way.
//!
//! Unlike Flagger, the account id is percent-encoded into the path, and the missing query key message
//! reads `'newrelic_query_key'` (Flagger prints `''newrelic_query_key`).

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::{
    HTTP_TIMEOUT, base_url, config_error, credential, fetch, http_client, no_values, not_nan, only_200,
    parse_error, secret_header,
};
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit};

const KIND: &str = "newrelic";

/// The Insights API address when the template has none.
pub const DEFAULT_ADDRESS: &str = "https://insights-api.newrelic.com";

/// The query of the online check.
pub const ONLINE_QUERY: &str = "SELECT * FROM Metric";

/// A New Relic Insights API client.
#[derive(Clone, Debug)]
pub struct NewRelicProvider {
    http: reqwest::Client,
    query_url: Url,
    headers: HeaderMap,
    /// The window, in whole seconds.
    since_seconds: u64,
}

impl NewRelicProvider {
    /// Reads the address, account id, query key and interval of `init`.
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        let address = init
            .provider
            .address
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or(DEFAULT_ADDRESS);
        let mut query_url = base_url(KIND, address)?;
        let account = credential(init.credentials, "newrelic_account_id").ok_or_else(|| {
            config_error(
                KIND,
                "newrelic credentials does not contain the key 'newrelic_account_id'",
            )
        })?;
        let query_key = credential(init.credentials, "newrelic_query_key").ok_or_else(|| {
            config_error(
                KIND,
                "newrelic credentials does not contain the key 'newrelic_query_key'",
            )
        })?;
        // base_url accepts only http(s) URLs, which always have path segments.
        if let Ok(mut segments) = query_url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["v1", "accounts", account.as_str(), "query"]);
        }
        let mut headers = HeaderMap::new();
        headers.insert("X-Query-Key", secret_header(KIND, "X-Query-Key", &query_key)?);
        Ok(Self {
            http: http_client(KIND, HTTP_TIMEOUT, init.provider.insecure_skip_verify())?,
            query_url,
            headers,
            since_seconds: init.interval.as_secs(),
        })
    }

    /// The URL queries are sent to (without the query string).
    pub fn query_url(&self) -> &Url {
        &self.query_url
    }

    async fn get(&self, query: &str) -> Result<String, ProviderError> {
        let nrql = format!("{query} SINCE {} seconds ago", self.since_seconds);
        let request = self
            .http
            .get(self.query_url.clone())
            .headers(self.headers.clone())
            .query(&[("nrql", nrql.as_str())]);
        fetch(KIND, request, &self.query_url, only_200).await
    }

    async fn query(&self, query: &str) -> Result<f64, ProviderError> {
        let body = self.get(query).await?;
        parse_response(&body)
    }
}

impl MetricProvider for NewRelicProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
        self.query(query)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        self.get(ONLINE_QUERY).await.map(drop)
    }
}

/// The value of an Insights query response: `results[0].result`, when `results` has exactly one element
/// and its `result` is a number; anything else that is well-formed is no data.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let error = |detail: String| parse_error(KIND, detail, body);
    let json: Value = serde_json::from_str(body).map_err(|e| error(format!("invalid JSON: {e}")))?;
    if !json.is_object() {
        return Err(error("the response is not a JSON object".to_owned()));
    }
    let results = match json.get("results") {
        None | Some(Value::Null) => return Err(no_values(KIND, NoDataReason::Empty)),
        Some(Value::Array(results)) => results,
        Some(other) => return Err(error(format!("results is not a list: {other}"))),
    };
    let [only] = results.as_slice() else {
        return Err(no_values(KIND, NoDataReason::Empty));
    };
    match only.get("result") {
        None | Some(Value::Null) => Err(no_values(KIND, NoDataReason::Empty)),
        Some(Value::Number(n)) => {
            let value = n
                .as_f64()
                .ok_or_else(|| error(format!("result {n} is not a float")))?;
            not_nan(KIND, value)
        }
        Some(other) => Err(error(format!("results[0].result is not a number: {other}"))),
    }
}
