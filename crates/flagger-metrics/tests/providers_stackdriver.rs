//! The Stackdriver provider against a local server that plays both Google's token endpoint (or the GCE
//! metadata server) and Cloud Monitoring's `timeSeries:query`: the token exchange's signed JWT, the exact
//! query request, result parsing, credential errors and `is_online`.
#![allow(clippy::unwrap_used)]

mod provider_server;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::signature::{self, KeyPair};
use flagger_metrics::provider::NoDataReason;
use flagger_metrics::providers::stackdriver::{JWT_BEARER_GRANT, SCOPES, StackdriverProvider};
use flagger_metrics::{AnyProvider, MetricProvider, ProviderError, ProviderInit};
use provider_server::{Server, now, provider, secret};

const QUERY_PATH: &str = "/v3/projects/my-project/timeSeries:query";
const METADATA_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const MQL: &str = "fetch k8s_container | metric 'istio.io/service/server/request_count' | within 1m";

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

fn base64url_decode(input: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in input.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {input}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

/// A fresh RSA key: (service account key JSON, public key DER).
fn service_account_key(token_uri: &str) -> (String, Vec<u8>) {
    let key = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: Pkcs8V1Der<'_> = key.as_der().unwrap();
    let b64 = base64(der.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": "flagger@my-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    });
    (json.to_string(), key.public_key().as_ref().to_vec())
}

fn init<'a>(
    spec: &'a flagger_api::MetricTemplateProvider,
    credentials: &'a BTreeMap<String, Vec<u8>>,
) -> ProviderInit<'a> {
    ProviderInit {
        provider: spec,
        credentials,
        interval: Duration::from_secs(60),
        kube: None,
    }
}

fn series(value: &str) -> String {
    format!(
        r#"{{"timeSeriesDescriptor":{{"pointDescriptors":[{{"key":"value.request_count","valueType":"DOUBLE"}}]}},
            "timeSeriesData":[{{"labelValues":[{{"stringValue":"podinfo"}}],
              "pointData":[{{"values":[{value}],"timeInterval":{{"startTime":"2024-01-01T00:00:00Z","endTime":"2024-01-01T00:01:00Z"}}}},
                           {{"values":[{{"doubleValue":99}}]}}]}},
              {{"pointData":[{{"values":[{{"doubleValue":98}}]}}]}}]}}"#
    )
}

#[tokio::test]
async fn service_account_key_token_exchange_and_the_exact_query() {
    let (server, addr) = Server::start().await;
    let token_uri = format!("{addr}/token");
    let (key, public_key) = service_account_key(&token_uri);
    server.reply(
        "/token",
        200,
        r#"{"access_token":"ya29.test-token","expires_in":3599,"token_type":"Bearer"}"#,
    );
    server.reply(QUERY_PATH, 200, &series(r#"{"doubleValue":0.75}"#));
    let spec = provider("stackdriver", Some(&addr), true);
    let creds = secret(&[("project", "my-project"), ("serviceAccountKey", &key)]);
    let p = StackdriverProvider::new(&init(&spec, &creds)).unwrap();
    assert_eq!(p.kind(), "stackdriver");
    assert_eq!(p.query_url().as_str(), format!("{addr}{QUERY_PATH}"));

    assert_eq!(p.run_query(MQL).await.unwrap(), 0.75);

    // The token exchange: a JWT-bearer grant whose assertion is an RS256 JWT signed with the key.
    let token_requests = server.seen_at("/token");
    assert_eq!(token_requests.len(), 1);
    let exchange = &token_requests[0];
    assert_eq!(exchange.method, "POST");
    assert_eq!(
        exchange.one_header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&exchange.body).into_owned().collect();
    assert_eq!(form.len(), 2);
    assert_eq!(form["grant_type"], JWT_BEARER_GRANT);
    assert_eq!(form["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let parts: Vec<&str> = form["assertion"].split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: serde_json::Value = serde_json::from_slice(&base64url_decode(parts[0])).unwrap();
    assert_eq!(
        header,
        serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "key-1"})
    );
    let claims: serde_json::Value = serde_json::from_slice(&base64url_decode(parts[1])).unwrap();
    assert_eq!(claims["iss"], "flagger@my-project.iam.gserviceaccount.com");
    assert_eq!(claims["aud"], token_uri);
    assert_eq!(claims["scope"], SCOPES);
    assert!(
        claims["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "https://www.googleapis.com/auth/monitoring.read")
    );
    let iat = claims["iat"].as_i64().unwrap();
    assert!((now() - iat).abs() <= 5, "iat {iat}");
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 3600);
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public_key)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &base64url_decode(parts[2]),
        )
        .expect("the JWT is signed with the service account's key");

    // The query.
    let query = server.last();
    assert_eq!(query.method, "POST");
    assert_eq!(query.path, QUERY_PATH);
    assert_eq!(query.query, "");
    assert_eq!(query.one_header("authorization"), "Bearer ya29.test-token");
    assert_eq!(query.one_header("content-type"), "application/json");
    assert_eq!(query.json(), serde_json::json!({ "query": MQL }));

    // The token is reused until it expires.
    assert_eq!(p.run_query(MQL).await.unwrap(), 0.75);
    assert_eq!(server.seen_at("/token").len(), 1);
    assert_eq!(server.seen_at(QUERY_PATH).len(), 2);
}

#[tokio::test]
async fn without_a_key_the_metadata_server_token_is_used() {
    let (server, addr) = Server::start().await;
    server.reply(
        METADATA_PATH,
        200,
        r#"{"access_token":"metadata-token","expires_in":100,"token_type":"Bearer"}"#,
    );
    server.reply(QUERY_PATH, 200, &series(r#"{"doubleValue":5}"#));
    let spec = provider("stackdriver", Some(&addr), true);
    let creds = secret(&[("project", "my-project")]);
    let host = addr.trim_start_matches("http://");
    let p = StackdriverProvider::with_metadata_host(&init(&spec, &creds), host).unwrap();
    assert_eq!(p.run_query(MQL).await.unwrap(), 5.0);
    let token = &server.seen_at(METADATA_PATH)[0];
    assert_eq!(token.method, "GET");
    assert_eq!(token.one_header("metadata-flavor"), "Google");
    assert_eq!(server.last().one_header("authorization"), "Bearer metadata-token");
}

#[tokio::test]
async fn results_follow_flaggers_rules() {
    let (server, addr) = Server::start().await;
    server.reply(METADATA_PATH, 200, r#"{"access_token":"t","expires_in":3600}"#);
    let spec = provider("stackdriver", Some(&addr), true);
    let creds = secret(&[("project", "my-project")]);
    let p = StackdriverProvider::with_metadata_host(&init(&spec, &creds), addr.trim_start_matches("http://"))
        .unwrap();

    // No series, no points, no values: no data.
    for body in [
        "{}",
        r#"{"timeSeriesDescriptor":{},"timeSeriesData":[]}"#,
        r#"{"timeSeriesData":[{"pointData":[]}]}"#,
        r#"{"timeSeriesData":[{"labelValues":[]}]}"#,
        r#"{"timeSeriesData":[{"pointData":[{"values":[]}]}]}"#,
    ] {
        server.reply(QUERY_PATH, 200, body);
        match p.run_query(MQL).await.unwrap_err() {
            ProviderError::NoValues {
                provider: "stackdriver",
                reason: NoDataReason::Empty,
            } => {}
            other => panic!("{body}: {other}"),
        }
    }
    server.reply(QUERY_PATH, 200, &series(r#"{"doubleValue":"NaN"}"#));
    assert!(matches!(
        p.run_query(MQL).await.unwrap_err(),
        ProviderError::NoValues {
            reason: NoDataReason::NaN,
            ..
        }
    ));
    // A value that is not a double reads as 0, as Go's GetDoubleValue does.
    server.reply(QUERY_PATH, 200, &series(r#"{"int64Value":"42"}"#));
    assert_eq!(p.run_query(MQL).await.unwrap(), 0.0);
    server.reply(QUERY_PATH, 200, &series(r#"{"doubleValue":-1.5e-3}"#));
    assert_eq!(p.run_query(MQL).await.unwrap(), -0.0015);

    // An empty first page with a next page token: the next page is read.
    server.clear();
    server.replies_in_order(
        QUERY_PATH,
        &[
            (200, r#"{"timeSeriesData":[],"nextPageToken":"page-2"}"#),
            (200, &series(r#"{"doubleValue":12}"#)),
        ],
    );
    assert_eq!(p.run_query(MQL).await.unwrap(), 12.0);
    let pages = server.seen_at(QUERY_PATH);
    assert_eq!(pages.len(), 2);
    assert_eq!(
        pages[1].json(),
        serde_json::json!({"query": MQL, "pageToken": "page-2"})
    );

    // Malformed answers.
    for body in [
        "<html>",
        "[]",
        r#"{"timeSeriesData":{}}"#,
        r#"{"timeSeriesData":[{"pointData":[{"values":[{"doubleValue":true}]}]}]}"#,
    ] {
        server.reply(QUERY_PATH, 200, body);
        let err = p.run_query(MQL).await.unwrap_err();
        assert!(
            matches!(
                err,
                ProviderError::Parse {
                    provider: "stackdriver",
                    ..
                }
            ),
            "{body}: {err}"
        );
    }

    // An API error keeps Google's status body.
    let invalid = r#"{"error":{"code":400,"message":"Line 1, column 1: Unknown table 'x'","status":"INVALID_ARGUMENT"}}"#;
    server.reply(QUERY_PATH, 400, invalid);
    assert_eq!(
        p.run_query(MQL).await.unwrap_err().to_string(),
        format!("stackdriver: error response: Status 400 Bad Request: {invalid}")
    );
}

#[tokio::test]
async fn is_online_runs_the_empty_query() {
    let (server, addr) = Server::start().await;
    server.reply(METADATA_PATH, 200, r#"{"access_token":"t","expires_in":3600}"#);
    let spec = provider("stackdriver", Some(&addr), true);
    let creds = secret(&[("project", "my-project")]);
    let p = StackdriverProvider::with_metadata_host(&init(&spec, &creds), addr.trim_start_matches("http://"))
        .unwrap();

    server.reply(
        QUERY_PATH,
        400,
        r#"{"error":{"code":400,"message":"Query is empty","status":"INVALID_ARGUMENT"}}"#,
    );
    p.is_online().await.unwrap();
    assert_eq!(server.last().json(), serde_json::json!({"query": ""}));
    server.reply(QUERY_PATH, 200, "{}");
    p.is_online().await.unwrap();

    server.reply(
        QUERY_PATH,
        403,
        r#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#,
    );
    let err = p.is_online().await.unwrap_err();
    assert!(matches!(
        err,
        ProviderError::NotOnline {
            provider: "stackdriver",
            ..
        }
    ));
    assert!(
        err.to_string()
            .contains("unexpected status code: PERMISSION_DENIED"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_token_exchange_is_an_error_naming_the_token_endpoint() {
    let (server, addr) = Server::start().await;
    let token_uri = format!("{addr}/token");
    let (key, _) = service_account_key(&token_uri);
    server.reply(
        "/token",
        400,
        r#"{"error":"invalid_grant","error_description":"Invalid JWT"}"#,
    );
    let spec = provider("stackdriver", Some(&addr), true);
    let creds = secret(&[("project", "my-project"), ("serviceAccountKey", &key)]);
    let p = StackdriverProvider::new(&init(&spec, &creds)).unwrap();
    let err = p.run_query(MQL).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Request {
                provider: "stackdriver",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&token_uri), "{err}");
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    assert!(server.seen_at(QUERY_PATH).is_empty());

    server.reply("/token", 200, "not json");
    assert!(
        p.run_query(MQL)
            .await
            .unwrap_err()
            .to_string()
            .contains("cannot read the access token response")
    );
}

#[test]
fn credential_errors() {
    let spec = provider("stackdriver", None, true);
    let err = StackdriverProvider::new(&init(&spec, &secret(&[("serviceAccountKey", "{}")]))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stackdriver credentials does not contain a project id"
    );
    assert!(matches!(
        err,
        ProviderError::Config {
            provider: "stackdriver",
            ..
        }
    ));

    // Through the dispatch by type too.
    let creds = secret(&[]);
    let err = AnyProvider::new(&init(&spec, &creds)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stackdriver credentials does not contain a project id"
    );

    let no_secret = provider("stackdriver", None, false);
    let err =
        StackdriverProvider::with_metadata_host(&init(&no_secret, &secret(&[])), "127.0.0.1:1").unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Config {
                provider: "stackdriver",
                ..
            }
        ),
        "{err}"
    );

    for (key, expected) in [
        ("not json", "the service account key is not valid"),
        (
            r#"{"type":"authorized_user","private_key":"x","client_email":"e"}"#,
            "are not supported",
        ),
        (
            r#"{"type":"service_account","private_key":"garbage","client_email":"e"}"#,
            "private_key is not a PEM key",
        ),
        (
            r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nZm9v\n-----END PRIVATE KEY-----","client_email":"e"}"#,
            "private_key is not an RSA key",
        ),
    ] {
        let creds = secret(&[("project", "p"), ("serviceAccountKey", key)]);
        let err = StackdriverProvider::new(&init(&spec, &creds)).unwrap_err();
        assert!(err.to_string().contains(expected), "{key}: {err}");
    }
}
