//! The HTTP side shared by every notifier (Flagger's `postMessage`): a JSON POST with
//! `Content-type: application/json`, an optional bearer token, an optional proxy and a 5s timeout; any
//! status outside 2xx is an error.

use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::NotifyError;

/// Flagger's timeout for one notification request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest part of an error response body kept in the error.
const MAX_ERROR_BODY: usize = 512;

/// Options of the HTTP client of a notifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// Timeout of one request, connection included (default 5s, as Flagger).
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Where a notifier posts: the URL, the client (with its proxy) and the optional bearer token.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    client: reqwest::Client,
    url: Url,
    token: Option<String>,
    proxy: Option<String>,
}

impl Endpoint {
    /// A client for `url`, through `proxy` when given (all schemes; without it the usual proxy
    /// environment variables apply, as with Go's default transport).
    pub(crate) fn new(
        url: Url,
        token: Option<&str>,
        proxy: Option<&str>,
        options: &HttpOptions,
    ) -> Result<Self, NotifyError> {
        let mut builder = reqwest::Client::builder().timeout(options.timeout);
        let proxy = proxy.filter(|p| !p.is_empty());
        if let Some(proxy) = proxy {
            let parsed = reqwest::Proxy::all(proxy).map_err(|source| NotifyError::InvalidProxy {
                proxy: proxy.to_owned(),
                source,
            })?;
            builder = builder.proxy(parsed);
        }
        let client = builder.build().map_err(NotifyError::Client)?;
        Ok(Self {
            client,
            url,
            token: token.filter(|t| !t.is_empty()).map(str::to_owned),
            proxy: proxy.map(str::to_owned),
        })
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    pub(crate) fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// POSTs `payload` as JSON; Ok only for a 2xx answer.
    pub(crate) async fn post_json<T: Serialize + Sync>(&self, payload: &T) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(payload).map_err(NotifyError::Encode)?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(NotifyError::Transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let mut end = body.len().min(MAX_ERROR_BODY);
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        Err(NotifyError::Status {
            status: status.as_u16(),
            body: body[..end].to_owned(),
        })
    }
}

/// Parses a webhook address like Go's `url.ParseRequestURI` followed by a request: an absolute URL.
pub(crate) fn parse_address(service: &'static str, address: &str) -> Result<Url, NotifyError> {
    Url::parse(address).map_err(|_| NotifyError::InvalidUrl {
        service,
        url: redact(address),
    })
}

/// The scheme and host of an address, for logs: webhook URLs carry their secret in the path.
pub fn redact(address: &str) -> String {
    match Url::parse(address) {
        Ok(url) => match url.host_str() {
            Some(host) => match url.port() {
                Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
                None => format!("{}://{host}/…", url.scheme()),
            },
            None => format!("{}:…", url.scheme()),
        },
        Err(_) => "<unparsable>".to_owned(),
    }
}
