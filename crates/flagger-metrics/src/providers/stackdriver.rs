//! The Stackdriver (Google Cloud Monitoring) provider: MQL queries through the REST API
//! (`POST /v3/projects/<project>/timeSeries:query` with `{"query": <MQL>}`).
//!
//! Facts from Flagger 1.44 (`pkg/metrics/providers/stackdriver.go`): with a `secretRef`, the Secret must
//! hold `project` (`stackdriver credentials does not contain a project id`) and may hold
//! `serviceAccountKey` (a service account's JSON key); without a key, Application Default Credentials are
//! used. The value is the first series' `pointData[0].values[0]` read as a double: a series without points
//! or a point without values is no data, and a value that is not a double (e.g. an `int64Value`) reads as
//! 0, as Go's `GetDoubleValue` does. `is_online` runs the empty query: success or `INVALID_ARGUMENT` (HTTP
//! 400) means online, any other status is an error.
//!
//! Credentials: a service account key is exchanged for an access token at the key's `token_uri` (OAuth 2.0
//! JWT bearer grant, RS256). Without one, the first Application Default Credentials steps are followed: the
//! key file named by `GOOGLE_APPLICATION_CREDENTIALS`, else the GCE metadata server (`GCE_METADATA_HOST`,
//! default `169.254.169.254`). Tokens are cached until a minute before they expire. A template `address`
//! replaces `https://monitoring.googleapis.com` (tests, private endpoints).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::{rand, signature};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::{
    HTTP_TIMEOUT, base_url, base64_encode, config_error, credential, error_chain, http_client, join_path,
    no_values, not_nan, parse_error, send, status_error,
};
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit, truncate_body};

const KIND: &str = "stackdriver";

/// Cloud Monitoring's API address when the template has none.
pub const DEFAULT_ADDRESS: &str = "https://monitoring.googleapis.com";

/// Google's token endpoint, for a key without `token_uri`.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The default GCE metadata server.
pub const DEFAULT_METADATA_HOST: &str = "169.254.169.254";

/// The OAuth scopes requested (the Cloud Monitoring client library's defaults).
pub const SCOPES: &str = "https://www.googleapis.com/auth/cloud-platform \
                          https://www.googleapis.com/auth/monitoring \
                          https://www.googleapis.com/auth/monitoring.read \
                          https://www.googleapis.com/auth/monitoring.write";

/// The grant type of the service account token exchange (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Result pages read at most while they carry no series but a next page token.
const MAX_PAGES: usize = 10;

/// A token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// The fields of a service account JSON key that are used.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// `service_account` for a service account key.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// The key's id (the JWT `kid`).
    #[serde(default)]
    pub private_key_id: String,
    /// PEM PKCS#8 private key.
    pub private_key: String,
    /// The service account (the JWT `iss`).
    pub client_email: String,
    /// Where tokens are exchanged (the JWT `aud`).
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// Where access tokens come from.
enum TokenSource {
    /// A service account key: JWT bearer exchange at `token_uri`.
    ServiceAccount {
        key: ServiceAccountKey,
        signer: signature::RsaKeyPair,
        token_uri: Url,
    },
    /// The GCE metadata server's token of the instance's default service account.
    Metadata { url: Url },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ServiceAccount { key, token_uri, .. } => f
                .debug_struct("ServiceAccount")
                .field("client_email", &key.client_email)
                .field("token_uri", &token_uri.as_str())
                .finish_non_exhaustive(),
            Self::Metadata { url } => f.debug_struct("Metadata").field("url", &url.as_str()).finish(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A Cloud Monitoring `timeSeries:query` client.
#[derive(Clone, Debug)]
pub struct StackdriverProvider {
    http: reqwest::Client,
    query_url: Url,
    tokens: Arc<TokenSource>,
    cached: Arc<Mutex<Option<(String, Instant)>>>,
}

impl StackdriverProvider {
    /// Reads the project and the optional service account key of the template's Secret; without a key,
    /// uses `GOOGLE_APPLICATION_CREDENTIALS` or the metadata server (`GCE_METADATA_HOST`).
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        let ambient_key = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
            .filter(|p| !p.is_empty())
            .map(|path| {
                std::fs::read(&path).map_err(|e| {
                    config_error(
                        KIND,
                        format!(
                            "stackdriver: cannot read GOOGLE_APPLICATION_CREDENTIALS file {}: {e}",
                            path.to_string_lossy()
                        ),
                    )
                })
            })
            .transpose()?;
        let metadata_host = std::env::var("GCE_METADATA_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_METADATA_HOST.to_owned());
        Self::build(init, ambient_key, &metadata_host)
    }

    /// As [`new`](Self::new), but without a service account key in the Secret the token comes from the
    /// metadata server at `metadata_host` (`host[:port]`); the environment is not read.
    pub fn with_metadata_host(init: &ProviderInit<'_>, metadata_host: &str) -> Result<Self, ProviderError> {
        Self::build(init, None, metadata_host)
    }

    fn build(
        init: &ProviderInit<'_>,
        ambient_key: Option<Vec<u8>>,
        metadata_host: &str,
    ) -> Result<Self, ProviderError> {
        let (project, secret_key) = if init.provider.secret_ref.is_some() {
            let project = credential(init.credentials, "project")
                .ok_or_else(|| config_error(KIND, "stackdriver credentials does not contain a project id"))?;
            (project, init.credentials.get("serviceAccountKey").cloned())
        } else {
            return Err(config_error(
                KIND,
                "stackdriver: no project: the template needs a secretRef whose Secret has a project key",
            ));
        };
        if project.is_empty() || project.contains('/') {
            return Err(config_error(
                KIND,
                format!("stackdriver: project {project:?} is not a project id"),
            ));
        }
        let tokens = match secret_key.or(ambient_key) {
            Some(json) => service_account(&json)?,
            None => {
                let address = format!(
                    "http://{metadata_host}/computeMetadata/v1/instance/service-accounts/default/token"
                );
                let url = Url::parse(&address).map_err(|e| ProviderError::InvalidAddress {
                    provider: KIND,
                    address,
                    reason: e.to_string(),
                })?;
                TokenSource::Metadata { url }
            }
        };
        let address = init
            .provider
            .address
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or(DEFAULT_ADDRESS);
        let base = base_url(KIND, address)?;
        let query_url = join_path(&base, &format!("/v3/projects/{project}/timeSeries:query"));
        Ok(Self {
            http: http_client(KIND, HTTP_TIMEOUT, init.provider.insecure_skip_verify())?,
            query_url,
            tokens: Arc::new(tokens),
            cached: Arc::new(Mutex::new(None)),
        })
    }

    /// The URL queries are sent to.
    pub fn query_url(&self) -> &Url {
        &self.query_url
    }

    /// A valid access token, from the cache or newly obtained.
    async fn token(&self) -> Result<String, ProviderError> {
        if let Ok(cached) = self.cached.lock()
            && let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (url, request) = match self.tokens.as_ref() {
            TokenSource::ServiceAccount {
                key,
                signer,
                token_uri,
            } => {
                let assertion = jwt_assertion(key, signer, token_uri.as_str(), jiff::Timestamp::now())?;
                let form = [
                    ("grant_type", JWT_BEARER_GRANT),
                    ("assertion", assertion.as_str()),
                ];
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish();
                let request = self
                    .http
                    .post(token_uri.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body);
                (token_uri, request)
            }
            TokenSource::Metadata { url } => (
                url,
                self.http.get(url.clone()).header("Metadata-Flavor", "Google"),
            ),
        };
        let request_error = |reason: String| ProviderError::Request {
            provider: KIND,
            url: url.to_string(),
            reason,
        };
        let response = request.send().await.map_err(|e| request_error(error_chain(&e)))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| request_error(error_chain(&e)))?;
        if !status.is_success() {
            return Err(request_error(format!(
                "cannot get an access token: status {}: {}",
                status.as_u16(),
                truncate_body(&body)
            )));
        }
        let token: TokenResponse = serde_json::from_str(&body)
            .map_err(|e| request_error(format!("cannot read the access token response: {e}")))?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600)).saturating_sub(TOKEN_MARGIN);
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((token.access_token.clone(), Instant::now() + lifetime));
        }
        Ok(token.access_token)
    }

    /// Posts `query` (and a page token), returning the status and body.
    async fn post(
        &self,
        query: &str,
        page_token: Option<&str>,
    ) -> Result<(reqwest::StatusCode, String), ProviderError> {
        let token = self.token().await?;
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| ProviderError::InvalidHeader {
                provider: KIND,
                name: AUTHORIZATION.to_string(),
                reason: format!("the access token is not a valid header value: {e}"),
            })?;
        authorization.set_sensitive(true);
        let mut body = json!({ "query": query });
        if let Some(page_token) = page_token {
            body["pageToken"] = Value::String(page_token.to_owned());
        }
        let request = self
            .http
            .post(self.query_url.clone())
            .header(AUTHORIZATION, authorization)
            .json(&body);
        // `query_url` has no query string, so errors name it in full, as before.
        send(KIND, request, &self.query_url).await
    }

    async fn query(&self, query: &str) -> Result<f64, ProviderError> {
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let (status, body) = self.post(query, page_token.as_deref()).await?;
            if !status.is_success() {
                return Err(status_error(KIND, status, &body));
            }
            match parse_page(&body)? {
                Page::Value(value) => return value,
                Page::Next(token) => page_token = Some(token),
                Page::Empty => break,
            }
        }
        Err(no_values(KIND, NoDataReason::Empty))
    }
}

/// What a response page holds.
enum Page {
    /// The first series' value (or why there is none).
    Value(Result<f64, ProviderError>),
    /// No series, but a further page.
    Next(String),
    /// No series and no further page.
    Empty,
}

fn parse_page(body: &str) -> Result<Page, ProviderError> {
    let json: Value =
        serde_json::from_str(body).map_err(|e| parse_error(KIND, format!("invalid JSON: {e}"), body))?;
    if !json.is_object() {
        return Err(parse_error(KIND, "the response is not an object", body));
    }
    let series = match json.get("timeSeriesData") {
        None | Some(Value::Null) => None,
        Some(Value::Array(series)) => series.first(),
        Some(other) => {
            return Err(parse_error(
                KIND,
                format!("timeSeriesData is not a list: {other}"),
                body,
            ));
        }
    };
    let Some(series) = series else {
        return Ok(match json.get("nextPageToken").and_then(Value::as_str) {
            Some(token) if !token.is_empty() => Page::Next(token.to_owned()),
            _ => Page::Empty,
        });
    };
    Ok(Page::Value(first_value(series, body)))
}

/// `pointData[0].values[0].doubleValue` of a series.
fn first_value(series: &Value, body: &str) -> Result<f64, ProviderError> {
    let empty = no_values(KIND, NoDataReason::Empty);
    let list = |value: Option<&Value>, name: &str| -> Result<Option<Value>, ProviderError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(items.first().cloned()),
            Some(other) => Err(parse_error(KIND, format!("{name} is not a list: {other}"), body)),
        }
    };
    let Some(point) = list(series.get("pointData"), "pointData")? else {
        return Err(empty);
    };
    let Some(value) = list(point.get("values"), "values")? else {
        return Err(empty);
    };
    let double = match value.get("doubleValue") {
        // Not a double (int64Value, boolValue, ...): Go's GetDoubleValue reads 0.
        None | Some(Value::Null) => 0.0,
        Some(Value::Number(n)) => n.as_f64().unwrap_or_default(),
        // proto3 JSON writes non-finite doubles (and sometimes numbers) as strings.
        Some(Value::String(s)) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            other => other
                .parse()
                .map_err(|_| parse_error(KIND, format!("doubleValue {other:?} is not a number"), body))?,
        },
        Some(other) => {
            return Err(parse_error(
                KIND,
                format!("doubleValue {other} is not a number"),
                body,
            ));
        }
    };
    not_nan(KIND, double)
}

fn service_account(json: &[u8]) -> Result<TokenSource, ProviderError> {
    let key: ServiceAccountKey = serde_json::from_slice(json).map_err(|e| {
        config_error(
            KIND,
            format!("stackdriver: the service account key is not valid: {e}"),
        )
    })?;
    if !key.type_.is_empty() && key.type_ != "service_account" {
        return Err(config_error(
            KIND,
            format!(
                "stackdriver: credentials of type {:?} are not supported (only service_account keys)",
                key.type_
            ),
        ));
    }
    let der = pem_decode(&key.private_key).ok_or_else(|| {
        config_error(
            KIND,
            "stackdriver: the service account key's private_key is not a PEM key",
        )
    })?;
    let signer = signature::RsaKeyPair::from_pkcs8(&der)
        .or_else(|_| signature::RsaKeyPair::from_der(&der))
        .map_err(|e| {
            config_error(
                KIND,
                format!("stackdriver: the service account key's private_key is not an RSA key: {e}"),
            )
        })?;
    let token_uri = key
        .token_uri
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
    let token_uri = base_url(KIND, &token_uri)?;
    Ok(TokenSource::ServiceAccount {
        key,
        signer,
        token_uri,
    })
}

/// The signed JWT (RS256) a service account exchanges for an access token at `audience`, issued at `now`
/// and valid for an hour.
pub fn jwt_assertion(
    key: &ServiceAccountKey,
    signer: &signature::RsaKeyPair,
    audience: &str,
    now: jiff::Timestamp,
) -> Result<String, ProviderError> {
    let mut header = json!({ "alg": "RS256", "typ": "JWT" });
    if !key.private_key_id.is_empty() {
        header["kid"] = Value::String(key.private_key_id.clone());
    }
    let iat = now.as_second();
    let claims = json!({
        "iss": key.client_email,
        "scope": SCOPES,
        "aud": audience,
        "iat": iat,
        "exp": iat + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let mut sig = vec![0; signer.public_modulus_len()];
    signer
        .sign(
            &signature::RSA_PKCS1_SHA256,
            &rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        )
        .map_err(|_| {
            config_error(
                KIND,
                "stackdriver: cannot sign the token request with the service account key",
            )
        })?;
    Ok(format!("{signing_input}.{}", base64url(&sig)))
}

/// Base64url without padding (RFC 7515).
fn base64url(input: &[u8]) -> String {
    base64_encode(input)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// The DER bytes of the first PEM block of `pem`.
fn pem_decode(pem: &str) -> Option<Vec<u8>> {
    let mut lines = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    lines.next()?;
    let body: String = lines.take_while(|l| !l.starts_with("-----END ")).collect();
    base64_decode(&body)
}

/// Standard base64 (padding optional, whitespace ignored).
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in input.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

impl MetricProvider for StackdriverProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
        self.query(query)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let (status, body) = self.post("", None).await?;
        if status.is_success() || status.as_u16() == 400 {
            return Ok(());
        }
        let code = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/status")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        Err(ProviderError::NotOnline {
            provider: KIND,
            detail: format!("unexpected status code: {code}: {}", truncate_body(&body)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for input in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(
                base64_decode(&base64_encode(input.as_bytes())).unwrap(),
                input.as_bytes()
            );
        }
        assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("Zm9v!"), None);
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn pem_blocks() {
        assert_eq!(
            pem_decode("junk\n-----BEGIN PRIVATE KEY-----\nZm9v\nYmFy\n-----END PRIVATE KEY-----\n").unwrap(),
            b"foobar"
        );
        assert_eq!(pem_decode("no pem here"), None);
    }

    #[test]
    fn values() {
        let v = |body: &str| {
            parse_page(body).map(|p| match p {
                Page::Value(v) => v.map_err(|e| e.to_string()),
                Page::Next(t) => Err(format!("next {t}")),
                Page::Empty => Err("empty".to_owned()),
            })
        };
        assert_eq!(
            v(r#"{"timeSeriesData":[{"pointData":[{"values":[{"doubleValue":0.25}]}]}]}"#).unwrap(),
            Ok(0.25)
        );
        assert_eq!(
            v(r#"{"timeSeriesData":[{"pointData":[{"values":[{"int64Value":"7"}]}]}]}"#).unwrap(),
            Ok(0.0)
        );
        assert_eq!(
            v(r#"{"timeSeriesData":[{"pointData":[{"values":[{"doubleValue":"Infinity"}]}]}]}"#).unwrap(),
            Ok(f64::INFINITY)
        );
        assert!(
            v(r#"{"timeSeriesData":[{"pointData":[{"values":[{"doubleValue":"NaN"}]}]}]}"#)
                .unwrap()
                .unwrap_err()
                .contains("NaN")
        );
        assert!(v(r#"{"timeSeriesData":[{"pointData":[]}]}"#).unwrap().is_err());
        assert_eq!(v(r#"{"nextPageToken":"p2"}"#).unwrap(), Err("next p2".to_owned()));
        assert_eq!(v("{}").unwrap(), Err("empty".to_owned()));
        assert!(v("[]").is_err());
        assert!(v(r#"{"timeSeriesData":{}}"#).is_err());
    }
}
