//! The HTTP MetricTemplate providers (datadog, newrelic, dynatrace, graphite, influxdb, splunk) against a
//! local HTTP server that speaks each documented API. The server records every request, and each test
//! asserts the exact request (method, path, query parameters, headers, body, the time window) and how the
//! answers are read: a value, no data, an error status, a malformed body, missing credentials, and the
//! online check.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use flagger_api::{MetricTemplateProvider, SecretReference};
use flagger_metrics::provider::NoDataReason;
use flagger_metrics::providers::AnyProvider;
use flagger_metrics::{MetricProvider, ProviderError, ProviderInit};

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    raw_query: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn query_i64(&self, name: &str) -> i64 {
        self.query[name].parse().unwrap()
    }
}

/// What the server answers on one path.
#[derive(Clone)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
}

#[derive(Clone, Default)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    replies: Arc<Mutex<BTreeMap<String, Reply>>>,
}

async fn handle(State(server): State<Server>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let query = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let path = parts.uri.path().to_owned();
    server.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        query,
        raw_query,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let reply = server
        .replies
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or(Reply {
            status: 404,
            content_type: "text/plain",
            body: format!("no reply for {path}"),
        });
    Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap())
        .header(header::CONTENT_TYPE, reply.content_type)
        .body(Body::from(reply.body))
        .unwrap()
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

    fn reply(&self, path: &str, status: u16, body: &str) {
        self.reply_typed(path, status, "application/json", body);
    }

    fn reply_typed(&self, path: &str, status: u16, content_type: &'static str, body: &str) {
        self.replies.lock().unwrap().insert(
            path.to_owned(),
            Reply {
                status,
                content_type,
                body: body.to_owned(),
            },
        );
    }

    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A template provider of `type_` at `address` (none if empty), with a `secretRef` when `secret`.
fn template(type_: &str, address: &str, secret: bool) -> MetricTemplateProvider {
    MetricTemplateProvider {
        type_: type_.to_owned(),
        address: (!address.is_empty()).then(|| address.to_owned()),
        secret_ref: secret.then(|| SecretReference {
            name: "creds".to_owned(),
        }),
        ..Default::default()
    }
}

fn creds(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn build(
    provider: &MetricTemplateProvider,
    credentials: &BTreeMap<String, Vec<u8>>,
    interval: Duration,
) -> Result<AnyProvider, ProviderError> {
    AnyProvider::new(&ProviderInit {
        provider,
        credentials,
        interval,
        kube: None,
    })
}

fn now_millis() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `value` is within the last 5 s (in the unit of `scale`: 1 for seconds, 1000 for milliseconds).
fn assert_now(value: i64, scale: i64) {
    let now = now_millis() * scale / 1000;
    assert!(
        (now - 5 * scale..=now).contains(&value),
        "{value} is not now ({now})"
    );
}

fn assert_no_data(result: Result<f64, ProviderError>, provider: &str) {
    match result {
        Err(ProviderError::NoValues { provider: p, reason }) => {
            assert_eq!(p, provider);
            assert_eq!(reason, NoDataReason::Empty);
        }
        other => panic!("expected no data from {provider}, got {other:?}"),
    }
}

fn assert_status(result: Result<f64, ProviderError>, provider: &str, status: u16, body: &str) {
    let err = result.unwrap_err();
    match &err {
        ProviderError::Status {
            provider: p,
            status: s,
            body: b,
            ..
        } => {
            assert_eq!((*p, *s, b.as_str()), (provider, status, body));
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("{provider}: error response: Status {status}"))
    );
}

fn assert_parse(result: Result<f64, ProviderError>, provider: &str) {
    let err = result.unwrap_err();
    assert!(
        matches!(err, ProviderError::Parse { provider: p, .. } if p == provider),
        "expected a parse error from {provider}, got {err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{provider}: cannot parse the response"))
    );
}

fn assert_config(result: Result<AnyProvider, ProviderError>, message: &str) {
    let err = result.unwrap_err();
    assert!(matches!(err, ProviderError::Config { .. }), "{err:?}");
    assert_eq!(err.to_string(), message);
}

// ---------------------------------------------------------------------------------------------------------
// datadog

const DD_CREDS: &[(&str, &str)] = &[("datadog_api_key", "api-1"), ("datadog_application_key", "app-2")];

#[tokio::test]
async fn datadog_query_window_headers_and_value() {
    let (server, addr) = Server::start().await;
    let p = build(
        &template("datadog", &addr, true),
        &creds(DD_CREDS),
        Duration::from_secs(90),
    )
    .unwrap();
    assert_eq!(p.kind(), "datadog");
    server.reply(
        "/api/v1/query",
        200,
        r#"{"status":"ok","series":[{"pointlist":[[1700000000000,12.5],[1700000060000,99]]},{"pointlist":[[1,3]]}]}"#,
    );
    let query = "sum:requests.error{service:podinfo}.as_count()";
    assert_eq!(p.run_query(query).await.unwrap(), 12.5);
    let seen = server.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/api/v1/query")
    );
    assert_eq!(seen.query.len(), 3);
    assert_eq!(seen.query["query"], query);
    let (from, to) = (seen.query_i64("from"), seen.query_i64("to"));
    assert_now(to, 1);
    assert_eq!(to - from, 900, "10 × the 90 s interval");
    assert_eq!(seen.header("dd-api-key"), ["api-1"]);
    assert_eq!(seen.header("dd-application-key"), ["app-2"]);
}

#[tokio::test]
async fn datadog_no_data_errors_and_online() {
    let (server, addr) = Server::start().await;
    let p = build(
        &template("datadog", &addr, true),
        &creds(DD_CREDS),
        Duration::from_secs(60),
    )
    .unwrap();
    for body in [
        r#"{"status":"ok","series":[]}"#,
        r#"{"status":"ok"}"#,
        r#"{"status":"ok","series":[{"pointlist":[]}]}"#,
        r#"{"status":"ok","series":[{"pointlist":[[1700000000000,null]]}]}"#,
    ] {
        server.reply("/api/v1/query", 200, body);
        assert_no_data(p.run_query("q").await, "datadog");
    }
    server.reply("/api/v1/query", 403, r#"{"errors":["Forbidden"]}"#);
    assert_status(
        p.run_query("q").await,
        "datadog",
        403,
        r#"{"errors":["Forbidden"]}"#,
    );
    for body in [
        "<html>",
        r#"{"series":[{"pointlist":[[1,"x"]]}]}"#,
        r#"{"status":"error","error":"bad query"}"#,
        "[]",
    ] {
        server.reply("/api/v1/query", 200, body);
        assert_parse(p.run_query("q").await, "datadog");
    }

    server.reply("/api/v1/validate", 200, r#"{"valid":true}"#);
    p.is_online().await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/api/v1/validate")
    );
    assert_eq!(seen.header("dd-api-key"), ["api-1"]);
    assert_eq!(seen.header("dd-application-key"), ["app-2"]);
    server.reply("/api/v1/validate", 403, r#"{"errors":["Forbidden"]}"#);
    let err = p.is_online().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 403, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn datadog_credentials_and_default_address() {
    let t = template("datadog", "", true);
    assert_config(
        build(
            &t,
            &creds(&[("datadog_application_key", "a")]),
            Duration::from_secs(60),
        ),
        "datadog credentials does not contain datadog_api_key",
    );
    assert_config(
        build(&t, &creds(&[("datadog_api_key", "a")]), Duration::from_secs(60)),
        "datadog credentials does not contain datadog_application_key",
    );
    // Without an address the public API is used; nothing is sent at construction.
    assert!(build(&t, &creds(DD_CREDS), Duration::from_secs(60)).is_ok());
    assert_eq!(
        flagger_metrics::providers::datadog::DEFAULT_ADDRESS,
        "https://api.datadoghq.com"
    );
}

// ---------------------------------------------------------------------------------------------------------
// newrelic

const NR_CREDS: &[(&str, &str)] = &[("newrelic_account_id", "12345"), ("newrelic_query_key", "nrq-1")];

#[tokio::test]
async fn newrelic_query_window_headers_and_value() {
    let (server, addr) = Server::start().await;
    let p = build(
        &template("newrelic", &addr, true),
        &creds(NR_CREDS),
        Duration::from_secs(120),
    )
    .unwrap();
    assert_eq!(p.kind(), "newrelic");
    server.reply(
        "/v1/accounts/12345/query",
        200,
        r#"{"results":[{"result":1.25}]}"#,
    );
    let query = "SELECT filter(sum(nginx_ingress_controller_requests), WHERE status >= '500') FROM Metric";
    assert_eq!(p.run_query(query).await.unwrap(), 1.25);
    let seen = server.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/v1/accounts/12345/query")
    );
    assert_eq!(seen.query.len(), 1);
    assert_eq!(seen.query["nrql"], format!("{query} SINCE 120 seconds ago"));
    assert_eq!(seen.header("x-query-key"), ["nrq-1"]);
}

#[tokio::test]
async fn newrelic_no_data_errors_and_online() {
    let (server, addr) = Server::start().await;
    let p = build(
        &template("newrelic", &addr, true),
        &creds(NR_CREDS),
        Duration::from_secs(60),
    )
    .unwrap();
    let path = "/v1/accounts/12345/query";
    for body in [
        r#"{"results":[]}"#,
        r#"{"results":[{"result":null}]}"#,
        r#"{"results":[{"count":3}]}"#,
        r#"{"results":[{"result":1},{"result":2}]}"#,
        r#"{}"#,
    ] {
        server.reply(path, 200, body);
        assert_no_data(p.run_query("q").await, "newrelic");
    }
    server.reply(path, 401, r#"{"error":"invalid key"}"#);
    assert_status(
        p.run_query("q").await,
        "newrelic",
        401,
        r#"{"error":"invalid key"}"#,
    );
    for body in ["nope", r#"{"results":[{"result":"1"}]}"#, r#"{"results":{}}"#] {
        server.reply(path, 200, body);
        assert_parse(p.run_query("q").await, "newrelic");
    }

    server.reply(path, 200, r#"{"results":[{"events":[]}]}"#);
    p.is_online().await.unwrap();
    let seen = server.last();
    assert_eq!(seen.query["nrql"], "SELECT * FROM Metric SINCE 60 seconds ago");
    assert_eq!(seen.header("x-query-key"), ["nrq-1"]);
    server.reply(path, 500, "down");
    let err = p.is_online().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 500, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn newrelic_credentials() {
    let t = template("newrelic", "", true);
    assert_config(
        build(
            &t,
            &creds(&[("newrelic_query_key", "k")]),
            Duration::from_secs(60),
        ),
        "newrelic credentials does not contain the key 'newrelic_account_id'",
    );
    assert_config(
        build(
            &t,
            &creds(&[("newrelic_account_id", "1")]),
            Duration::from_secs(60),
        ),
        "newrelic credentials does not contain the key 'newrelic_query_key'",
    );
    let AnyProvider::NewRelic(p) = build(&t, &creds(NR_CREDS), Duration::from_secs(60)).unwrap() else {
        panic!("not newrelic")
    };
    assert_eq!(
        p.query_url().as_str(),
        "https://insights-api.newrelic.com/v1/accounts/12345/query"
    );
}

// ---------------------------------------------------------------------------------------------------------
// dynatrace

const DT_CREDS: &[(&str, &str)] = &[("dynatrace_token", "dt0c01.abc")];

#[tokio::test]
async fn dynatrace_query_window_headers_and_value() {
    let (server, addr) = Server::start().await;
    let base = format!("{addr}/e/env-1");
    let p = build(
        &template("dynatrace", &base, true),
        &creds(DT_CREDS),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(p.kind(), "dynatrace");
    server.reply(
        "/e/env-1/api/v2/metrics/query",
        200,
        r#"{"totalCount":1,"resolution":"Inf","result":[{"metricId":"m","data":[{"timestamps":[1],"values":[7]},{"timestamps":[2],"values":[0.5,9]}]}]}"#,
    );
    let selector = "builtin:service.response.time:avg:toUnit(MicroSecond,MilliSecond)";
    assert_eq!(p.run_query(selector).await.unwrap(), 0.5);
    let seen = server.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/e/env-1/api/v2/metrics/query")
    );
    assert_eq!(seen.query.len(), 4);
    assert_eq!(seen.query["metricSelector"], selector);
    assert_eq!(seen.query["resolution"], "Inf");
    let (from, to) = (seen.query_i64("from"), seen.query_i64("to"));
    assert_now(to, 1000);
    assert_eq!(to % 1000, 0, "whole seconds, as Flagger's Unix()*1000");
    assert_eq!(to - from, 300_000, "10 × the 30 s interval, in ms");
    assert_eq!(seen.header("authorization"), ["Api-Token dt0c01.abc"]);
}

#[tokio::test]
async fn dynatrace_no_data_errors_and_online() {
    let (server, addr) = Server::start().await;
    let p = build(
        &template("dynatrace", &addr, true),
        &creds(DT_CREDS),
        Duration::from_secs(60),
    )
    .unwrap();
    let path = "/api/v2/metrics/query";
    for body in [
        r#"{"result":[]}"#,
        r#"{"result":[{"data":[]}]}"#,
        r#"{"result":[{"data":[{"values":[]}]}]}"#,
        r#"{"result":[{"data":[{"values":[null]}]}]}"#,
    ] {
        server.reply(path, 200, body);
        assert_no_data(p.run_query("q").await, "dynatrace");
    }
    server.reply(path, 400, r#"{"error":{"code":400,"message":"bad selector"}}"#);
    assert_status(
        p.run_query("q").await,
        "dynatrace",
        400,
        r#"{"error":{"code":400,"message":"bad selector"}}"#,
    );
    for body in [
        "",
        r#"{"result":[{"data":[{"values":["x"]}]}]}"#,
        r#"{"result":7}"#,
    ] {
        server.reply(path, 200, body);
        assert_parse(p.run_query("q").await, "dynatrace");
    }

    server.reply("/api/v2/metrics", 200, r#"{"totalCount":1,"metrics":[]}"#);
    p.is_online().await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.path.as_str(), seen.raw_query.as_str()),
        ("/api/v2/metrics", "pageSize=1")
    );
    assert_eq!(seen.header("authorization"), ["Api-Token dt0c01.abc"]);
    server.reply("/api/v2/metrics", 401, "unauthorized");
    let err = p.is_online().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn dynatrace_address_and_credentials() {
    assert_config(
        build(
            &template("dynatrace", "", true),
            &creds(DT_CREDS),
            Duration::from_secs(60),
        ),
        "dynatrace endpoint is not set",
    );
    assert_config(
        build(
            &template("dynatrace", "https://dt.example", true),
            &creds(&[]),
            Duration::from_secs(60),
        ),
        "dynatrace credentials does not contain dynatrace_token",
    );
}

// ---------------------------------------------------------------------------------------------------------
// graphite

#[tokio::test]
async fn graphite_query_parameters_auth_and_last_value() {
    let (server, addr) = Server::start().await;
    let t = template("graphite", &format!("{addr}/graphite/"), true);
    let p = build(
        &t,
        &creds(&[("username", "u"), ("password", "p w")]),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(p.kind(), "graphite");
    server.reply(
        "/graphite/render",
        200,
        r#"[{"target":"a","datapoints":[[1.5,1700000000],[null,1700000060]]},{"target":"b","datapoints":[["2.75",1700000000],[null,1700000060]]}]"#,
    );
    let query = "target=sumSeries(app.*.errors)\n    &from=-1min&format=raw";
    assert_eq!(p.run_query(query).await.unwrap(), 2.75);
    let seen = server.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/graphite/render")
    );
    assert_eq!(
        seen.query,
        BTreeMap::from([
            ("format".to_owned(), "json".to_owned()),
            ("from".to_owned(), "-1min".to_owned()),
            ("target".to_owned(), "sumSeries(app.*.errors) ".to_owned()),
        ])
    );
    assert!(
        seen.raw_query.starts_with("format=json&from="),
        "sorted: {}",
        seen.raw_query
    );
    // base64("u:p w")
    assert_eq!(seen.header("authorization"), ["Basic dTpwIHc="]);

    // Without a secretRef no credentials are read or sent.
    let p = build(
        &template("graphite", &addr, false),
        &creds(&[]),
        Duration::from_secs(60),
    )
    .unwrap();
    server.reply("/render", 200, r#"[{"target":"a","datapoints":[[3,1]]}]"#);
    assert_eq!(p.run_query("target=a").await.unwrap(), 3.0);
    assert!(server.last().header("authorization").is_empty());
}

#[tokio::test]
async fn graphite_no_data_errors_and_online() {
    let (server, addr) = Server::start().await;
    let p = build(
        &template("graphite", &addr, false),
        &creds(&[]),
        Duration::from_secs(60),
    )
    .unwrap();
    for body in [
        "[]",
        r#"[{"target":"a","datapoints":[]}]"#,
        r#"[{"target":"a","datapoints":[[null,1]]}]"#,
    ] {
        server.reply("/render", 200, body);
        assert_no_data(p.run_query("target=a").await, "graphite");
    }
    // A 3xx/2xx other than 200 is read; only >= 400 is an error, as in Flagger.
    server.reply("/render", 500, "boom");
    assert_status(p.run_query("target=a").await, "graphite", 500, "boom");
    for body in [
        "{}",
        r#"[{"target":"a","datapoints":[[1]]}]"#,
        r#"[{"datapoints":[["x",1]]}]"#,
        "<",
    ] {
        server.reply("/render", 200, body);
        assert_parse(p.run_query("target=a").await, "graphite");
    }

    // Online: target=test, and no data counts as online.
    server.reply("/render", 200, "[]");
    p.is_online().await.unwrap();
    assert_eq!(server.last().query["target"], "test");
    server.reply("/render", 401, "denied");
    let err = p.is_online().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn graphite_address_and_credentials() {
    let err = build(
        &template("graphite", "", false),
        &creds(&[]),
        Duration::from_secs(60),
    )
    .unwrap_err();
    assert!(matches!(err, ProviderError::InvalidAddress { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("graphite address \"\" is not a valid URL"),
        "{err}"
    );
    let t = template("graphite", "http://graphite:8080", true);
    let err = build(&t, &creds(&[("password", "p")]), Duration::from_secs(60)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "graphite credentials does not contain a username"
    );
    let err = build(&t, &creds(&[("username", "u")]), Duration::from_secs(60)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "graphite credentials does not contain a password"
    );
}

// ---------------------------------------------------------------------------------------------------------
// influxdb

const CSV_VALUE: &str = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,double,string\r\n\
#group,false,false,true,true,false,true\r\n\
#default,_result,,,,,\r\n\
,result,table,_start,_stop,_value,_field\r\n\
,,0,2024-01-01T00:00:00Z,2024-01-01T00:01:00Z,0.25,errors\r\n\
,,0,2024-01-01T00:00:00Z,2024-01-01T00:01:00Z,9,errors\r\n\r\n";

#[tokio::test]
async fn influxdb_flux_request_and_first_record() {
    let (server, addr) = Server::start().await;
    let t = template("influxdb", &format!("{addr}/influx"), true);
    let p = build(
        &t,
        &creds(&[("token", "tok=="), ("org", "my org")]),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(p.kind(), "influxdb");
    server.reply_typed("/influx/api/v2/query", 200, "text/csv; charset=utf-8", CSV_VALUE);
    let flux = r#"from(bucket: "app") |> range(start: -1m) |> count()"#;
    assert_eq!(p.run_query(flux).await.unwrap(), 0.25);
    let seen = server.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/influx/api/v2/query")
    );
    assert_eq!(
        seen.query,
        BTreeMap::from([("org".to_owned(), "my org".to_owned())])
    );
    assert_eq!(seen.header("authorization"), ["Token tok=="]);
    assert_eq!(seen.header("content-type"), ["application/json"]);
    let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "query": flux,
            "type": "flux",
            "dialect": {"annotations": ["datatype", "group", "default"], "delimiter": ",", "header": true}
        })
    );
}

#[tokio::test]
async fn influxdb_no_data_errors_and_online() {
    let (server, addr) = Server::start().await;
    let p = build(
        &template("influxdb", &addr, false),
        &creds(&[]),
        Duration::from_secs(60),
    )
    .unwrap();
    let path = "/api/v2/query";
    // No records: Flagger returns 0 here; it is no data.
    server.reply_typed(path, 200, "text/csv", "\r\n");
    assert_no_data(p.run_query("q").await, "influxdb");
    server.reply_typed(path, 200, "text/csv", "");
    assert_no_data(p.run_query("q").await, "influxdb");
    server.reply_typed(
        path,
        200,
        "text/csv",
        "#datatype,string,long,double\n#group,false,false,false\n#default,_result,,\n,result,table,_value\n,,0,\n",
    );
    assert_no_data(p.run_query("q").await, "influxdb");
    let seen = server.last();
    assert_eq!(seen.raw_query, "org=");
    assert!(seen.header("authorization").is_empty());

    server.reply(
        path,
        401,
        r#"{"code":"unauthorized","message":"unauthorized access"}"#,
    );
    assert_status(
        p.run_query("q").await,
        "influxdb",
        401,
        r#"{"code":"unauthorized","message":"unauthorized access"}"#,
    );
    for body in [
        // Not annotated CSV.
        "_time,_value\nx,1\n",
        // A string value.
        "#datatype,string,long,string\n#group,false,false,false\n#default,_result,,\n,result,table,_value\n,,0,abc\n",
        // An error table.
        "#datatype,string,string\n#group,true,true\n#default,,\n,error,reference\n,failed to compile query,897\n",
    ] {
        server.reply_typed(path, 200, "text/csv", body);
        assert_parse(p.run_query("q").await, "influxdb");
    }

    server.reply_typed(path, 200, "text/csv", "\r\n");
    p.is_online().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&server.last().body).unwrap();
    assert_eq!(body["query"], r#"from(bucket: "default") |> range(start: -2h)"#);
    server.reply(
        path,
        404,
        r#"{"code":"not found","message":"bucket \"default\" not found"}"#,
    );
    let err = p.is_online().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn influxdb_address_and_credentials() {
    let err = build(
        &template("influxdb", "", true),
        &creds(&[]),
        Duration::from_secs(60),
    )
    .unwrap_err();
    assert!(matches!(err, ProviderError::InvalidAddress { .. }), "{err:?}");
    let t = template("influxdb", "http://influx:8086", true);
    assert_config(
        build(&t, &creds(&[("org", "o")]), Duration::from_secs(60)),
        "influxdb credentials does not contain an authentication token",
    );
    assert_config(
        build(&t, &creds(&[("token", "t")]), Duration::from_secs(60)),
        "influxdb credentials does not contain an organisation",
    );
}

// ---------------------------------------------------------------------------------------------------------
// splunk

const SF_CREDS: &[(&str, &str)] = &[("sf_token_key", "sf-123")];

fn sse(events: &[(&str, &str)]) -> String {
    events
        .iter()
        .map(|(event, data)| format!("event: {event}\ndata: {data}\n\n"))
        .collect()
}

const START: (&str, &str) = ("control-message", r#"{"event":"STREAM_START","timestampMs":1}"#);
const END: (&str, &str) = ("control-message", r#"{"event":"END_OF_CHANNEL","timestampMs":9}"#);

#[tokio::test]
async fn splunk_signalflow_request_window_and_last_value() {
    let (server, addr) = Server::start().await;
    let p = build(
        &template("splunk", &addr, true),
        &creds(SF_CREDS),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(p.kind(), "splunk");
    let body = sse(&[
        START,
        (
            "metadata",
            r#"{"tsId":"AAAA","properties":{"sf_metric":"errors"}}"#,
        ),
        (
            "data",
            r#"{"logicalTimestampMs":1,"data":[{"tsId":"AAAA","value":1}]}"#,
        ),
        (
            "data",
            r#"{"logicalTimestampMs":2,"data":[{"tsId":"AAAA","value":4.5}]}"#,
        ),
        (
            "data",
            r#"{"logicalTimestampMs":3,"data":[{"tsId":"AAAA","value":null}]}"#,
        ),
        END,
    ]);
    server.reply_typed("/v2/signalflow/execute", 200, "text/event-stream", &body);
    let program = "data('requests', filter=filter('status', '5*')).sum().publish()";
    assert_eq!(p.run_query(program).await.unwrap(), 4.5);
    let seen = server.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v2/signalflow/execute")
    );
    assert_eq!(seen.body, program);
    assert_eq!(seen.header("x-sf-token"), ["sf-123"]);
    assert_eq!(seen.header("content-type"), ["text/plain"]);
    assert_eq!(seen.query.len(), 3);
    assert_eq!(seen.query["immediate"], "true");
    let (start, stop) = (seen.query_i64("start"), seen.query_i64("stop"));
    assert_now(stop, 1000);
    assert_eq!(stop - start, 600_000, "10 × the 60 s interval, in ms");
}

#[tokio::test]
async fn splunk_no_data_multiple_series_errors_and_online() {
    let (server, addr) = Server::start().await;
    let p = build(
        &template("splunk", &addr, true),
        &creds(SF_CREDS),
        Duration::from_secs(60),
    )
    .unwrap();
    let path = "/v2/signalflow/execute";
    for events in [
        vec![START, END],
        vec![
            START,
            (
                "data",
                r#"{"logicalTimestampMs":1,"data":[{"tsId":"A","value":null}]}"#,
            ),
            END,
        ],
        vec![START, ("data", r#"{"logicalTimestampMs":1,"data":[]}"#), END],
    ] {
        server.reply_typed(path, 200, "text/event-stream", &sse(&events));
        assert_no_data(p.run_query("q").await, "splunk");
    }
    server.reply_typed(
        path,
        200,
        "text/event-stream",
        &sse(&[
            START,
            (
                "data",
                r#"{"logicalTimestampMs":1,"data":[{"tsId":"A","value":1},{"tsId":"B","value":2}]}"#,
            ),
            END,
        ]),
    );
    let err = p.run_query("q").await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::MultipleValues {
                provider: "splunk",
                ..
            }
        ),
        "{err:?}"
    );

    server.reply(path, 400, r#"{"code":400,"message":"Invalid program"}"#);
    assert_status(
        p.run_query("q").await,
        "splunk",
        400,
        r#"{"code":400,"message":"Invalid program"}"#,
    );
    for events in [
        vec![
            START,
            ("error", r#"{"errors":[{"code":"ANALYTICS_PROGRAM_NAME_ERROR"}]}"#),
        ],
        vec![
            START,
            (
                "control-message",
                r#"{"event":"CHANNEL_ABORT","abortInfo":{"sf_job_abortReason":"x"}}"#,
            ),
        ],
        vec![START, ("data", "{not json"), END],
        vec![START, ("data", r#"{"data":[{"tsId":"A","value":"1"}]}"#), END],
    ] {
        server.reply_typed(path, 200, "text/event-stream", &sse(&events));
        assert_parse(p.run_query("q").await, "splunk");
    }

    server.reply("/v2/metric", 200, r#"{"count":1,"results":[]}"#);
    p.is_online().await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str(), seen.raw_query.as_str()),
        ("GET", "/v2/metric", "limit=1")
    );
    assert_eq!(seen.header("x-sf-token"), ["sf-123"]);
    server.reply("/v2/metric", 401, "unauthorized");
    let err = p.is_online().await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn splunk_address_and_credentials() {
    assert_config(
        build(
            &template("splunk", "", true),
            &creds(SF_CREDS),
            Duration::from_secs(60),
        ),
        "splunk endpoint is not set",
    );
    assert_config(
        build(
            &template("splunk", "https://api.us1.signalfx.com", true),
            &creds(&[]),
            Duration::from_secs(60),
        ),
        "splunk credentials does not contain sf_token_key",
    );
    let AnyProvider::Splunk(p) = build(
        &template("splunk", "https://api.us1.signalfx.com", true),
        &creds(SF_CREDS),
        Duration::from_secs(60),
    )
    .unwrap() else {
        panic!("not splunk")
    };
    assert_eq!(
        p.execute_url().as_str(),
        "https://stream.us1.signalfx.com/v2/signalflow/execute"
    );
    assert_eq!(
        p.validate_url().as_str(),
        "https://api.us1.signalfx.com/v2/metric?limit=1"
    );
}

// ---------------------------------------------------------------------------------------------------------
// dispatch

#[tokio::test]
async fn unknown_types_fall_back_to_prometheus() {
    let (server, addr) = Server::start().await;
    assert!(flagger_metrics::providers::falls_back_to_prometheus("victoria"));
    assert!(!flagger_metrics::providers::falls_back_to_prometheus("datadog"));
    let p = build(
        &template("victoria", &addr, false),
        &creds(&[]),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(p.kind(), "prometheus");
    server.reply(
        "/api/v1/query",
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}"#,
    );
    p.is_online().await.unwrap();
    assert_eq!(server.last().query["query"], "vector(1)");
    assert_eq!(server.count(), 1);
}

/// A SignalFlow stream that stays open after `END_OF_CHANNEL` is not waited on: the value is returned at
/// the end of the channel, well before the 5 s timeout.
#[tokio::test]
async fn splunk_stops_reading_at_the_end_of_the_channel() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 8192];
        let _ = socket.read(&mut request).await.unwrap();
        let events = sse(&[
            START,
            (
                "data",
                r#"{"logicalTimestampMs":1,"data":[{"tsId":"A","value":3}]}"#,
            ),
            END,
        ]);
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let chunk = format!("{:x}\r\n{events}\r\n", events.len());
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(chunk.as_bytes()).await.unwrap();
        // The response never ends until the test is over.
        let _ = released.await;
    });
    let p = build(
        &template("splunk", &format!("http://{addr}"), true),
        &creds(SF_CREDS),
        Duration::from_secs(60),
    )
    .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(p.run_query("q").await.unwrap(), 3.0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(release);
}
