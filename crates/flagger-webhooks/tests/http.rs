//! The HTTP contract against real servers on 127.0.0.1: wiremock for plain HTTP, a small rustls server
//! with a self-signed certificate for `disableTLS`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flagger_api::{CanaryPhase, CanaryWebhook, HookType};
use flagger_webhooks::{
    CanaryWebhookPayload, ErrorCategory, EventType, EventWebhookPayload, RetryPolicy, WebhookClient,
    WebhookError,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Retry waits short enough for tests (the real policy starts at 1 s).
const FAST: RetryPolicy = RetryPolicy {
    min_wait: Duration::from_millis(1),
    max_wait: Duration::from_millis(4),
};

fn client() -> WebhookClient {
    WebhookClient::with_retry_policy(FAST).expect("client")
}

fn hook(url: String) -> CanaryWebhook {
    CanaryWebhook {
        name: "gate".into(),
        type_: Some(HookType::ConfirmRollout),
        url,
        ..CanaryWebhook::default()
    }
}

fn payload() -> CanaryWebhookPayload {
    CanaryWebhookPayload {
        name: "podinfo".into(),
        namespace: "test".into(),
        phase: CanaryPhase::Progressing,
        checksum: flagger_webhooks::checksum(None, "abc"),
        metadata: BTreeMap::from([("cmd".to_owned(), "hey -z 1m".to_owned())]),
    }
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("request recording is on")
}

/// Mounts a mock answering every POST to `/hook` with `template`.
async fn answer(server: &MockServer, template: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(template)
        .mount(server)
        .await;
}

#[tokio::test]
async fn posts_the_flagger_payload_as_json() {
    let server = MockServer::start().await;
    let expected = json!({
        "name": "podinfo",
        "namespace": "test",
        "phase": "Progressing",
        "checksum": flagger_webhooks::checksum(None, "abc"),
        "metadata": {"cmd": "hey -z 1m"},
    });
    Mock::given(method("POST"))
        .and(path("/gate/check"))
        .and(header("content-type", "application/json"))
        .and(body_json(&expected))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let url = format!("{}/gate/check", server.uri());
    client()
        .call(&hook(url), &payload())
        .await
        .expect("200 is success");

    let received = requests(&server).await;
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/gate/check");
    assert_eq!(request.url.query(), None);
    let content_types: Vec<_> = request.headers.get_all("content-type").iter().collect();
    assert_eq!(content_types, ["application/json"]);
    let body_len = request.body.len().to_string();
    assert_eq!(
        request
            .headers
            .get("content-length")
            .map(|v| v.to_str().expect("ascii")),
        Some(body_len.as_str())
    );
    // Byte for byte, in Flagger's field order.
    assert_eq!(
        String::from_utf8(request.body.clone()).expect("utf-8"),
        format!(
            r#"{{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"{}","metadata":{{"cmd":"hey -z 1m"}}}}"#,
            flagger_webhooks::checksum(None, "abc")
        )
    );
    server.verify().await;
}

#[tokio::test]
async fn metadata_is_left_out_of_the_body_when_empty() {
    let server = MockServer::start().await;
    answer(&server, ResponseTemplate::new(200)).await;
    let bare = CanaryWebhookPayload {
        metadata: BTreeMap::new(),
        ..payload()
    };
    client()
        .call(&hook(format!("{}/hook", server.uri())), &bare)
        .await
        .expect("200");
    let received = requests(&server).await;
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).expect("json");
    assert_eq!(
        body,
        json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": bare.checksum})
    );
}

#[tokio::test]
async fn statuses_200_201_202_are_success() {
    for status in [200, 201, 202] {
        let server = MockServer::start().await;
        answer(&server, ResponseTemplate::new(status).set_body_string("fine")).await;
        let result = client()
            .call(&hook(format!("{}/hook", server.uri())), &payload())
            .await;
        assert!(result.is_ok(), "{status}: {result:?}");
        assert_eq!(requests(&server).await.len(), 1);
    }
}

#[tokio::test]
async fn other_non_retryable_statuses_fail_with_the_body_as_error_text_and_no_retry() {
    // 204 and 304 cannot carry a body; their error text is empty, as in Flagger.
    let cases = [
        (203, "non-authoritative"),
        (204, ""),
        (206, "partial"),
        (300, "choose"),
        (302, "moved, no location"),
        (304, ""),
        (400, "bad request"),
        (401, "who are you"),
        (403, "gate closed"),
        (404, "404 page not found\n"),
        (409, "conflict"),
        (501, "not implemented"),
    ];
    for (status, body) in cases {
        let server = MockServer::start().await;
        answer(&server, ResponseTemplate::new(status).set_body_string(body)).await;
        let url = format!("{}/hook", server.uri());
        let retrying = CanaryWebhook {
            retries: Some(3),
            ..hook(url.clone())
        };
        let err = client().call(&retrying, &payload()).await.expect_err("failure");
        assert!(matches!(err, WebhookError::Rejected { .. }), "{status}: {err:?}");
        assert_eq!(err.flagger_message(), body, "{status}");
        assert_eq!(err.status(), Some(status), "{status}");
        assert_eq!(err.category(), ErrorCategory::Rejected);
        assert_eq!(err.hook(), "gate");
        assert_eq!(
            err.to_string(),
            format!("webhook gate: POST {url} answered {status}: {body}")
        );
        assert_eq!(requests(&server).await.len(), 1, "{status} must not be retried");
    }
}

#[tokio::test]
async fn retryable_statuses_are_retried_then_give_up_with_flaggers_message() {
    for status in [500, 502, 503, 504, 429] {
        for retries in [0, 2] {
            let server = MockServer::start().await;
            answer(&server, ResponseTemplate::new(status).set_body_string("busy")).await;
            let url = format!("{}/hook", server.uri());
            let h = CanaryWebhook {
                retries: Some(retries),
                ..hook(url.clone())
            };
            let err = client().call(&h, &payload()).await.expect_err("failure");
            let attempts = retries + 1;
            assert_eq!(
                err.flagger_message(),
                format!("POST {url} giving up after {attempts} attempt(s)"),
                "{status}"
            );
            assert_eq!(err.attempts(), u32::try_from(attempts).expect("small"));
            assert_eq!(err.status(), Some(status));
            assert_eq!(err.category(), ErrorCategory::Unavailable);
            assert_eq!(
                err.to_string(),
                format!(
                    "webhook gate: POST {url} giving up after {attempts} attempt(s), last: status {status}"
                )
            );
            assert_eq!(
                requests(&server).await.len(),
                usize::try_from(attempts).expect("small"),
                "{status} with retries {retries}"
            );
        }
    }
}

#[tokio::test]
async fn a_retry_that_succeeds_is_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    answer(&server, ResponseTemplate::new(200)).await;
    let h = CanaryWebhook {
        retries: Some(5),
        ..hook(format!("{}/hook", server.uri()))
    };
    client()
        .call(&h, &payload())
        .await
        .expect("third attempt answers 200");
    let received = requests(&server).await;
    assert_eq!(received.len(), 3);
    // Every attempt carries the same body.
    assert!(received.iter().all(|r| r.body == received[0].body));
}

#[tokio::test]
async fn a_retry_answered_with_a_client_error_fails_with_that_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    answer(&server, ResponseTemplate::new(403).set_body_string("closed")).await;
    let h = CanaryWebhook {
        retries: Some(5),
        ..hook(format!("{}/hook", server.uri()))
    };
    let err = client().call(&h, &payload()).await.expect_err("403");
    assert_eq!(err.flagger_message(), "closed");
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.attempts(), 2);
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn waits_between_attempts_follow_the_policy() {
    let server = MockServer::start().await;
    answer(&server, ResponseTemplate::new(500)).await;
    let policy = RetryPolicy {
        min_wait: Duration::from_millis(40),
        max_wait: Duration::from_millis(70),
    };
    let h = CanaryWebhook {
        retries: Some(3),
        ..hook(format!("{}/hook", server.uri()))
    };
    let client = WebhookClient::with_retry_policy(policy).expect("client");
    let started = Instant::now();
    let err = client.call(&h, &payload()).await.expect_err("500");
    let elapsed = started.elapsed();
    assert_eq!(err.attempts(), 4);
    // 40 + 70 (80 capped) + 70 ms.
    assert!(elapsed >= Duration::from_millis(180), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn retry_after_replaces_the_wait_up_to_the_maximum() {
    let server = MockServer::start().await;
    answer(
        &server,
        ResponseTemplate::new(429).insert_header("retry-after", "3"),
    )
    .await;
    let policy = RetryPolicy {
        min_wait: Duration::from_millis(1),
        max_wait: Duration::from_millis(150),
    };
    let h = CanaryWebhook {
        retries: Some(1),
        ..hook(format!("{}/hook", server.uri()))
    };
    let client = WebhookClient::with_retry_policy(policy).expect("client");
    let started = Instant::now();
    let err = client.call(&h, &payload()).await.expect_err("429");
    let elapsed = started.elapsed();
    assert_eq!(err.attempts(), 2);
    // Without Retry-After the wait would be 1 ms; with it uncapped, 3 s.
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_short_custom_timeout_fails_against_a_slow_server() {
    let server = MockServer::start().await;
    answer(
        &server,
        ResponseTemplate::new(200).set_delay(Duration::from_secs(30)),
    )
    .await;
    let url = format!("{}/hook", server.uri());
    let h = CanaryWebhook {
        timeout: Some("200ms".into()),
        ..hook(url.clone())
    };
    let started = Instant::now();
    let err = client().call(&h, &payload()).await.expect_err("timeout");
    let elapsed = started.elapsed();
    assert_eq!(err.category(), ErrorCategory::Timeout, "{err:?}");
    assert_eq!(err.attempts(), 1);
    let prefix = format!("POST {url} giving up after 1 attempt(s): Post \"{url}\": ");
    assert!(
        err.flagger_message().starts_with(&prefix),
        "{}",
        err.flagger_message()
    );
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[tokio::test]
async fn timeouts_are_retried() {
    let server = MockServer::start().await;
    answer(
        &server,
        ResponseTemplate::new(200).set_delay(Duration::from_secs(30)),
    )
    .await;
    // Long enough for the mock server to have read each request before the client gives up on it.
    let h = CanaryWebhook {
        timeout: Some("500ms".into()),
        retries: Some(2),
        ..hook(format!("{}/hook", server.uri()))
    };
    let err = client().call(&h, &payload()).await.expect_err("timeout");
    assert_eq!(err.category(), ErrorCategory::Timeout);
    assert_eq!(err.attempts(), 3);
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn the_default_timeout_outlasts_a_slow_server_that_a_custom_one_does_not() {
    let server = MockServer::start().await;
    answer(
        &server,
        ResponseTemplate::new(200).set_delay(Duration::from_millis(1500)),
    )
    .await;
    let url = format!("{}/hook", server.uri());
    let custom = CanaryWebhook {
        timeout: Some("1s".into()),
        ..hook(url.clone())
    };
    let err = client().call(&custom, &payload()).await.expect_err("1s < 1.5s");
    assert_eq!(err.category(), ErrorCategory::Timeout);
    // Unset, empty and 1-character timeouts all mean 10 s (Flagger's `len(timeout) < 2` rule); the three
    // calls run concurrently to keep the test short.
    let with = |timeout: Option<&str>| CanaryWebhook {
        timeout: timeout.map(str::to_owned),
        ..hook(url.clone())
    };
    let (unset, empty, short) = (with(None), with(Some("")), with(Some("1")));
    let client = client();
    let payload = payload();
    let (a, b, c) = tokio::join!(
        client.call(&unset, &payload),
        client.call(&empty, &payload),
        client.call(&short, &payload)
    );
    for (timeout, result) in [("unset", a), ("\"\"", b), ("\"1\"", c)] {
        result.unwrap_or_else(|e| panic!("timeout {timeout}: {e}"));
    }
}

#[tokio::test]
async fn an_invalid_timeout_sends_nothing() {
    let server = MockServer::start().await;
    answer(&server, ResponseTemplate::new(200)).await;
    let h = CanaryWebhook {
        timeout: Some("ten".into()),
        ..hook(format!("{}/hook", server.uri()))
    };
    let err = client().call(&h, &payload()).await.expect_err("invalid");
    assert_eq!(err.category(), ErrorCategory::InvalidConfig);
    assert_eq!(
        err.to_string(),
        r#"webhook gate: invalid timeout "ten": invalid duration "ten""#
    );
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn connection_errors_are_retried_then_give_up() {
    // A port nobody listens on: bind, note it, close.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    let h = CanaryWebhook {
        retries: Some(2),
        ..hook(url.clone())
    };
    let err = client().call(&h, &payload()).await.expect_err("refused");
    assert_eq!(err.category(), ErrorCategory::Transport, "{err:?}");
    assert_eq!(err.attempts(), 3);
    let prefix = format!("POST {url} giving up after 3 attempt(s): Post \"{url}\": ");
    assert!(
        err.flagger_message().starts_with(&prefix),
        "{}",
        err.flagger_message()
    );
}

#[tokio::test]
async fn the_give_up_message_redacts_the_password() {
    let server = MockServer::start().await;
    answer(&server, ResponseTemplate::new(500)).await;
    let address = server.address();
    let h = hook(format!("http://bob:s3cret@{address}/hook"));
    let err = client().call(&h, &payload()).await.expect_err("500");
    assert_eq!(
        err.flagger_message(),
        format!("POST http://bob:xxxxx@{address}/hook giving up after 1 attempt(s)")
    );
    assert!(!err.to_string().contains("s3cret"));
}

#[tokio::test]
async fn event_webhooks_get_the_event_payload() {
    let server = MockServer::start().await;
    answer(&server, ResponseTemplate::new(202)).await;
    let canary: flagger_api::Canary = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}},
        "status": {"phase": "Progressing", "lastAppliedSpec": "abc"},
    }))
    .expect("canary");
    let time = jiff::Timestamp::new(1_795_867_200, 5_000_000).expect("time");
    let event = EventWebhookPayload::new(
        &canary,
        "Halt advancement podinfo-primary.test waiting for rollout to finish",
        EventType::Warning,
        time,
    );
    let h = CanaryWebhook {
        name: "events".into(),
        type_: Some(HookType::Event),
        url: format!("{}/hook", server.uri()),
        metadata: Some(BTreeMap::from([
            ("cluster".to_owned(), "prod".to_owned()),
            ("eventMessage".to_owned(), "ignored".to_owned()),
        ])),
        ..CanaryWebhook::default()
    };
    client().call_event(&h, &event).await.expect("202");
    let received = requests(&server).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).expect("json");
    assert_eq!(
        body,
        json!({
            "name": "podinfo",
            "namespace": "test",
            "phase": "Progressing",
            "checksum": flagger_webhooks::checksum(None, "abc"),
            "metadata": {
                "cluster": "prod",
                "eventMessage": "Halt advancement podinfo-primary.test waiting for rollout to finish",
                "eventType": "Warning",
                "timestamp": "1795867200005",
            }
        })
    );

    // Event hooks don't get the `len(timeout) < 2` rule: "5" is a missing unit, and nothing is sent.
    let bad = CanaryWebhook {
        timeout: Some("5".into()),
        ..h
    };
    let err = client().call_event(&bad, &event).await.expect_err("missing unit");
    assert_eq!(err.flagger_message(), r#"time: missing unit in duration "5""#);
    assert_eq!(requests(&server).await.len(), 1);
}

/// A one-connection-at-a-time HTTPS server with a self-signed certificate for 127.0.0.1. It records
/// accepted TCP connections and the requests that made it through the TLS handshake, and answers 200.
struct TlsServer {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<RawRequest>>>,
}

/// The head (request line and headers) and the body of a request.
type RawRequest = (String, Vec<u8>);

async fn tls_server() -> TlsServer {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (conns, reqs) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            conns.fetch_add(1, Ordering::SeqCst);
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then Content-Length bytes of body.
            let (head, body) = loop {
                let Ok(n) = tls.read(&mut buf).await else {
                    break (String::new(), Vec::new());
                };
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                data.extend_from_slice(&buf[..n]);
                let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&data[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    break (head, data[end + 4..end + 4 + length].to_vec());
                }
            };
            reqs.lock().await.push((head, body));
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
            let _ = tls.shutdown().await;
        }
    });
    TlsServer {
        url: format!("https://{address}/hook"),
        connections,
        requests,
    }
}

#[tokio::test]
async fn disable_tls_accepts_a_self_signed_certificate() {
    let server = tls_server().await;
    let h = CanaryWebhook {
        disable_tls: Some(true),
        ..hook(server.url.clone())
    };
    client()
        .call(&h, &payload())
        .await
        .expect("insecure call succeeds");
    let requests = server.requests.lock().await;
    assert_eq!(requests.len(), 1);
    let (head, body) = &requests[0];
    assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case("content-type: application/json")),
        "{head}"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(body).expect("json"),
        serde_json::to_value(payload()).expect("json")
    );
}

#[tokio::test]
async fn a_self_signed_certificate_is_rejected_without_disable_tls_and_not_retried() {
    let server = tls_server().await;
    for disable_tls in [None, Some(false)] {
        let before = server.connections.load(Ordering::SeqCst);
        let h = CanaryWebhook {
            disable_tls,
            retries: Some(3),
            ..hook(server.url.clone())
        };
        let err = client()
            .call(&h, &payload())
            .await
            .expect_err("untrusted certificate");
        assert_eq!(err.category(), ErrorCategory::Tls, "{err:?}");
        assert_eq!(err.attempts(), 1);
        assert_eq!(server.connections.load(Ordering::SeqCst), before + 1);
        let prefix = format!(
            "POST {} giving up after 1 attempt(s): Post \"{}\": ",
            server.url, server.url
        );
        assert!(
            err.flagger_message().starts_with(&prefix),
            "{}",
            err.flagger_message()
        );
    }
    assert!(server.requests.lock().await.is_empty());
}
