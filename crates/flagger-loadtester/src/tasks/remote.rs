//! Tasks that drive a remote service: Concord processes and nGrinder tests, with Flagger's metadata,
//! validation messages and REST calls.

use std::collections::BTreeMap;
use std::time::Duration;

use flagger_core::duration::parse_go_duration;
use serde::Deserialize;
use url::Url;

/// `metadata.type` of a Concord task.
pub const TYPE_CONCORD: &str = "concord";
/// `metadata.type` of an nGrinder task.
pub const TYPE_NGRINDER: &str = "ngrinder";

const CONCORD_PROCESS_PATH: &str = "/api/v1/process";
const CONCORD_ARGUMENTS_PREFIX: &str = "arguments.";

/// Why a remote task failed; the messages are Flagger's where Flagger has one.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Invalid metadata.
    #[error("{0}")]
    Invalid(String),
    /// The service could not be called or answered something unexpected.
    #[error("{0}")]
    Call(String),
    /// The remote run failed.
    #[error("{0}")]
    Failed(String),
    /// The task's timeout expired.
    #[error("context timedout (after {0:?})")]
    Timeout(Duration),
    /// The load tester is shutting down.
    #[error("the load tester is shutting down")]
    Cancelled,
}

fn invalid(message: impl Into<String>) -> RemoteError {
    RemoteError::Invalid(message.into())
}

fn http_client() -> Result<reqwest::Client, RemoteError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| RemoteError::Call(e.to_string()))
}

/// A Concord process (`type: concord`), run to completion.
#[derive(Debug, Clone)]
pub struct Concord {
    base: Url,
    org: String,
    project: String,
    repo: String,
    entrypoint: String,
    arguments: BTreeMap<String, String>,
    api_key_path: String,
    endpoint: String,
    poll_interval: Duration,
    poll_timeout: Duration,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConcordProcess {
    #[serde(default)]
    instance_id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    ok: bool,
}

impl Concord {
    /// Validates the metadata as Flagger does, in Flagger's order.
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Result<Self, RemoteError> {
        let required = |key: &str| {
            m.get(key)
                .cloned()
                .ok_or_else(|| invalid(format!("`{key}` is required with type concord")))
        };
        let server = required("server")?;
        let base = Url::parse(&server)
            .map_err(|_| invalid("failed to create base URL from metadata `concord_url`"))?;
        let org = required("org")?;
        let project = required("project")?;
        let repo = required("repo")?;
        let entrypoint = required("entrypoint")?;
        let api_key_path = required("apiKeyPath")?;
        if !std::path::Path::new(&api_key_path).exists() {
            return Err(invalid(format!("`apiKeyPath` file doesn't exist {api_key_path}")));
        }
        let endpoint = required("endpoint")?;
        let seconds = |key: &str, default: u64| match m.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| invalid(format!("unable to convert `{key}` to int"))),
        };
        let poll_interval = seconds("pollInterval", 5)?;
        let poll_timeout = seconds("pollTimeout", 30)?;
        if m.contains_key("arguments.endpoint") {
            return Err(invalid(
                "You cannot override Endpoint through arguments. You must override Endpoint directly",
            ));
        }
        let arguments = m
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(CONCORD_ARGUMENTS_PREFIX)?.to_owned(), v.clone())))
            .collect();
        Ok(Self {
            base,
            org,
            project,
            repo,
            entrypoint,
            arguments,
            api_key_path,
            endpoint,
            poll_interval: Duration::from_secs(poll_interval.max(1)),
            poll_timeout: Duration::from_secs(poll_timeout),
        })
    }

    fn api_key(&self) -> Result<String, RemoteError> {
        std::fs::read_to_string(&self.api_key_path)
            .map(|k| k.trim().to_owned())
            .map_err(|e| RemoteError::Call(format!("reading {}: {e}", self.api_key_path)))
    }

    fn url(&self, path: &str) -> Result<Url, RemoteError> {
        self.base
            .join(path)
            .map_err(|e| RemoteError::Call(format!("{path}: {e}")))
    }

    /// The `multipart/form-data` body of the process start request, and its boundary.
    fn form(&self) -> (String, Vec<u8>) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let boundary = format!("flagger-loadtester-{nanos:032x}");
        let mut fields: Vec<(String, &str)> = vec![
            ("org".to_owned(), &self.org),
            ("project".to_owned(), &self.project),
            ("repo".to_owned(), &self.repo),
            ("entryPoint".to_owned(), &self.entrypoint),
            ("arguments.endpoint".to_owned(), &self.endpoint),
        ];
        for (k, v) in &self.arguments {
            fields.push((format!("{CONCORD_ARGUMENTS_PREFIX}{k}"), v));
        }
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (boundary, body)
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<ConcordProcess, RemoteError> {
        let mut req = req;
        let key = self.api_key()?;
        if !key.is_empty() {
            req = req.header(reqwest::header::AUTHORIZATION, key);
        }
        let resp = req.send().await.map_err(|e| RemoteError::Call(e.to_string()))?;
        let body = resp.bytes().await.map_err(|e| RemoteError::Call(e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| RemoteError::Call(e.to_string()))
    }

    /// Starts the process and polls it every `pollInterval` seconds until `FINISHED` (ok), `FAILED` or
    /// `pollTimeout` seconds.
    pub async fn run(&self, canary: &str) -> Result<(), RemoteError> {
        let client = http_client()?;
        let (boundary, body) = self.form();
        let url = self.url(CONCORD_PROCESS_PATH)?;
        tracing::info!(canary, "calling endpoint {url}");
        let req = client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        let process = self
            .call(req)
            .await
            .map_err(|e| RemoteError::Call(format!("failed to start process: {e}")))?;
        tracing::info!(
            canary,
            "created process id [{}] OK status is {}",
            process.instance_id,
            process.ok
        );
        let id = process.instance_id;
        let poll = async {
            let mut ticks = tokio::time::interval_at(
                tokio::time::Instant::now() + self.poll_interval,
                self.poll_interval,
            );
            loop {
                ticks.tick().await;
                let url = self.url(&format!("{CONCORD_PROCESS_PATH}/{id}"))?;
                tracing::info!(canary, "calling endpoint {url}");
                let process = self
                    .call(client.get(url))
                    .await
                    .map_err(|e| RemoteError::Call(format!("failed checking status: {e}")))?;
                tracing::info!(
                    canary,
                    "process id [{}] current status is {}",
                    process.instance_id,
                    process.status
                );
                match process.status.as_str() {
                    "FINISHED" => return Ok(()),
                    "FAILED" => return Err(RemoteError::Failed(format!("concord instanceID: {id} failed"))),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(self.poll_timeout, poll)
            .await
            .unwrap_or_else(|_| {
                Err(RemoteError::Failed(format!(
                    "concord process timed out, after {} seconds",
                    self.poll_timeout.as_secs()
                )))
            })
    }
}

/// An nGrinder test (`type: ngrinder`): cloned from a template test and started, then polled until done.
#[derive(Debug, Clone)]
pub struct NGrinder {
    base: Url,
    /// The template test.
    pub clone_id: i64,
    username: String,
    password: String,
    poll_interval: Duration,
}

/// Standard base64 with padding, as Go's `base64.StdEncoding`; the error is the offending byte's index.
fn base64_decode(input: &str) -> Result<Vec<u8>, usize> {
    let bytes = input.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(bytes.len() / 4 * 4);
    }
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (q, quad) in bytes.chunks(4).enumerate() {
        let last = q == bytes.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(q * 4 + quad.iter().position(|&c| c == b'=').unwrap_or(0));
        }
        let mut acc = 0u32;
        for (i, &c) in quad[..4 - pad].iter().enumerate() {
            let v = value(c).ok_or(q * 4 + i)?;
            acc |= u32::from(v) << (18 - 6 * i);
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..3 - pad]);
    }
    Ok(out)
}

impl NGrinder {
    /// Validates the metadata as Flagger does. `pollInterval` is a Go duration (default 1s).
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Result<Self, RemoteError> {
        let get = |k: &str| m.get(k).map(String::as_str).unwrap_or_default();
        let (server, clone, username, passwd) = (get("server"), get("clone"), get("username"), get("passwd"));
        if server.is_empty() || clone.is_empty() || username.is_empty() || passwd.is_empty() {
            return Err(invalid(
                "server, clone, username and passwd are required metadata",
            ));
        }
        let base = Url::parse(server).map_err(|e| invalid(format!("invalid url: {server}: {e}")))?;
        let clone_id = clone.parse::<i64>().map_err(|_| {
            invalid(format!(
                "metadata clone must be integer: strconv.Atoi: parsing {clone:?}: invalid syntax"
            ))
        })?;
        let password = base64_decode(passwd).map_err(|at| {
            invalid(format!(
                "metadata password is invalid: illegal base64 data at input byte {at}"
            ))
        })?;
        let poll_interval = parse_go_duration(get("pollInterval"))
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1));
        Ok(Self {
            base,
            clone_id,
            username: username.to_owned(),
            password: String::from_utf8_lossy(&password).into_owned(),
            poll_interval,
        })
    }

    /// `<server>/perftest/api/<clone>/clone_and_start`.
    pub fn clone_and_start_url(&self) -> String {
        self.base
            .join(&format!("perftest/api/{}/clone_and_start", self.clone_id))
            .map_or_else(|_| self.base.to_string(), |u| u.to_string())
    }

    async fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, RemoteError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| RemoteError::Call(format!("{path}: {e}")))?;
        tracing::debug!("send {method} request to {url}");
        let resp = client
            .request(method, url)
            .basic_auth(&self.username, Some(&self.password))
            .send()
            .await
            .map_err(|e| RemoteError::Call(format!("request failed: {e}")))?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| RemoteError::Call(format!("reading response body failed: {e}")))?;
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body).map_err(|e| {
            RemoteError::Call(format!(
                "json unmarshalling failed: {e} for {}",
                String::from_utf8_lossy(&body)
            ))
        })?;
        if map.get("success") == Some(&serde_json::Value::Bool(false)) {
            return Err(RemoteError::Call(format!(
                "request failed: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(map)
    }

    /// Clones and starts the test, then polls its status until it is `FINISHED` (ok) or
    /// `STOP_BY_ERROR`/`CANCELED`/`UNKNOWN`; on `timeout` the test is stopped.
    pub async fn run(&self, canary: &str, timeout: Duration) -> Result<(), RemoteError> {
        let client = http_client()?;
        let started = self
            .request(
                &client,
                reqwest::Method::POST,
                &format!("perftest/api/{}/clone_and_start", self.clone_id),
            )
            .await
            .map_err(|e| {
                RemoteError::Call(format!(
                    "failed to clone and start ngrinder test {}: {e}",
                    self.clone_and_start_url()
                ))
            })?;
        let id = started
            .get("id")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| RemoteError::Call(format!("no test id in {started:?}")))?;
        tracing::info!(canary, "ngrinder test {id} started");
        let poll = async {
            let mut ticks = tokio::time::interval_at(
                tokio::time::Instant::now() + self.poll_interval,
                self.poll_interval,
            );
            loop {
                ticks.tick().await;
                let Ok(status) = self
                    .request(
                        &client,
                        reqwest::Method::GET,
                        &format!("perftest/api/{id}/status"),
                    )
                    .await
                else {
                    continue;
                };
                let state = status
                    .get("status")
                    .and_then(|s| s.get(0))
                    .and_then(|s| s.get("status_id"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                tracing::debug!("status of ngrinder task {id} is {state}");
                match state.as_str() {
                    "FINISHED" => return Ok(()),
                    "STOP_BY_ERROR" | "CANCELED" | "UNKNOWN" => {
                        return Err(RemoteError::Failed(format!(
                            "ngrinder test {id} ended with {state}"
                        )));
                    }
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(timeout, poll).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("context timedout, stop ngrinder task {id} forcibly");
                let _ = self
                    .request(
                        &client,
                        reqwest::Method::PUT,
                        &format!("perftest/api/{id}?action=stop"),
                    )
                    .await;
                Err(RemoteError::Timeout(timeout))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn base64_as_go() {
        assert_eq!(base64_decode("cGFzc3dk"), Ok(b"passwd".to_vec()));
        assert_eq!(base64_decode("YQ=="), Ok(b"a".to_vec()));
        assert_eq!(base64_decode("YWI="), Ok(b"ab".to_vec()));
        assert_eq!(base64_decode(""), Ok(Vec::new()));
        assert_eq!(base64_decode("YW*="), Err(2));
        assert_eq!(base64_decode("abcde"), Err(4));
    }

    #[test]
    fn ngrinder_validation_messages() {
        let err = |m: &[(&str, &str)]| NGrinder::from_metadata(&meta(m)).unwrap_err().to_string();
        assert_eq!(
            err(&[("server", "http://x")]),
            "server, clone, username and passwd are required metadata"
        );
        let base = [("server", "http://x"), ("username", "u"), ("passwd", "cGFzc3dk")];
        assert_eq!(
            err(&[base[0], base[1], base[2], ("clone", "x")]),
            "metadata clone must be integer: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            err(&[base[0], base[1], ("passwd", "!!"), ("clone", "1")]),
            "metadata password is invalid: illegal base64 data at input byte 0"
        );
        let ok = NGrinder::from_metadata(&meta(&[base[0], base[1], base[2], ("clone", "7")])).unwrap();
        assert_eq!(
            ok.clone_and_start_url(),
            "http://x/perftest/api/7/clone_and_start"
        );
        assert_eq!(ok.password, "passwd");
        assert_eq!(ok.poll_interval, Duration::from_secs(1));
    }

    #[test]
    fn concord_validation_messages() {
        let err = |m: &[(&str, &str)]| Concord::from_metadata(&meta(m)).unwrap_err().to_string();
        assert_eq!(err(&[]), "`server` is required with type concord");
        assert_eq!(
            err(&[("server", "http://c")]),
            "`org` is required with type concord"
        );
        let full = [
            ("server", "http://c"),
            ("org", "o"),
            ("project", "p"),
            ("repo", "r"),
            ("entrypoint", "e"),
            ("apiKeyPath", "/no/such/key"),
        ];
        assert_eq!(err(&full), "`apiKeyPath` file doesn't exist /no/such/key");
    }
}
