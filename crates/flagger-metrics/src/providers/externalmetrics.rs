//! The externalmetrics provider: the Kubernetes external metrics API
//! (`GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<namespace>/<metric>?labelSelector=<selector>`).
//!
//! Facts from Flagger 1.44 (`pkg/metrics/providers/externalmetrics.go`): the query is
//! `<namespace>/<metricName>?labelSelector=<urlencoded selector>` where only the metric name is required
//! (namespace `default`); the selector is parsed and sent in its canonical form (requirements sorted by key);
//! the template's `address` replaces the API server host, the Secret's `token` is sent as a bearer token,
//! `insecureSkipVerify` is honoured and requests time out after 5 s. The value is the first item's `value`
//! (a Kubernetes quantity such as `100m`, read as a float); no item is no data. `is_online` lists
//! `kube-system/dummy-metric`: any answer but an error means online.
//!
//! Without `address` the operator's own API client is used (its credentials; a `token` is added as the
//! request's `Authorization` header, which the client's own token authentication replaces, as a service
//! account token file takes precedence over the token in Flagger). With `address`, requests go to that
//! server with the `token` only: the operator's service account credentials are not sent to another host.
//! Unlike Flagger, whitespace around the query (a trailing newline of a YAML block) is ignored.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::Value;
use url::Url;

use super::{
    HTTP_TIMEOUT, base_url, config_error, credential, error_chain, http_client, no_values, parse_error,
    secret_header,
};
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit, truncate_body};

const KIND: &str = "externalmetrics";

/// The API group and version of external metrics.
pub const API_PATH: &str = "/apis/external.metrics.k8s.io/v1beta1";

/// Flagger's request timeout.
pub const TIMEOUT: Duration = HTTP_TIMEOUT;

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalMetricQuery {
    /// Namespace (`default` when the query has none).
    pub namespace: String,
    /// Metric name.
    pub metric: String,
    /// The canonical label selector (empty: everything).
    pub label_selector: String,
}

impl ExternalMetricQuery {
    /// The request path and query string, e.g.
    /// `/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/m?labelSelector=a%3Db`.
    pub fn path_and_query(&self) -> String {
        let mut path = format!(
            "{API_PATH}/namespaces/{}/{}",
            super::uri_encode(&self.namespace, false),
            super::uri_encode(&self.metric, false)
        );
        if !self.label_selector.is_empty() {
            path.push('?');
            path.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("labelSelector", &self.label_selector)
                    .finish(),
            );
        }
        path
    }
}

/// Parses `<namespace>/<metricName>?labelSelector=<urlencoded selector>` as Flagger does.
pub fn parse_query(query: &str) -> Result<ExternalMetricQuery, ProviderError> {
    let query = query.trim();
    let malformed = |what: &str| {
        query_error(format!(
            "malformed query string, {what}expected <namespace>/<metricName>?labelSelector=<urlencoded label \
             selectors>, got {query}"
        ))
    };
    let without_fragment = query.split_once('#').map_or(query, |(q, _)| q);
    let (raw_path, raw_query) = without_fragment.split_once('?').unwrap_or((without_fragment, ""));
    if query.chars().any(char::is_control) {
        return Err(malformed(""));
    }
    let path = percent_decode(raw_path).ok_or_else(|| malformed(""))?;
    let parts: Vec<&str> = path.split('/').collect();
    let (namespace, metric) = match parts.as_slice() {
        [metric] => ("default", *metric),
        [namespace, metric] => (
            if namespace.is_empty() {
                "default"
            } else {
                namespace
            },
            *metric,
        ),
        _ => return Err(malformed("too many slashes, ")),
    };
    if metric.is_empty() {
        return Err(query_error("metric name cannot be empty".to_owned()));
    }
    let raw_selector = url::form_urlencoded::parse(raw_query.as_bytes())
        .find(|(k, _)| k == "labelSelector")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let label_selector = if raw_selector.is_empty() {
        String::new()
    } else {
        canonical_selector(&raw_selector).map_err(|e| {
            query_error(format!(
                "error parsing label selector from string {raw_selector}: {e}"
            ))
        })?
    };
    Ok(ExternalMetricQuery {
        namespace: namespace.to_owned(),
        metric: metric.to_owned(),
        label_selector,
    })
}

fn query_error(message: String) -> ProviderError {
    config_error(
        KIND,
        format!("externalmetrics: error parsing metric query: {message}"),
    )
}

fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Label selector operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Exists,
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    In,
    NotIn,
    Symbol(&'static str),
}

const SYMBOLS: [&str; 9] = ["!=", "==", "!", "(", ")", ",", "=", ">", "<"];

fn tokenize(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = input;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return tokens;
        }
        if let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            tokens.push(Token::Symbol(symbol));
            rest = &rest[symbol.len()..];
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || "!=(),<>".contains(c))
            .unwrap_or(rest.len());
        let word = &rest[..end];
        tokens.push(match word {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Ident(word.to_owned()),
        });
        rest = &rest[end..];
    }
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "end of string".to_owned(),
        Some(Token::Ident(s)) => format!("'{s}'"),
        Some(Token::In) => "'in'".to_owned(),
        Some(Token::NotIn) => "'notin'".to_owned(),
        Some(Token::Symbol(s)) => format!("'{s}'"),
    }
}

/// Parses a Kubernetes label selector (`labels.Parse`) and writes it canonically: requirements sorted by
/// key, set values sorted.
pub fn canonical_selector(selector: &str) -> Result<String, String> {
    let tokens = tokenize(selector);
    let mut pos = 0;
    let mut requirements: Vec<(String, Op, Vec<String>)> = Vec::new();
    loop {
        let (key, mut op) = match tokens.get(pos) {
            Some(Token::Symbol("!")) => match tokens.get(pos + 1) {
                Some(Token::Ident(key)) => {
                    pos += 2;
                    (key.clone(), Op::DoesNotExist)
                }
                other => return Err(format!("found {}, expected: identifier", describe(other))),
            },
            Some(Token::Ident(key)) => {
                pos += 1;
                (key.clone(), Op::Exists)
            }
            other => return Err(format!("found {}, expected: !, identifier", describe(other))),
        };
        validate_key(&key)?;
        let mut values = Vec::new();
        if op == Op::Exists {
            let next = tokens.get(pos);
            if !matches!(next, None | Some(Token::Symbol(","))) {
                op = match next {
                    Some(Token::Symbol("=")) => Op::Equals,
                    Some(Token::Symbol("==")) => Op::DoubleEquals,
                    Some(Token::Symbol("!=")) => Op::NotEquals,
                    Some(Token::Symbol(">")) => Op::GreaterThan,
                    Some(Token::Symbol("<")) => Op::LessThan,
                    Some(Token::In) => Op::In,
                    Some(Token::NotIn) => Op::NotIn,
                    other => {
                        return Err(format!(
                            "found {}, expected: =, !=, ==, in, notin",
                            describe(other)
                        ));
                    }
                };
                pos += 1;
                if matches!(op, Op::In | Op::NotIn) {
                    if tokens.get(pos) != Some(&Token::Symbol("(")) {
                        return Err(format!("found {}, expected: '('", describe(tokens.get(pos))));
                    }
                    pos += 1;
                    let mut current = String::new();
                    loop {
                        match tokens.get(pos) {
                            Some(Token::Ident(v)) => current = v.clone(),
                            Some(Token::Symbol(",")) => values.push(std::mem::take(&mut current)),
                            Some(Token::Symbol(")")) => {
                                values.push(std::mem::take(&mut current));
                                pos += 1;
                                break;
                            }
                            other => {
                                return Err(format!(
                                    "found {}, expected: ',', ')' or identifier",
                                    describe(other)
                                ));
                            }
                        }
                        pos += 1;
                    }
                    values.sort();
                    values.dedup();
                } else {
                    match tokens.get(pos) {
                        None | Some(Token::Symbol(",")) => values.push(String::new()),
                        Some(Token::Ident(v)) => {
                            values.push(v.clone());
                            pos += 1;
                        }
                        other => return Err(format!("found {}, expected: identifier", describe(other))),
                    }
                }
            }
        }
        for value in &values {
            if matches!(op, Op::GreaterThan | Op::LessThan) {
                value.parse::<i64>().map_err(|_| {
                    format!("for 'Gt', 'Lt' operators, the value must be an integer: {value}")
                })?;
            } else {
                validate_value(value)?;
            }
        }
        requirements.push((key, op, values));
        match tokens.get(pos) {
            None => break,
            Some(Token::Symbol(",")) => {
                pos += 1;
                if !matches!(tokens.get(pos), Some(Token::Ident(_) | Token::Symbol("!"))) {
                    return Err(format!(
                        "found {}, expected: identifier after ','",
                        describe(tokens.get(pos))
                    ));
                }
            }
            other => {
                return Err(format!(
                    "found {}, expected: ',' or 'end of string'",
                    describe(other)
                ));
            }
        }
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements
        .iter()
        .map(|(key, op, values)| match op {
            Op::Exists => key.clone(),
            Op::DoesNotExist => format!("!{key}"),
            Op::Equals => format!("{key}={}", values.join(",")),
            Op::DoubleEquals => format!("{key}=={}", values.join(",")),
            Op::NotEquals => format!("{key}!={}", values.join(",")),
            Op::GreaterThan => format!("{key}>{}", values.join(",")),
            Op::LessThan => format!("{key}<{}", values.join(",")),
            Op::In => format!("{key} in ({})", values.join(",")),
            Op::NotIn => format!("{key} notin ({})", values.join(",")),
        })
        .collect::<Vec<_>>()
        .join(","))
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn is_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A qualified name: `[prefix/]name`, the prefix a DNS subdomain.
fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let subdomain = |p: &str| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    };
    if !is_name(name) || prefix.is_some_and(|p| !subdomain(p)) {
        return Err(format!(
            "invalid label key {key:?}: a qualified name must consist of alphanumeric characters, '-', '_' \
             or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain \
             prefix and '/'"
        ));
    }
    Ok(())
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value: {value:?}: a valid label must be an empty string or consist of alphanumeric \
             characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63)"
        ))
    }
}

/// A Kubernetes quantity (`100m`, `1.5`, `2Ki`, `1e3`) as a float (`AsApproximateFloat64`).
pub fn parse_quantity(quantity: &str) -> Option<f64> {
    let s = quantity.trim();
    let number_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(number_end);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let exp: i32 = exponent[1..].parse().ok()?;
            10f64.powi(exp)
        }
        _ => return None,
    };
    Some(number * multiplier)
}

/// Reads `items[0].value` of an `ExternalMetricValueList`.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let json: Value =
        serde_json::from_str(body).map_err(|e| parse_error(KIND, format!("invalid JSON: {e}"), body))?;
    let items = match json.get("items") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(parse_error(KIND, format!("items is not a list: {other}"), body)),
    };
    let Some(item) = items.first() else {
        return Err(no_values(KIND, NoDataReason::Empty));
    };
    let value = match item.get("value") {
        Some(Value::String(s)) => parse_quantity(s),
        Some(Value::Number(n)) => n.as_f64(),
        _ => None,
    }
    .ok_or_else(|| {
        parse_error(
            KIND,
            format!(
                "items[0].value is not a quantity: {}",
                item.get("value").unwrap_or(&Value::Null)
            ),
            body,
        )
    })?;
    Ok(value)
}

/// How requests are sent.
#[derive(Clone)]
enum Backend {
    /// The operator's API client.
    Kube {
        client: kube::Client,
        token: Option<String>,
    },
    /// A server at the template's address.
    Http {
        http: reqwest::Client,
        base: Url,
        authorization: Option<HeaderValue>,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kube { .. } => f.write_str("Kube"),
            Self::Http { base, .. } => f
                .debug_struct("Http")
                .field("base", &base.as_str())
                .finish_non_exhaustive(),
        }
    }
}

/// An external metrics API client.
#[derive(Clone, Debug)]
pub struct ExternalMetricsProvider {
    backend: Backend,
}

impl ExternalMetricsProvider {
    /// Uses the template's `address` (or the operator's API client), `token` and `insecureSkipVerify`.
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        let token = credential(init.credentials, "token");
        let backend = match init.provider.address.as_deref().filter(|a| !a.is_empty()) {
            Some(address) => {
                let authorization = token
                    .map(|t| secret_header(KIND, AUTHORIZATION.as_str(), &format!("Bearer {t}")))
                    .transpose()?;
                Backend::Http {
                    http: http_client(KIND, TIMEOUT, init.provider.insecure_skip_verify())?,
                    base: base_url(KIND, address)?,
                    authorization,
                }
            }
            None => match init.kube {
                Some(client) => Backend::Kube {
                    client: client.clone(),
                    token,
                },
                None => {
                    return Err(config_error(
                        KIND,
                        "could not initialize ExternalMetricsProvider: rest config is nil",
                    ));
                }
            },
        };
        Ok(Self { backend })
    }

    /// GETs `path_and_query` and returns the body of a successful answer.
    async fn get(&self, path_and_query: &str) -> Result<String, ProviderError> {
        match &self.backend {
            Backend::Http {
                http,
                base,
                authorization,
            } => {
                let url_text = format!("{}{path_and_query}", base.as_str().trim_end_matches('/'));
                let url = Url::parse(&url_text).map_err(|e| ProviderError::InvalidAddress {
                    provider: KIND,
                    address: url_text.clone(),
                    reason: e.to_string(),
                })?;
                let mut request = http.get(url.clone()).header("accept", "application/json");
                if let Some(authorization) = authorization {
                    request = request.header(AUTHORIZATION, authorization.clone());
                }
                super::fetch(KIND, request, &url, |s| (200..300).contains(&s)).await
            }
            Backend::Kube { client, token } => {
                let mut request = http::Request::get(path_and_query).header("accept", "application/json");
                if let Some(token) = token {
                    request = request.header(AUTHORIZATION.as_str(), format!("Bearer {token}"));
                }
                let request = request
                    .body(Vec::new())
                    .map_err(|e| ProviderError::InvalidAddress {
                        provider: KIND,
                        address: path_and_query.to_owned(),
                        reason: e.to_string(),
                    })?;
                let path = path_and_query.split('?').next().unwrap_or_default().to_owned();
                match tokio::time::timeout(TIMEOUT, client.request_text(request)).await {
                    Err(_) => Err(ProviderError::Request {
                        provider: KIND,
                        url: path,
                        reason: format!("timed out after {TIMEOUT:?}"),
                    }),
                    Ok(Ok(body)) => Ok(body),
                    Ok(Err(kube::Error::Api(status))) => {
                        let code = reqwest::StatusCode::from_u16(status.code).ok();
                        Err(ProviderError::Status {
                            provider: KIND,
                            status: status.code,
                            status_text: code
                                .and_then(|c| c.canonical_reason())
                                .unwrap_or_default()
                                .to_owned(),
                            body: truncate_body(&format!("{}: {}", status.reason, status.message)),
                        })
                    }
                    Ok(Err(e)) => Err(ProviderError::Request {
                        provider: KIND,
                        url: path,
                        reason: error_chain(&e),
                    }),
                }
            }
        }
    }

    async fn query(&self, query: &str) -> Result<f64, ProviderError> {
        let query = parse_query(query)?;
        let body = self.get(&query.path_and_query()).await?;
        parse_response(&body)
    }
}

impl MetricProvider for ExternalMetricsProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
        self.query(query)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let probe = ExternalMetricQuery {
            namespace: "kube-system".to_owned(),
            metric: "dummy-metric".to_owned(),
            label_selector: String::new(),
        };
        self.get(&probe.path_and_query())
            .await
            .map(|_| ())
            .map_err(|e| ProviderError::NotOnline {
                provider: KIND,
                detail: format!("external metrics service unavailable: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = |s: &str| parse_query(s).map(|q| (q.namespace, q.metric, q.label_selector));
        let ok = |ns: &str, m: &str, sel: &str| Ok((ns.to_owned(), m.to_owned(), sel.to_owned()));
        assert_eq!(
            q("metric").map_err(|e| e.to_string()),
            ok("default", "metric", "")
        );
        assert_eq!(
            q("/metric").map_err(|e| e.to_string()),
            ok("default", "metric", "")
        );
        assert_eq!(
            q("ns/metric\n").map_err(|e| e.to_string()),
            ok("ns", "metric", "")
        );
        assert_eq!(
            q("ns/m?labelSelector=b%3D2%2Ca%20in%20(y%2Cx)").map_err(|e| e.to_string()),
            ok("ns", "m", "a in (x,y),b=2")
        );
        for (query, error) in [
            ("a/b/c", "too many slashes"),
            ("ns/", "metric name cannot be empty"),
            ("", "metric name cannot be empty"),
            (
                "ns/m?labelSelector=%3D%3D",
                "error parsing label selector from string ==",
            ),
            ("ns/%zz", "malformed query string"),
        ] {
            let err = parse_query(query).unwrap_err().to_string();
            assert!(
                err.starts_with("externalmetrics: error parsing metric query: "),
                "{err}"
            );
            assert!(err.contains(error), "{query}: {err}");
        }
    }

    #[test]
    fn selectors_are_canonical() {
        for (input, canonical) in [
            ("app=podinfo", "app=podinfo"),
            ("z==1, a!=2", "a!=2,z==1"),
            (
                "env notin (prod, dev), !beta, alpha",
                "alpha,!beta,env notin (dev,prod)",
            ),
            ("app=", "app="),
            ("x>5,example.com/tier", "example.com/tier,x>5"),
            ("k in ()", "k in ()"),
        ] {
            assert_eq!(canonical_selector(input).as_deref(), Ok(canonical), "{input}");
        }
        for bad in [
            "=x", "a=b=c", "a in b", "a>b", "-a", "a=-b", "a,", "a b", "a in (b",
        ] {
            assert!(canonical_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        for (q, v) in [
            ("100m", 0.1),
            ("1", 1.0),
            ("-2.5", -2.5),
            ("2k", 2000.0),
            ("1Ki", 1024.0),
            ("1e3", 1000.0),
            ("5E-1", 0.5),
            ("250u", 0.00025),
            (".5", 0.5),
        ] {
            let parsed = parse_quantity(q).unwrap();
            assert!((parsed - v).abs() < 1e-12, "{q}: {parsed}");
        }
        for bad in ["", "m", "1x", "1..2", "abc", "1Kib"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }
}
