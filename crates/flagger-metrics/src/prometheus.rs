//! The Prometheus provider (`/api/v1/query`), used for the builtin checks, inline `query` metrics and
//! `prometheus` MetricTemplates.

use std::collections::BTreeMap;
use std::time::Duration;

use flagger_api::MetricTemplateProvider;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use url::Url;

use crate::builtin::collapse_whitespace;
use crate::provider::{MetricProvider, NoDataReason, ProviderError, truncate_body};
use crate::providers::{self, parse_go_float};

const KIND: &str = "prometheus";

/// The query whose answer must be 1 for Prometheus to count as online.
pub const ONLINE_QUERY: &str = "vector(1)";

/// Flagger's per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Credentials for Prometheus, from the template's Secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PrometheusAuth {
    /// `Authorization: Bearer <token>` (Secret key `token`).
    Bearer(String),
    /// Basic auth (Secret keys `username` and `password`).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for PrometheusAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

impl PrometheusAuth {
    /// Flagger's rule for a Secret's data: `token` if present, else both `username` and `password`.
    pub fn from_secret(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, ProviderError> {
        let get = |key: &str| providers::credential(data, key);
        if let Some(token) = get("token") {
            return Ok(Self::Bearer(token));
        }
        let username = get("username").ok_or(ProviderError::MissingCredential {
            provider: KIND,
            key: "username",
        })?;
        let password = get("password").ok_or(ProviderError::MissingCredential {
            provider: KIND,
            key: "password",
        })?;
        Ok(Self::Basic { username, password })
    }
}

/// How to reach a Prometheus server. Hashable, so callers can keep one client per configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus.monitoring:9090` (a path prefix is kept).
    pub address: String,
    /// Headers sent with every query (`provider.headers`).
    pub headers: BTreeMap<String, Vec<String>>,
    /// Credentials, if the template has a `secretRef`.
    pub auth: Option<PrometheusAuth>,
    /// Skip TLS certificate verification.
    pub insecure_skip_verify: bool,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl PrometheusConfig {
    /// A server at `address` without headers, credentials or TLS exceptions (the `-metrics-server` flag or a
    /// canary's `spec.metricsServer`).
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            headers: BTreeMap::new(),
            auth: None,
            insecure_skip_verify: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The configuration of a `prometheus` MetricTemplate provider. `secret` is the data of the Secret named
    /// by `secretRef` (read by the caller), and is only consulted when `secretRef` is set, as in Flagger.
    pub fn from_template(
        provider: &MetricTemplateProvider,
        secret: Option<&BTreeMap<String, Vec<u8>>>,
    ) -> Result<Self, ProviderError> {
        let auth = match &provider.secret_ref {
            Some(_) => Some(PrometheusAuth::from_secret(secret.unwrap_or(&BTreeMap::new()))?),
            None => None,
        };
        Ok(Self {
            address: provider.address.clone().unwrap_or_default(),
            headers: provider.headers.clone().unwrap_or_default(),
            auth,
            insecure_skip_verify: provider.insecure_skip_verify(),
            timeout: DEFAULT_TIMEOUT,
        })
    }
}

/// A Prometheus HTTP API client.
#[derive(Clone, Debug)]
pub struct PrometheusProvider {
    http: reqwest::Client,
    query_url: Url,
    /// Template headers plus authorization, built once: every request sends exactly these (Flagger
    /// appends the Authorization header to the shared template map on every query).
    headers: HeaderMap,
}

impl PrometheusProvider {
    /// Validates `config` and builds the client.
    pub fn new(config: PrometheusConfig) -> Result<Self, ProviderError> {
        // Flagger joins the base path with `api/v1/query` and drops the base's query and fragment.
        let query_url = providers::join_path(&providers::base_url(KIND, &config.address)?, "/api/v1/query");

        let mut headers = HeaderMap::new();
        for (name, values) in &config.headers {
            let header =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| ProviderError::InvalidHeader {
                    provider: KIND,
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            for value in values {
                let value = HeaderValue::from_str(value).map_err(|e| ProviderError::InvalidHeader {
                    provider: KIND,
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
                headers.append(header.clone(), value);
            }
        }
        if let Some(auth) = &config.auth {
            let value = match auth {
                PrometheusAuth::Bearer(token) => format!("Bearer {token}"),
                PrometheusAuth::Basic { username, password } => {
                    format!(
                        "Basic {}",
                        providers::base64_encode(format!("{username}:{password}").as_bytes())
                    )
                }
            };
            let value = providers::secret_header(KIND, AUTHORIZATION.as_str(), &value)?;
            // The Secret's credentials replace an Authorization header from the template.
            headers.insert(AUTHORIZATION, value);
        }

        Ok(Self {
            http: providers::http_client(KIND, config.timeout, config.insecure_skip_verify)?,
            query_url,
            headers,
        })
    }

    /// The URL queries are sent to (without the query string).
    pub fn query_url(&self) -> &Url {
        &self.query_url
    }

    async fn query(&self, query: &str) -> Result<f64, ProviderError> {
        let query = collapse_whitespace(query);
        let request = self
            .http
            .get(self.query_url.clone())
            .query(&[("query", query.as_str())])
            .headers(self.headers.clone());
        let body = providers::fetch(KIND, request, &self.query_url, |status| status < 400).await?;
        parse_response(&body)
    }
}

impl MetricProvider for PrometheusProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
        self.query(query)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let value = self.query(ONLINE_QUERY).await?;
        if value == 1.0 {
            Ok(())
        } else {
            Err(ProviderError::NotOnline {
                provider: KIND,
                detail: format!("value is {value}, not 1, for query: {ONLINE_QUERY}"),
            })
        }
    }
}

/// Parses an `/api/v1/query` response as Flagger does: every vector element's value is read and the last
/// one wins; a matrix is an error; no element, or a NaN value, is no data. Unlike Flagger, a scalar result
/// is accepted (Flagger fails to decode it).
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let parse_error = |detail: String| ProviderError::Parse {
        provider: KIND,
        detail,
        body: truncate_body(body),
    };
    let json: Value = serde_json::from_str(body).map_err(|e| parse_error(format!("invalid JSON: {e}")))?;
    if json.get("status").and_then(Value::as_str) == Some("error") {
        let error = json.get("error").and_then(Value::as_str).unwrap_or_default();
        return Err(parse_error(format!("status is \"error\": {error}")));
    }
    let data = json.get("data").unwrap_or(&Value::Null);
    let result = data.get("result").unwrap_or(&Value::Null);
    let result_type = data.get("resultType").and_then(Value::as_str).unwrap_or_default();
    let sample_value = |sample: &Value| -> Result<Option<f64>, ProviderError> {
        let Some(pair) = sample.as_array().filter(|p| p.len() == 2) else {
            return Err(parse_error(format!(
                "a sample is not a [timestamp, value] pair: {sample}"
            )));
        };
        match &pair[1] {
            Value::String(s) => parse_go_float(s)
                .map(Some)
                .ok_or_else(|| parse_error(format!("value {s:?} is not a number"))),
            // Flagger ignores non-string values.
            _ => Ok(None),
        }
    };
    let mut value = None;
    match result {
        Value::Null => {}
        Value::Array(items) if result_type == "scalar" || items.first().is_some_and(|v| !v.is_object()) => {
            value = sample_value(result)?;
        }
        Value::Array(items) => {
            for item in items {
                if item.get("values").is_some_and(|v| !v.is_null()) {
                    return Err(ProviderError::MultipleValues {
                        provider: KIND,
                        detail: "a range vector (matrix); the query must return an instant vector".to_owned(),
                    });
                }
                let sample = item.get("value").unwrap_or(&Value::Null);
                if let Some(v) = sample_value(sample)? {
                    value = Some(v);
                }
            }
        }
        other => return Err(parse_error(format!("data.result is not a list: {other}"))),
    }
    match value {
        None => Err(ProviderError::NoValues {
            provider: KIND,
            reason: NoDataReason::Empty,
        }),
        Some(v) if v.is_nan() => Err(ProviderError::NoValues {
            provider: KIND,
            reason: NoDataReason::NaN,
        }),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("user:pa ss", "dXNlcjpwYSBzcw=="),
        ] {
            assert_eq!(crate::providers::base64_encode(input.as_bytes()), expected);
        }
    }

    #[test]
    fn go_floats() {
        assert_eq!(parse_go_float("1.5"), Some(1.5));
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert!(parse_go_float("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_go_float("abc"), None);
    }

    #[test]
    fn secret_key_rules() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
                .collect()
        };
        assert_eq!(
            PrometheusAuth::from_secret(&data(&[("token", "t"), ("username", "u")])).unwrap(),
            PrometheusAuth::Bearer("t".into())
        );
        assert_eq!(
            PrometheusAuth::from_secret(&data(&[("username", "u"), ("password", "p")])).unwrap(),
            PrometheusAuth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        let err = PrometheusAuth::from_secret(&data(&[("password", "p")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prometheus credentials does not contain a username"
        );
        let err = PrometheusAuth::from_secret(&data(&[("username", "u")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prometheus credentials does not contain a password"
        );
        assert_eq!(
            format!("{:?}", PrometheusAuth::Bearer("secret".into())),
            "Bearer(<redacted>)"
        );
    }

    #[test]
    fn addresses() {
        let url =
            |a: &str| PrometheusProvider::new(PrometheusConfig::new(a)).map(|p| p.query_url().to_string());
        assert_eq!(url("http://prom:9090").unwrap(), "http://prom:9090/api/v1/query");
        assert_eq!(
            url("http://prom:9090/prefix/?x=1").unwrap(),
            "http://prom:9090/prefix/api/v1/query"
        );
        let err = url("").unwrap_err();
        assert!(matches!(err, ProviderError::InvalidAddress { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("prometheus address \"\" is not a valid URL"),
            "{err}"
        );
        assert!(
            url("prometheus:9090")
                .unwrap_err()
                .to_string()
                .contains("not http or https")
        );
    }

    #[test]
    fn configs_key_a_map_by_every_field() {
        use std::collections::HashMap;
        let base = PrometheusConfig::new("http://prom:9090");
        let with = |f: &dyn Fn(&mut PrometheusConfig)| {
            let mut c = base.clone();
            f(&mut c);
            c
        };
        let variants = [
            base.clone(),
            with(&|c| c.address = "http://other:9090".into()),
            with(&|c| c.auth = Some(PrometheusAuth::Bearer("a".into()))),
            with(&|c| c.auth = Some(PrometheusAuth::Bearer("b".into()))),
            with(&|c| {
                c.auth = Some(PrometheusAuth::Basic {
                    username: "u".into(),
                    password: "p".into(),
                });
            }),
            with(&|c| {
                c.headers.insert("X-Scope".into(), vec!["1".into()]);
            }),
            with(&|c| c.insecure_skip_verify = true),
            with(&|c| c.timeout = Duration::from_secs(1)),
        ];
        let map: HashMap<PrometheusConfig, usize> = variants.iter().cloned().zip(0..).collect();
        assert_eq!(map.len(), variants.len(), "every field takes part in the key");
        assert_eq!(map.get(&PrometheusConfig::new("http://prom:9090")), Some(&0));
    }
}
