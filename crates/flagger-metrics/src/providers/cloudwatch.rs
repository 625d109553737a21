//! The CloudWatch provider: `GetMetricData` over the AWS JSON 1.0 protocol, signed with Signature Version 4.
//!
//! Facts from Flagger 1.44 (`pkg/metrics/providers/cloudwatch.go`): `region` is required (`region not
//! specified`); credentials come from the AWS SDK's ambient chain, whose first step is the environment
//! (`AWS_ACCESS_KEY_ID`/`AWS_ACCESS_KEY`, `AWS_SECRET_ACCESS_KEY`/`AWS_SECRET_KEY`, `AWS_SESSION_TOKEN`);
//! the query is a JSON array of `MetricDataQuery` objects, decoded as Go's `encoding/json` does (field names
//! match case-insensitively, unknown fields are ignored); the request has `MaxDatapoints` 20, `StartTime`
//! = now − 10×interval and `EndTime` = now; up to 3 retries; the value is `MetricDataResults[0].Values[0]`.
//! `is_online` sends a request without queries and zero times: HTTP 400 (the service rejecting it) means
//! online, as does success; any other status is an error.
//!
//! Only the environment step of the SDK's chain is implemented (no shared credentials file, no
//! EC2/ECS/IRSA role): a missing key is an error when the provider is built.

use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::{
    HTTP_TIMEOUT, base_url, config_error, hex, http_client, no_values, not_nan, parse_error, secret_header,
    send, status_error, uri_encode,
};
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit};

const KIND: &str = "cloudwatch";

/// The SigV4 service name (and endpoint prefix) of CloudWatch.
pub const SERVICE: &str = "monitoring";

/// `X-Amz-Target` of `GetMetricData` in the JSON protocol.
pub const TARGET: &str = "GraniteServiceVersion20100801.GetMetricData";

/// `Content-Type` of the AWS JSON 1.0 protocol.
pub const CONTENT_TYPE_JSON: &str = "application/x-amz-json-1.0";

/// Flagger's `MaxDatapoints`.
pub const MAX_DATAPOINTS: i64 = 20;

/// The window is this many metric intervals.
const WINDOW_INTERVALS: u32 = 10;

/// Retries after the first attempt (the SDK's `MaxRetries` in Flagger).
const MAX_RETRIES: u32 = 3;

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix seconds: the times of the online check.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials (`X-Amz-Security-Token`).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl AwsCredentials {
    /// The credentials in the process environment, if both keys are set and non-empty.
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The credentials `lookup` gives for the SDK's environment variables: `AWS_ACCESS_KEY_ID` (or
    /// `AWS_ACCESS_KEY`), `AWS_SECRET_ACCESS_KEY` (or `AWS_SECRET_KEY`) and optionally `AWS_SESSION_TOKEN`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let first = |names: &[&str]| names.iter().find_map(|n| lookup(n).filter(|v| !v.is_empty()));
        Some(Self {
            access_key_id: first(&["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"])?,
            secret_access_key: first(&["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"])?,
            session_token: first(&["AWS_SESSION_TOKEN"]),
        })
    }
}

/// A request to sign with Signature Version 4.
#[derive(Clone, Debug)]
pub struct SigV4Request<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path as sent (percent-encoded), e.g. `/`.
    pub path: &'a str,
    /// The query string as sent, without `?` (may be empty).
    pub query: &'a str,
    /// The headers to sign (names in any case), including `host` and `x-amz-date`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub payload: &'a [u8],
    /// `x-amz-date`, e.g. `20150830T123600Z`.
    pub amz_date: &'a str,
    /// Region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Service, e.g. `monitoring`.
    pub service: &'a str,
}

/// The intermediate results of signing, for tests against AWS's published vectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigV4Signature {
    /// The canonical request.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// The hex signature.
    pub signature: String,
    /// The `Authorization` header value.
    pub authorization: String,
}

/// Signs `request` with `credentials` (AWS Signature Version 4, `AWS4-HMAC-SHA256`).
pub fn sigv4_sign(request: &SigV4Request<'_>, credentials: &AwsCredentials) -> SigV4Signature {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in request.headers {
        let name = name.to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        hex(digest::digest(&digest::SHA256, request.payload).as_ref()),
    );
    let date = request.amz_date.get(..8).unwrap_or(request.amz_date);
    let scope = format!("{date}/{}/{}/aws4_request", request.region, request.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        request.amz_date,
        hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref()),
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [request.region, request.service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    );
    SigV4Signature {
        canonical_request,
        string_to_sign,
        signature,
        authorization,
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// The canonical URI of services other than S3: the sent path encoded once more.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    uri_encode(path, true)
}

/// Query parameters decoded, re-encoded and sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// One `MetricDataQuery` of the query array (the SDK's shape; member names as the API spells them).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDataQuery {
    /// Account of the metric (cross-account observability).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// A metric math expression or Metrics Insights query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// The query's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A label for the result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The metric and statistic to return.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_stat: Option<MetricStat>,
    /// Granularity in seconds of an expression's points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
    /// Whether the result is returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_data: Option<bool>,
}

/// A metric, a period and a statistic.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricStat {
    /// The metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// Granularity in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
    /// Statistic, e.g. `Sum`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
    /// Unit, e.g. `Count`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A CloudWatch metric.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Metric {
    /// Dimensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<Vec<Dimension>>,
    /// Metric name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A metric dimension.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dimension {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The fields each level of a query has, for Go's case-insensitive field matching.
#[derive(Clone, Copy)]
enum Shape {
    Query,
    MetricStat,
    Metric,
    Dimension,
}

impl Shape {
    /// (field, shape of its object or array elements).
    fn fields(self) -> &'static [(&'static str, Option<Shape>)] {
        match self {
            Self::Query => &[
                ("AccountId", None),
                ("Expression", None),
                ("Id", None),
                ("Label", None),
                ("MetricStat", Some(Self::MetricStat)),
                ("Period", None),
                ("ReturnData", None),
            ],
            Self::MetricStat => &[
                ("Metric", Some(Self::Metric)),
                ("Period", None),
                ("Stat", None),
                ("Unit", None),
            ],
            Self::Metric => &[
                ("Dimensions", Some(Self::Dimension)),
                ("MetricName", None),
                ("Namespace", None),
            ],
            Self::Dimension => &[("Name", None), ("Value", None)],
        }
    }
}

/// `value` with object keys renamed to the field they match case-insensitively and unknown keys dropped,
/// recursively (Go's `encoding/json` decoding into the SDK's structs).
fn canonical_keys(value: Value, shape: Shape) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(|v| canonical_keys(v, shape)).collect()),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, value) in map {
                // Go prefers an exact match, else the first case-insensitive one.
                let field = shape.fields().iter().find(|(name, _)| *name == key).or_else(|| {
                    shape
                        .fields()
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case(&key))
                });
                if let Some((name, inner)) = field {
                    let value = match inner {
                        Some(inner) => canonical_keys(value, *inner),
                        None => value,
                    };
                    out.insert((*name).to_owned(), value);
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// Parses a template query: a JSON array of `MetricDataQuery` (Flagger: `error unmarshaling query: ...`).
pub fn parse_query(query: &str) -> Result<Vec<MetricDataQuery>, ProviderError> {
    let error =
        |e: serde_json::Error| config_error(KIND, format!("cloudwatch: error unmarshaling query: {e}"));
    let value: Value = serde_json::from_str(query).map_err(error)?;
    if value.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(canonical_keys(value, Shape::Query)).map_err(error)
}

/// The body of a `GetMetricData` request (times in Unix seconds, as the JSON protocol sends them).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetMetricDataInput<'a> {
    metric_data_queries: &'a [MetricDataQuery],
    start_time: i64,
    end_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_datapoints: Option<i64>,
}

/// A CloudWatch `GetMetricData` client.
#[derive(Clone, Debug)]
pub struct CloudWatchProvider {
    http: reqwest::Client,
    endpoint: Url,
    region: String,
    credentials: AwsCredentials,
    /// `EndTime − StartTime`, in seconds.
    start_delta: i64,
}

impl CloudWatchProvider {
    /// Reads the region, address and interval of `init` and the credentials in the environment.
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        Self::with_credentials(init, AwsCredentials::from_env())
    }

    /// As [`new`](Self::new), with the credentials given instead of read from the environment (`None`:
    /// the environment has none).
    pub fn with_credentials(
        init: &ProviderInit<'_>,
        credentials: Option<AwsCredentials>,
    ) -> Result<Self, ProviderError> {
        let region = init
            .provider
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| config_error(KIND, "cloudwatch: region not specified"))?;
        let credentials = credentials.ok_or_else(|| {
            config_error(
                KIND,
                "cloudwatch: no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set \
                 (only environment credentials are supported)",
            )
        })?;
        let address = match init.provider.address.as_deref().filter(|a| !a.is_empty()) {
            Some(address) => address.to_owned(),
            None => default_endpoint(&region),
        };
        let endpoint = base_url(KIND, &address)?;
        let window = init.interval.saturating_mul(WINDOW_INTERVALS);
        Ok(Self {
            http: http_client(KIND, HTTP_TIMEOUT, init.provider.insecure_skip_verify())?,
            endpoint,
            region,
            credentials,
            start_delta: i64::try_from(window.as_secs()).unwrap_or(i64::MAX),
        })
    }

    /// The URL requests are sent to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Sends a signed `GetMetricData` request, retrying transport errors, 429 and 5xx; returns the
    /// final status and body.
    async fn send(&self, body: &[u8]) -> Result<(reqwest::StatusCode, String), ProviderError> {
        let mut attempt = 0;
        loop {
            let result = self.send_once(body).await;
            let retry = match &result {
                Err(_) => true,
                Ok((status, _)) => status.is_server_error() || status.as_u16() == 429,
            };
            if !retry || attempt >= MAX_RETRIES {
                return result;
            }
            tokio::time::sleep(Duration::from_millis(30 << attempt)).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, body: &[u8]) -> Result<(reqwest::StatusCode, String), ProviderError> {
        let amz_date = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
        let host = match self.endpoint.port() {
            Some(port) => format!("{}:{port}", self.endpoint.host_str().unwrap_or_default()),
            None => self.endpoint.host_str().unwrap_or_default().to_owned(),
        };
        let mut signed: Vec<(&str, &str)> = vec![
            ("content-type", CONTENT_TYPE_JSON),
            ("host", &host),
            ("x-amz-date", &amz_date),
            ("x-amz-target", TARGET),
        ];
        if let Some(token) = &self.credentials.session_token {
            signed.push(("x-amz-security-token", token));
        }
        let signature = sigv4_sign(
            &SigV4Request {
                method: "POST",
                path: self.endpoint.path(),
                query: self.endpoint.query().unwrap_or_default(),
                headers: &signed,
                payload: body,
                amz_date: &amz_date,
                region: &self.region,
                service: SERVICE,
            },
            &self.credentials,
        );
        let mut headers = HeaderMap::new();
        for (name, value) in &signed {
            if *name == "host" {
                continue; // reqwest sends it from the URL
            }
            let value = header_value(value)?;
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                headers.insert(name, value);
            }
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON));
        headers.insert(
            AUTHORIZATION,
            secret_header(KIND, "authorization", &signature.authorization)?,
        );
        let request = self
            .http
            .post(self.endpoint.clone())
            .headers(headers)
            .body(body.to_vec());
        // `endpoint` has no query string (`base_url`), so errors name it in full, as before.
        send(KIND, request, &self.endpoint).await
    }

    async fn query(&self, query: &str) -> Result<f64, ProviderError> {
        let queries = parse_query(query)?;
        let end = jiff::Timestamp::now().as_second();
        let input = GetMetricDataInput {
            metric_data_queries: &queries,
            start_time: end.saturating_sub(self.start_delta),
            end_time: end,
            max_datapoints: Some(MAX_DATAPOINTS),
        };
        let body = serde_json::to_vec(&input).map_err(|e| ProviderError::Client {
            provider: KIND,
            reason: format!("cannot encode the request: {e}"),
        })?;
        let (status, body) = self.send(&body).await?;
        if !status.is_success() {
            return Err(status_error(KIND, status, &body));
        }
        parse_response(&body)
    }
}

/// CloudWatch's endpoint in `region` (`.amazonaws.com.cn` in China regions).
pub fn default_endpoint(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://{SERVICE}.{region}.amazonaws.com.cn/")
    } else {
        format!("https://{SERVICE}.{region}.amazonaws.com/")
    }
}

fn header_value(value: &str) -> Result<HeaderValue, ProviderError> {
    HeaderValue::from_str(value).map_err(|e| ProviderError::InvalidHeader {
        provider: KIND,
        name: "authorization".to_owned(),
        reason: format!("credentials are not a valid header value: {e}"),
    })
}

/// Reads `MetricDataResults[0].Values[0]` of a `GetMetricData` response. No result, no value or a NaN
/// value is no data.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let json: Value =
        serde_json::from_str(body).map_err(|e| parse_error(KIND, format!("invalid JSON: {e}"), body))?;
    let results = match json.get("MetricDataResults") {
        None | Some(Value::Null) => return Err(no_values(KIND, NoDataReason::Empty)),
        Some(Value::Array(results)) => results,
        Some(other) => {
            return Err(parse_error(
                KIND,
                format!("MetricDataResults is not a list: {other}"),
                body,
            ));
        }
    };
    let Some(first) = results.first() else {
        return Err(no_values(KIND, NoDataReason::Empty));
    };
    let values = match first.get("Values") {
        None | Some(Value::Null) => return Err(no_values(KIND, NoDataReason::Empty)),
        Some(Value::Array(values)) => values,
        Some(other) => return Err(parse_error(KIND, format!("Values is not a list: {other}"), body)),
    };
    let Some(value) = values.first() else {
        return Err(no_values(KIND, NoDataReason::Empty));
    };
    // The JSON protocol writes non-finite doubles as strings.
    let value = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| parse_error(KIND, format!("value {value} is not a number"), body))?;
    not_nan(KIND, value)
}

impl MetricProvider for CloudWatchProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
        self.query(query)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let input = GetMetricDataInput {
            metric_data_queries: &[],
            start_time: GO_ZERO_TIME,
            end_time: GO_ZERO_TIME,
            max_datapoints: None,
        };
        let body = serde_json::to_vec(&input).map_err(|e| ProviderError::Client {
            provider: KIND,
            reason: format!("cannot encode the request: {e}"),
        })?;
        let (status, body) = self.send(&body).await?;
        if status.is_success() || status.as_u16() == 400 {
            return Ok(());
        }
        Err(ProviderError::NotOnline {
            provider: KIND,
            detail: format!(
                "unexpected status code: {} {}: {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default(),
                crate::provider::truncate_body(&body)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_fields_match_case_insensitively_and_unknown_fields_are_dropped() {
        let queries = parse_query(
            r#"[{"id":"e1","EXPRESSION":"m1/m2","extra":1},
                {"Id":"m1","metricstat":{"metric":{"namespace":"ns","metricName":"Errors",
                 "dimensions":[{"name":"app","VALUE":"podinfo"}]},"period":60,"stat":"Sum"},"returnData":false}]"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&queries).unwrap(),
            serde_json::json!([
                {"Id": "e1", "Expression": "m1/m2"},
                {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "ns", "MetricName": "Errors",
                    "Dimensions": [{"Name": "app", "Value": "podinfo"}]}, "Period": 60, "Stat": "Sum"},
                 "ReturnData": false}
            ])
        );
    }

    #[test]
    fn bad_queries_are_errors() {
        for query in ["", "{", "{}", r#"[{"Period":"60"}]"#, "[1]"] {
            let err = parse_query(query).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("cloudwatch: error unmarshaling query: "),
                "{query}: {err}"
            );
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            default_endpoint("eu-west-1"),
            "https://monitoring.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            default_endpoint("cn-north-1"),
            "https://monitoring.cn-north-1.amazonaws.com.cn/"
        );
    }

    #[test]
    fn credentials_from_the_environment_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            AwsCredentials::from_lookup(env(&[
                ("AWS_ACCESS_KEY", "a"),
                ("AWS_SECRET_KEY", "s"),
                ("AWS_SESSION_TOKEN", "t")
            ])),
            Some(AwsCredentials {
                access_key_id: "a".into(),
                secret_access_key: "s".into(),
                session_token: Some("t".into())
            })
        );
        assert_eq!(
            AwsCredentials::from_lookup(env(&[("AWS_ACCESS_KEY_ID", "a")])),
            None
        );
        assert_eq!(
            AwsCredentials::from_lookup(env(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "")])),
            None
        );
    }
}
