//! `insecureSkipVerify` against a local HTTPS server with a self-signed certificate.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use flagger_metrics::{MetricProvider, PrometheusConfig, PrometheusProvider, ProviderError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTPS server answering every request with a one-element vector of value 1.
async fn tls_prometheus() -> String {
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
            let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}"#;
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
async fn insecure_skip_verify_accepts_a_self_signed_certificate_and_verification_rejects_it() {
    let address = tls_prometheus().await;

    let insecure = PrometheusProvider::new(PrometheusConfig {
        insecure_skip_verify: true,
        ..PrometheusConfig::new(&address)
    })
    .unwrap();
    assert_eq!(insecure.run_query("up").await.unwrap(), 1.0);
    insecure.is_online().await.unwrap();

    let verifying = PrometheusProvider::new(PrometheusConfig::new(&address)).unwrap();
    let err = verifying.run_query("up").await.unwrap_err();
    assert!(matches!(err, ProviderError::Request { .. }), "{err:?}");
    let text = err.to_string().to_lowercase();
    assert!(text.contains("certificate"), "{text}");
}
