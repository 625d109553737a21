//! The Splunk Observability (SignalFx) provider: SignalFlow programs over the last 10 metric intervals.
//!
//! Facts from Flagger 1.44 (`pkg/metrics/providers/splunk.go`): the address is required (`splunk endpoint
//! is not set`), e.g. `https://api.<realm>.signalfx.com`; the token comes from the Secret key
//! `sf_token_key` and is sent as `X-SF-Token`; the program runs from now − 10×interval to now (Unix
//! milliseconds) with `immediate`; 5 s timeout; payloads with no value are dropped, none left is no data,
//! more than one distinct time series (TSID) is a multiple-values error, else the last payload's value wins.
//! `is_online` is `GET /v2/metric?limit=1` on the API host.
//!
//! Transport choice: Flagger uses the SignalFlow WebSocket API (`wss://stream.<realm>.../v2/signalflow`).
//! This module uses SignalFlow's documented Server-Sent Events transport instead,
//! `POST https://stream.<realm>.../v2/signalflow/execute?start=<ms>&stop=<ms>&immediate=true` with the
//! program as a `text/plain` body, which answers the same messages (`data`, `control-message`, `error`, ...)
//! as an event stream. It needs no WebSocket client dependency and suits one short computation per check.
//! The query host is the address with a leading `api` host label replaced by `stream` (and `ws(s)` by
//! `http(s)`); the online check's host is the address with `stream` replaced by `api`, as in Flagger.
//! The stream is read until `END_OF_CHANNEL` (or the server closes it); a `CHANNEL_ABORT` control message or
//! an `error` message fails the query with the server's details.

use std::collections::BTreeSet;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;
use url::Url;

use super::{
    HTTP_TIMEOUT, config_error, credential, error_chain, http_client, join_path, no_values, parse_error,
    secret_header, status_error, to_i64, unix_now, url_without_query,
};
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit, truncate_body};

const KIND: &str = "splunk";

/// The window is this many metric intervals.
const WINDOW_INTERVALS: u128 = 10;

/// A SignalFlow (SSE) and metrics API client.
#[derive(Clone, Debug)]
pub struct SplunkProvider {
    http: reqwest::Client,
    execute_url: Url,
    validate_url: Url,
    headers: HeaderMap,
    /// `stop − start`, in milliseconds.
    from_delta: i64,
}

impl SplunkProvider {
    /// Reads the address, the token and the interval of `init`.
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        let address = init
            .provider
            .address
            .as_deref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| config_error(KIND, "splunk endpoint is not set"))?;
        let base = http_base(address)?;
        let token = credential(init.credentials, "sf_token_key")
            .ok_or_else(|| config_error(KIND, "splunk credentials does not contain sf_token_key"))?;
        let mut headers = HeaderMap::new();
        headers.insert("X-SF-Token", secret_header(KIND, "X-SF-Token", &token)?);
        let execute_url = join_path(&with_host_label(&base, "api", "stream"), "/v2/signalflow/execute");
        let mut validate_url = join_path(&with_host_label(&base, "stream", "api"), "/v2/metric");
        validate_url.set_query(Some("limit=1"));
        Ok(Self {
            http: http_client(KIND, HTTP_TIMEOUT, init.provider.insecure_skip_verify())?,
            execute_url,
            validate_url,
            headers,
            from_delta: to_i64(WINDOW_INTERVALS * init.interval.as_millis()),
        })
    }

    /// The SignalFlow execute URL (without the query string).
    pub fn execute_url(&self) -> &Url {
        &self.execute_url
    }

    /// The URL of the online check.
    pub fn validate_url(&self) -> &Url {
        &self.validate_url
    }

    async fn query(&self, program: &str) -> Result<f64, ProviderError> {
        let stop = to_i64(unix_now().as_millis());
        let start = (stop - self.from_delta).to_string();
        let stop = stop.to_string();
        let request_error = |e: reqwest::Error| ProviderError::Request {
            provider: KIND,
            url: url_without_query(&self.execute_url),
            reason: error_chain(&e),
        };
        let mut response = self
            .http
            .post(self.execute_url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("text/plain"))
            .query(&[
                ("start", start.as_str()),
                ("stop", stop.as_str()),
                ("immediate", "true"),
            ])
            .body(program.to_owned())
            .send()
            .await
            .map_err(request_error)?;
        let status = response.status();
        if status.as_u16() != 200 {
            let body = response.text().await.map_err(request_error)?;
            return Err(status_error(KIND, status, &body));
        }
        let mut stream = EventStream::default();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            stream.feed(&chunk);
            if stream.ended()? {
                break;
            }
        }
        stream.finish();
        stream.ended()?;
        stream.value()
    }
}

impl MetricProvider for SplunkProvider {
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

/// `address` as an http(s) URL (`ws` → `http`, `wss` → `https`) without query or fragment.
fn http_base(address: &str) -> Result<Url, ProviderError> {
    let invalid = |reason: String| ProviderError::InvalidAddress {
        provider: KIND,
        address: address.to_owned(),
        reason,
    };
    let mut url = Url::parse(address).map_err(|e| invalid(e.to_string()))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        other => return Err(invalid(format!("scheme {other:?} is not http(s) or ws(s)"))),
    };
    url.set_scheme(scheme)
        .map_err(|()| invalid(format!("cannot use scheme {scheme}")))?;
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// `url` with its first host label replaced by `to` when it is `from` (`api.us1.signalfx.com` →
/// `stream.us1.signalfx.com`).
fn with_host_label(url: &Url, from: &str, to: &str) -> Url {
    let mut out = url.clone();
    if let Some(host) = url.host_str()
        && let Some(rest) = host.strip_prefix(from)
        && (rest.is_empty() || rest.starts_with('.'))
    {
        // Replacing a DNS label by another keeps the host valid.
        let _ = out.set_host(Some(&format!("{to}{rest}")));
    }
    out
}

/// One Server-Sent Event.
#[derive(Debug)]
struct Event {
    kind: String,
    data: String,
}

/// The messages of a SignalFlow event stream, read as they arrive.
#[derive(Default)]
struct EventStream {
    buffer: Vec<u8>,
    events: Vec<Event>,
    /// Everything received, for error messages.
    received: Vec<u8>,
}

impl EventStream {
    fn feed(&mut self, bytes: &[u8]) {
        self.received.extend_from_slice(bytes);
        // Lines end with `\n` or `\r\n` (a `\r` inside JSON data is escaped), events with a blank line.
        self.buffer.extend(bytes.iter().copied().filter(|b| *b != b'\r'));
        while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            self.push_block(&String::from_utf8_lossy(&block[..end]));
        }
    }

    /// The last event of a stream that does not end with a blank line.
    fn finish(&mut self) {
        let block = std::mem::take(&mut self.buffer);
        let text = String::from_utf8_lossy(&block);
        if !text.trim().is_empty() {
            self.push_block(&text);
        }
    }

    fn push_block(&mut self, block: &str) {
        let mut kind = String::from("message");
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => kind = value.to_owned(),
                "data" => data.push(value),
                _ => {}
            }
        }
        if !data.is_empty() {
            self.events.push(Event {
                kind,
                data: data.join("\n"),
            });
        }
    }

    fn error(&self, detail: String) -> ProviderError {
        parse_error(KIND, detail, &String::from_utf8_lossy(&self.received))
    }

    /// Whether the computation ended; an abort or an error message is an error.
    fn ended(&self) -> Result<bool, ProviderError> {
        for event in &self.events {
            match event.kind.as_str() {
                "control-message" => {
                    let json: Value = serde_json::from_str(&event.data)
                        .map_err(|e| self.error(format!("invalid control message: {e}")))?;
                    match json.get("event").and_then(Value::as_str) {
                        Some("END_OF_CHANNEL") => return Ok(true),
                        Some("CHANNEL_ABORT") => {
                            let info = json.get("abortInfo").cloned().unwrap_or(Value::Null);
                            return Err(self.error(format!(
                                "the computation was aborted: {}",
                                truncate_body(&info.to_string())
                            )));
                        }
                        _ => {}
                    }
                }
                "error" => {
                    return Err(self.error(format!("the computation failed: {}", truncate_body(&event.data))));
                }
                _ => {}
            }
        }
        Ok(false)
    }

    /// The value of the data messages received.
    fn value(&self) -> Result<f64, ProviderError> {
        let mut points: Vec<(String, f64)> = Vec::new();
        for event in self.events.iter().filter(|e| e.kind == "data") {
            let json: Value = serde_json::from_str(&event.data)
                .map_err(|e| self.error(format!("invalid data message: {e}")))?;
            let data = match json.get("data") {
                None | Some(Value::Null) => continue,
                Some(Value::Array(data)) => data,
                Some(other) => return Err(self.error(format!("data is not a list: {other}"))),
            };
            for point in data {
                let tsid = point.get("tsId").and_then(Value::as_str).unwrap_or_default();
                match point.get("value") {
                    None | Some(Value::Null) => {}
                    Some(Value::Number(n)) => {
                        let value = n
                            .as_f64()
                            .ok_or_else(|| self.error(format!("value {n} is not a float")))?;
                        points.push((tsid.to_owned(), value));
                    }
                    Some(other) => return Err(self.error(format!("value {other} is not a number"))),
                }
            }
        }
        let Some((_, last)) = points.last() else {
            return Err(no_values(KIND, NoDataReason::Empty));
        };
        let series: BTreeSet<&str> = points.iter().map(|(tsid, _)| tsid.as_str()).collect();
        if series.len() > 1 {
            return Err(ProviderError::MultipleValues {
                provider: KIND,
                detail: format!(
                    "{} time series (TSIDs); the program must publish one",
                    series.len()
                ),
            });
        }
        super::not_nan(KIND, *last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn hosts_follow_flaggers_rewrite() {
        let api = http_base("https://api.us1.signalfx.com").unwrap();
        assert_eq!(
            with_host_label(&api, "api", "stream").as_str(),
            "https://stream.us1.signalfx.com/"
        );
        let stream = http_base("wss://stream.us1.signalfx.com").unwrap();
        assert_eq!(stream.as_str(), "https://stream.us1.signalfx.com/");
        assert_eq!(
            with_host_label(&stream, "stream", "api").as_str(),
            "https://api.us1.signalfx.com/"
        );
        // Only a whole first label is replaced.
        let other = url("http://apimock:8080");
        assert_eq!(
            with_host_label(&other, "api", "stream").as_str(),
            "http://apimock:8080/"
        );
        assert!(http_base("ftp://x").is_err());
    }

    #[test]
    fn events_split_across_chunks_and_crlf() {
        let mut stream = EventStream::default();
        stream.feed(b"event: data\r\ndata: {\"data\":[{\"tsId\":\"A\",\"value\":1}]}\r");
        stream.feed(b"\n\r\n: comment\n\nevent: data\ndata: {\"data\":[{\"tsId\":\"A\",");
        stream.feed(b"\"value\":2.5}]}\n\n");
        assert!(!stream.ended().unwrap());
        stream.feed(b"event: control-message\ndata: {\"event\":\"END_OF_CHANNEL\"}");
        assert!(!stream.ended().unwrap());
        stream.finish();
        assert!(stream.ended().unwrap());
        assert_eq!(stream.value().unwrap(), 2.5);
    }
}
