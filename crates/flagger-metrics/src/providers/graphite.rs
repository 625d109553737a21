//! The Graphite provider: the render URL API, `GET /render?<query>&format=json`.
//!
//! Facts from Flagger 1.44 (`pkg/metrics/providers/graphite.go`): the address is required; the query is the
//! render API's URL parameters (e.g. `target=sumSeries(app.*.errors)&from=-1m`, whitespace runs collapsed to
//! one space) with `format=json` set, parameters sent sorted by name (Go's `url.Values.Encode`); with a
//! `secretRef`, `username` and `password` are both required and sent as basic auth; `insecureSkipVerify`
//! applies; 5 s timeout, a status ≥ 400 is an error. The value is the last non-null datapoint of all series
//! (in order); datapoint values may be numbers or numeric strings. `is_online` runs `target=test`: no data is
//! online.

use std::collections::BTreeMap;

use serde_json::Value;
use url::Url;

use super::{
    HTTP_TIMEOUT, base_url, base64_encode, fetch, http_client, join_path, no_values, not_nan, parse_error,
    parse_go_float, secret_header,
};
use crate::builtin::collapse_whitespace;
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit};

const KIND: &str = "graphite";

/// The query of the online check.
pub const ONLINE_QUERY: &str = "target=test";

/// A Graphite render API client.
#[derive(Clone, Debug)]
pub struct GraphiteProvider {
    http: reqwest::Client,
    render_url: Url,
    /// `Authorization: Basic ...`, when the template has credentials.
    authorization: Option<reqwest::header::HeaderValue>,
}

impl GraphiteProvider {
    /// Reads the address, TLS setting and optional basic-auth credentials of `init`.
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        let address = init.provider.address.as_deref().unwrap_or_default();
        let base = base_url(KIND, address)?;
        let authorization = match &init.provider.secret_ref {
            None => None,
            Some(_) => {
                let get = |key: &'static str| {
                    super::credential(init.credentials, key)
                        .ok_or(ProviderError::MissingCredential { provider: KIND, key })
                };
                let username = get("username")?;
                let password = get("password")?;
                // Flagger sends basic auth only when both are non-empty.
                if username.is_empty() || password.is_empty() {
                    None
                } else {
                    let encoded = base64_encode(format!("{username}:{password}").as_bytes());
                    Some(secret_header(KIND, "Authorization", &format!("Basic {encoded}"))?)
                }
            }
        };
        Ok(Self {
            http: http_client(KIND, HTTP_TIMEOUT, init.provider.insecure_skip_verify())?,
            render_url: join_path(&base, "/render"),
            authorization,
        })
    }

    /// The render URL for `query`: its parameters plus `format=json`, sorted by name.
    pub fn request_url(&self, query: &str) -> Url {
        // Flagger replaces every whitespace run with one space.
        let query = collapse_whitespace(query);
        let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            params
                .entry(name.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        params.insert("format".to_owned(), vec!["json".to_owned()]);
        let mut url = self.render_url.clone();
        {
            let mut pairs = url.query_pairs_mut();
            for (name, values) in &params {
                for value in values {
                    pairs.append_pair(name, value);
                }
            }
        }
        url
    }

    async fn query(&self, query: &str) -> Result<f64, ProviderError> {
        let url = self.request_url(query);
        let mut request = self.http.get(url.clone());
        if let Some(authorization) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization.clone());
        }
        let body = fetch(KIND, request, &url, |status| status < 400).await?;
        parse_response(&body)
    }
}

impl MetricProvider for GraphiteProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
        self.query(query)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        match self.query(ONLINE_QUERY).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_no_data() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The value of a render API JSON response: the last non-null datapoint value over all series, in order.
/// No series, no datapoints or only nulls is no data; a last value of NaN is no data too.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let error = |detail: String| parse_error(KIND, detail, body);
    let json: Value = serde_json::from_str(body).map_err(|e| error(format!("invalid JSON: {e}")))?;
    let Value::Array(series) = json else {
        return Err(error("the response is not a list of series".to_owned()));
    };
    let mut last = None;
    for target in &series {
        let points = match target.get("datapoints") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(points)) => points,
            Some(other) => return Err(error(format!("datapoints is not a list: {other}"))),
        };
        for point in points {
            let Some(pair) = point.as_array().filter(|p| p.len() == 2) else {
                return Err(error(format!(
                    "a datapoint is not a [value, timestamp] pair: {point}"
                )));
            };
            match &pair[0] {
                Value::Null => {}
                Value::Number(n) => {
                    last = Some(
                        n.as_f64()
                            .ok_or_else(|| error(format!("value {n} is not a float")))?,
                    );
                }
                Value::String(s) => {
                    last =
                        Some(parse_go_float(s).ok_or_else(|| error(format!("value {s:?} is not a number")))?);
                }
                other => return Err(error(format!("value {other} is not a number"))),
            }
        }
    }
    let value = last.ok_or(no_values(KIND, NoDataReason::Empty))?;
    not_nan(KIND, value)
}
