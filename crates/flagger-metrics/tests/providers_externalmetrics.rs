//! The externalmetrics provider against a local server that speaks the external metrics API (an APIService
//! cannot be registered in the test cluster), asserting path, label selector and auth; and through the
//! operator's client against the real API server, where the API is not served.
#![allow(clippy::unwrap_used)]

mod provider_server;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flagger_metrics::provider::NoDataReason;
use flagger_metrics::providers::externalmetrics::ExternalMetricsProvider;
use flagger_metrics::{AnyProvider, MetricProvider, ProviderError, ProviderInit};
use provider_server::{Server, provider, secret};

const API: &str = "/apis/external.metrics.k8s.io/v1beta1";

fn list(values: &[&str]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| {
            format!(
                r#"{{"metricName":"http_requests_per_second","metricLabels":{{"app":"podinfo"}},"timestamp":"2024-01-01T00:00:00Z","value":"{v}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{{}},"items":[{}]}}"#,
        items.join(",")
    )
}

fn build(
    address: Option<&str>,
    credentials: &BTreeMap<String, Vec<u8>>,
    kube: Option<&kube::Client>,
) -> Result<ExternalMetricsProvider, ProviderError> {
    let spec = provider("externalmetrics", address, !credentials.is_empty());
    ExternalMetricsProvider::new(&ProviderInit {
        provider: &spec,
        credentials,
        interval: Duration::from_secs(60),
        kube,
    })
}

#[tokio::test]
async fn the_exact_request_with_selector_and_token() {
    let (server, addr) = Server::start().await;
    let path = format!("{API}/namespaces/monitoring/http_requests_per_second");
    server.reply(&path, 200, &list(&["100m", "7"]));
    let p = build(Some(&addr), &secret(&[("token", "metrics-token")]), None).unwrap();
    assert_eq!(p.kind(), "externalmetrics");

    let value = p
        .run_query(
            "monitoring/http_requests_per_second?labelSelector=env%20in%20(prod%2Ccanary)%2Capp%3Dpodinfo",
        )
        .await
        .unwrap();
    assert!((value - 0.1).abs() < 1e-12, "{value}");

    let seen = server.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, path);
    // The selector is sent as Kubernetes writes it: requirements sorted by key, set values sorted.
    assert_eq!(
        seen.query_pairs(),
        vec![(
            "labelSelector".to_owned(),
            "app=podinfo,env in (canary,prod)".to_owned()
        )]
    );
    assert_eq!(
        seen.query,
        "labelSelector=app%3Dpodinfo%2Cenv+in+%28canary%2Cprod%29"
    );
    assert_eq!(seen.one_header("authorization"), "Bearer metrics-token");
    assert_eq!(seen.one_header("accept"), "application/json");
}

#[tokio::test]
async fn defaults_without_namespace_selector_or_token() {
    let (server, addr) = Server::start().await;
    let path = format!("{API}/namespaces/default/queue_depth");
    server.reply(&path, 200, &list(&["2Ki"]));
    let p = build(Some(&addr), &secret(&[]), None).unwrap();
    assert_eq!(p.run_query("queue_depth").await.unwrap(), 2048.0);
    assert_eq!(p.run_query("/queue_depth").await.unwrap(), 2048.0);
    let seen = server.last();
    assert_eq!(seen.path, path);
    assert_eq!(seen.query, "");
    assert!(seen.header("authorization").is_empty());
}

#[tokio::test]
async fn no_data_errors_and_malformed_answers() {
    let (server, addr) = Server::start().await;
    let path = format!("{API}/namespaces/ns/m");
    let p = build(Some(&addr), &secret(&[]), None).unwrap();

    for body in [
        list(&[]),
        r#"{"kind":"ExternalMetricValueList","items":null}"#.to_owned(),
        "{}".to_owned(),
    ] {
        server.reply(&path, 200, &body);
        match p.run_query("ns/m").await.unwrap_err() {
            ProviderError::NoValues {
                provider: "externalmetrics",
                reason: NoDataReason::Empty,
            } => {}
            other => panic!("{body}: {other}"),
        }
    }
    for body in [
        "nope".to_owned(),
        r#"{"items":{}}"#.to_owned(),
        list(&["12 apples"]),
    ] {
        server.reply(&path, 200, &body);
        let err = p.run_query("ns/m").await.unwrap_err();
        assert!(
            matches!(
                err,
                ProviderError::Parse {
                    provider: "externalmetrics",
                    ..
                }
            ),
            "{body}: {err}"
        );
    }
    let not_found = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server could not find the metric m","reason":"NotFound","code":404}"#;
    server.reply(&path, 404, not_found);
    assert_eq!(
        p.run_query("ns/m").await.unwrap_err().to_string(),
        format!("externalmetrics: error response: Status 404 Not Found: {not_found}")
    );

    // Queries Flagger rejects are errors before anything is sent.
    server.clear();
    for query in ["a/b/c", "ns/", "ns/m?labelSelector=a%3D%3D%3Db"] {
        let err = p.run_query(query).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("externalmetrics: error parsing metric query: "),
            "{err}"
        );
    }
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn is_online_lists_the_dummy_metric() {
    let (server, addr) = Server::start().await;
    let p = build(Some(&addr), &secret(&[("token", "t")]), None).unwrap();
    let path = format!("{API}/namespaces/kube-system/dummy-metric");
    server.reply(&path, 200, &list(&[]));
    p.is_online().await.unwrap();
    let seen = server.last();
    assert_eq!(seen.path, path);
    assert_eq!(seen.query, "");
    assert_eq!(seen.one_header("authorization"), "Bearer t");

    server.reply(&path, 503, "service unavailable");
    let err = p.is_online().await.unwrap_err();
    assert!(matches!(
        err,
        ProviderError::NotOnline {
            provider: "externalmetrics",
            ..
        }
    ));
    assert!(
        err.to_string().contains("external metrics service unavailable"),
        "{err}"
    );
}

#[tokio::test]
async fn requests_time_out_after_five_seconds() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            connections.push(socket);
        }
    });
    let p = build(Some(&format!("http://{addr}")), &secret(&[]), None).unwrap();
    let started = Instant::now();
    let err = p.run_query("ns/m").await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, ProviderError::Request { .. }), "{err}");
    assert!(
        // Bounded by the 5 s timeout (the server holds the connection forever).
        took >= Duration::from_millis(4900) && took < Duration::from_secs(20),
        "{took:?}"
    );
    held.abort();
}

/// Without `address`, the operator's client talks to the real API server, which does not serve the
/// external metrics API here: a typed 404, and not online.
#[tokio::test]
async fn through_the_operators_client_on_the_real_cluster() {
    let client = testkit::kube::client().await.unwrap();
    let p = build(None, &secret(&[]), Some(&client)).unwrap();
    let err = p.run_query("kube-system/some-metric").await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Status {
                provider: "externalmetrics",
                status: 404,
                ..
            }
        ),
        "{err}"
    );
    let err = p.is_online().await.unwrap_err();
    assert!(matches!(err, ProviderError::NotOnline { .. }), "{err}");

    // Dispatch by type builds the same provider.
    let spec = provider("externalmetrics", None, false);
    let empty = BTreeMap::new();
    let any = AnyProvider::new(&ProviderInit {
        provider: &spec,
        credentials: &empty,
        interval: Duration::from_secs(60),
        kube: Some(&client),
    })
    .unwrap();
    assert_eq!(any.kind(), "externalmetrics");
}

#[test]
fn without_address_the_operators_client_is_required() {
    let err = build(None, &secret(&[]), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not initialize ExternalMetricsProvider: rest config is nil"
    );
    let err = build(Some("not a url"), &secret(&[]), None).unwrap_err();
    assert!(matches!(
        err,
        ProviderError::InvalidAddress {
            provider: "externalmetrics",
            ..
        }
    ));
}

/// An HTTPS external metrics server with a self-signed certificate, answering every request with one item.
async fn self_signed_server() -> String {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = list(&["42"]);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    format!("https://{address}")
}

#[tokio::test]
async fn insecure_skip_verify_accepts_a_self_signed_certificate() {
    let address = self_signed_server().await;
    let empty = BTreeMap::new();
    let build_with = |insecure: Option<bool>| {
        let mut spec = provider("externalmetrics", Some(&address), false);
        spec.insecure_skip_verify = insecure;
        ExternalMetricsProvider::new(&ProviderInit {
            provider: &spec,
            credentials: &empty,
            interval: Duration::from_secs(60),
            kube: None,
        })
        .unwrap()
    };

    let verifying = build_with(None);
    let err = verifying.run_query("ns/m").await.unwrap_err();
    assert!(matches!(err, ProviderError::Request { .. }), "{err}");

    let insecure = build_with(Some(true));
    assert_eq!(insecure.run_query("ns/m").await.unwrap(), 42.0);
    insecure.is_online().await.unwrap();
}
