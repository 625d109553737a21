//! A local HTTP server for the provider tests: it records every request (method, path, raw query, headers,
//! body) and answers each path with the replies a test gives it.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The raw query string (without `?`), empty when none.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// The values of header `name` (lower case).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The only value of header `name`.
    pub fn one_header(&self, name: &str) -> &str {
        let values = self.header(name);
        assert_eq!(values.len(), 1, "header {name}: {values:?}");
        values[0]
    }

    /// The decoded query parameters.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// The replies still to give per path: (status, body), the last one repeated.
type Replies = BTreeMap<String, VecDeque<(u16, String)>>;

#[derive(Clone, Default)]
pub struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    replies: Arc<Mutex<Replies>>,
}

async fn handle(
    State(server): State<Server>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let headers = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let path = uri.path().to_owned();
    server.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body: body.to_vec(),
    });
    let mut replies = server.replies.lock().unwrap();
    let reply = match replies.get_mut(&path) {
        Some(queue) if queue.len() > 1 => queue.pop_front(),
        Some(queue) => queue.front().cloned(),
        None => None,
    };
    let (status, body) = reply.unwrap_or((404, format!("no reply for {path}")));
    (StatusCode::from_u16(status).unwrap(), body)
}

impl Server {
    /// Starts a server on 127.0.0.1 and returns it with its base URL (`http://127.0.0.1:<port>`).
    pub async fn start() -> (Self, String) {
        let server = Self::default();
        let app = Router::new().fallback(handle).with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (server, format!("http://{addr}"))
    }

    /// Answers `path` with `status` and `body` from now on.
    pub fn reply(&self, path: &str, status: u16, body: &str) {
        self.replies_in_order(path, &[(status, body)]);
    }

    /// Answers `path` with these replies in order, the last one repeatedly.
    pub fn replies_in_order(&self, path: &str, replies: &[(u16, &str)]) {
        self.replies.lock().unwrap().insert(
            path.to_owned(),
            replies.iter().map(|(s, b)| (*s, (*b).to_owned())).collect(),
        );
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests to `path` so far.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// The last request.
    pub fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }

    /// Forgets the requests so far.
    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

/// A provider spec of `type_` for `ProviderInit`.
pub fn provider(type_: &str, address: Option<&str>, secret: bool) -> flagger_api::MetricTemplateProvider {
    let mut value = serde_json::json!({ "type": type_ });
    if let Some(address) = address {
        value["address"] = address.into();
    }
    if secret {
        value["secretRef"] = serde_json::json!({ "name": "creds" });
    }
    serde_json::from_value(value).unwrap()
}

/// Secret data from pairs.
pub fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}
