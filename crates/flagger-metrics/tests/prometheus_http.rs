//! The Prometheus provider against a local HTTP server: the exact request (path, query, headers, auth) is
//! asserted on the server side, and every response shape is parsed as Flagger does.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use flagger_metrics::provider::NoDataReason;
use flagger_metrics::{MetricProvider, PrometheusAuth, PrometheusConfig, PrometheusProvider, ProviderError};

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    query: BTreeMap<String, String>,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Clone, Default)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    reply: Arc<Mutex<(u16, String)>>,
}

async fn handle(State(server): State<Server>, request: Request) -> (StatusCode, String) {
    let query = url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    server.seen.lock().unwrap().push(Seen {
        path: request.uri().path().to_owned(),
        query,
        headers,
    });
    let (status, body) = server.reply.lock().unwrap().clone();
    (StatusCode::from_u16(status).unwrap(), body)
}

impl Server {
    async fn start() -> (Self, String) {
        let server = Self::default();
        let app = Router::new().fallback(handle).with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (server, format!("http://{addr}"))
    }

    fn reply(&self, status: u16, body: &str) {
        *self.reply.lock().unwrap() = (status, body.to_owned());
    }

    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

fn vector(values: &[&str]) -> String {
    let items: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!(r#"{{"metric":{{"pod":"p{i}"}},"value":[1700000000.123,"{v}"]}}"#))
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        items.join(",")
    )
}

async fn provider(address: &str) -> PrometheusProvider {
    PrometheusProvider::new(PrometheusConfig::new(address)).unwrap()
}

#[tokio::test]
async fn vector_value_and_the_exact_request() {
    let (server, addr) = Server::start().await;
    server.reply(200, &vector(&["99.5"]));
    let p = provider(&addr).await;
    let value = p.run_query("\n\tsum(rate(x{a=\"b\"}[1m]))\n\t/ 2").await.unwrap();
    assert_eq!(value, 99.5);
    let seen = server.last();
    assert_eq!(seen.path, "/api/v1/query");
    assert_eq!(seen.query.len(), 1);
    assert_eq!(seen.query["query"], " sum(rate(x{a=\"b\"}[1m])) / 2");
    assert!(seen.header("authorization").is_empty());
}

#[tokio::test]
async fn parsing_follows_flagger() {
    let (server, addr) = Server::start().await;
    let p = provider(&addr).await;

    // The last element of a multi-series vector wins silently.
    server.reply(200, &vector(&["1", "2", "3.25"]));
    assert_eq!(p.run_query("q").await.unwrap(), 3.25);

    // A scalar result is accepted (Flagger cannot decode it).
    server.reply(
        200,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}"#,
    );
    assert_eq!(p.run_query("q").await.unwrap(), 42.0);

    // Infinity is a value, not "no data".
    server.reply(200, &vector(&["+Inf"]));
    assert_eq!(p.run_query("q").await.unwrap(), f64::INFINITY);

    server.reply(
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
    );
    let err = p.run_query("q").await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::NoValues {
                reason: NoDataReason::Empty,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_no_data());
    assert_eq!(
        err.to_string(),
        "prometheus: no values found (the result is empty)"
    );

    server.reply(200, &vector(&["NaN"]));
    let err = p.run_query("q").await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::NoValues {
                reason: NoDataReason::NaN,
                ..
            }
        ),
        "{err:?}"
    );

    // Only the last value counts: an earlier NaN does not matter, a last NaN does.
    server.reply(200, &vector(&["NaN", "7"]));
    assert_eq!(p.run_query("q").await.unwrap(), 7.0);
    server.reply(200, &vector(&["7", "NaN"]));
    assert!(p.run_query("q").await.unwrap_err().is_no_data());

    server.reply(
        200,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}}"#,
    );
    let err = p.run_query("q").await.unwrap_err();
    assert!(matches!(err, ProviderError::MultipleValues { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("prometheus: query returned multiple values"),
        "{err}"
    );

    server.reply(
        400,
        r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
    );
    let err = p.run_query("q").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"prometheus: error response: Status 400 Bad Request: {"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#
    );
    assert_eq!(err.category(), "Status");

    server.reply(503, "upstream down");
    let err = p.run_query("q").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "prometheus: error response: Status 503 Service Unavailable: upstream down"
    );

    server.reply(200, "<html>not prometheus</html>");
    let err = p.run_query("q").await.unwrap_err();
    assert!(matches!(err, ProviderError::Parse { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("prometheus: cannot parse the response: invalid JSON"),
        "{err}"
    );

    server.reply(200, r#"{"status":"error","error":"query timed out"}"#);
    let err = p.run_query("q").await.unwrap_err();
    assert!(err.to_string().contains("query timed out"), "{err}");

    server.reply(200, &vector(&["abc"]));
    let err = p.run_query("q").await.unwrap_err();
    assert!(err.to_string().contains("value \"abc\" is not a number"), "{err}");
}

#[tokio::test]
async fn bearer_auth_and_headers_do_not_accumulate() {
    let (server, addr) = Server::start().await;
    server.reply(200, &vector(&["1"]));
    let config = PrometheusConfig {
        headers: BTreeMap::from([
            ("X-Scope-OrgID".to_owned(), vec!["tenant-a".to_owned()]),
            ("X-Multi".to_owned(), vec!["one".to_owned(), "two".to_owned()]),
        ]),
        auth: Some(PrometheusAuth::Bearer("s3cret".into())),
        ..PrometheusConfig::new(format!("{addr}/prom/"))
    };
    let p = PrometheusProvider::new(config).unwrap();
    for _ in 0..3 {
        p.run_query("up").await.unwrap();
        let seen = server.last();
        assert_eq!(seen.path, "/prom/api/v1/query");
        assert_eq!(seen.header("authorization"), ["Bearer s3cret"]);
        assert_eq!(seen.header("x-scope-orgid"), ["tenant-a"]);
        assert_eq!(seen.header("x-multi"), ["one", "two"]);
    }
    assert_eq!(server.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn basic_auth_from_template_secret() {
    let (server, addr) = Server::start().await;
    server.reply(200, &vector(&["1"]));
    let template: flagger_api::MetricTemplateProvider = serde_json::from_value(serde_json::json!({
        "type": "prometheus",
        "address": addr,
        "secretRef": {"name": "prom-auth"},
        "headers": {"Authorization": ["Bearer from-template"]},
        "insecureSkipVerify": true
    }))
    .unwrap();
    let secret = BTreeMap::from([
        ("username".to_owned(), b"admin".to_vec()),
        ("password".to_owned(), b"p@ss:word".to_vec()),
    ]);
    let config = PrometheusConfig::from_template(&template, Some(&secret)).unwrap();
    assert!(config.insecure_skip_verify);
    let p = PrometheusProvider::new(config).unwrap();
    p.run_query("up").await.unwrap();
    // The Secret's credentials replace the template's Authorization header.
    assert_eq!(
        server.last().header("authorization"),
        ["Basic YWRtaW46cEBzczp3b3Jk"]
    );

    // A secretRef whose Secret lacks the keys is a typed error naming the provider and the key.
    let err = PrometheusConfig::from_template(&template, Some(&BTreeMap::new())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "prometheus credentials does not contain a username"
    );
    // Without a secretRef the Secret data is not consulted.
    let no_ref = flagger_api::MetricTemplateProvider {
        secret_ref: None,
        ..template
    };
    assert_eq!(
        PrometheusConfig::from_template(&no_ref, Some(&secret))
            .unwrap()
            .auth,
        None
    );
}

#[tokio::test]
async fn online_check_runs_vector_1() {
    let (server, addr) = Server::start().await;
    let p = provider(&addr).await;
    server.reply(200, &vector(&["1"]));
    p.is_online().await.unwrap();
    assert_eq!(server.last().query["query"], "vector(1)");
    server.reply(200, &vector(&["0"]));
    let err = p.is_online().await.unwrap_err();
    assert!(matches!(err, ProviderError::NotOnline { .. }), "{err:?}");
    assert!(err.to_string().contains("vector(1)"), "{err}");
}

#[tokio::test]
async fn unreachable_server_is_a_request_error() {
    // Bind then drop a listener so the port is (almost certainly) closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = provider(&format!("http://{addr}")).await;
    let err = p.run_query("up").await.unwrap_err();
    assert!(matches!(err, ProviderError::Request { .. }), "{err:?}");
    assert_eq!(err.category(), "Request");
    assert!(
        err.to_string().starts_with(&format!(
            "prometheus: request to http://{addr}/api/v1/query failed"
        )),
        "{err}"
    );
    assert!(!err.is_no_data());
}
