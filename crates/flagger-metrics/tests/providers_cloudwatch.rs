//! The CloudWatch provider: SigV4 against AWS's published test-suite vectors, and `GetMetricData` against a
//! local server that checks the exact request (target, content type, signature, time window, body).
#![allow(clippy::unwrap_used)]

mod provider_server;

use std::collections::BTreeMap;
use std::time::Duration;

use flagger_metrics::provider::NoDataReason;
use flagger_metrics::providers::cloudwatch::{
    AwsCredentials, CloudWatchProvider, SigV4Request, TARGET, sigv4_sign,
};
use flagger_metrics::{MetricProvider, ProviderError, ProviderInit};
use provider_server::{Seen, Server, now, provider};

/// The credentials of the SigV4 test suite.
fn suite_credentials() -> AwsCredentials {
    AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: None,
    }
}

/// `get-vanilla` and `post-vanilla` of AWS's Signature Version 4 test suite: `GET /` (or `POST /`) to
/// `example.amazonaws.com` at 20150830T123600Z, region us-east-1, service `service`, empty body.
#[test]
fn sigv4_test_suite_vanilla_vectors() {
    let headers = [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
    ];
    let request = |method| SigV4Request {
        method,
        path: "/",
        query: "",
        headers: &headers,
        payload: b"",
        amz_date: "20150830T123600Z",
        region: "us-east-1",
        service: "service",
    };
    let get = sigv4_sign(&request("GET"), &suite_credentials());
    assert_eq!(
        get.canonical_request,
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        get.string_to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
         bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
    assert_eq!(
        get.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
    let post = sigv4_sign(&request("POST"), &suite_credentials());
    assert_eq!(
        post.signature,
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    );
}

/// `get-vanilla-query-order-key-case`: parameters are sorted in the canonical query.
#[test]
fn sigv4_test_suite_query_order() {
    let headers = [
        ("host", "example.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
    ];
    let signed = sigv4_sign(
        &SigV4Request {
            method: "GET",
            path: "/",
            query: "Param2=value2&Param1=value1",
            headers: &headers,
            payload: b"",
            amz_date: "20150830T123600Z",
            region: "us-east-1",
            service: "service",
        },
        &suite_credentials(),
    );
    assert_eq!(
        signed.signature,
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    );
}

const QUERY: &str = r#"[
    {"Id": "e1", "Expression": "m1 / m2", "Label": "ErrorRate"},
    {"id": "m1", "MetricStat": {"Metric": {"Namespace": "MyKubernetesCluster", "MetricName": "ErrorCount",
        "Dimensions": [{"Name": "appName", "Value": "podinfo.test"}]}, "Period": 60, "Stat": "Sum",
        "Unit": "Count"}, "ReturnData": false, "comment": "ignored"}
]"#;

fn credentials(token: Option<&str>) -> AwsCredentials {
    AwsCredentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "secret/KEY+test".into(),
        session_token: token.map(str::to_owned),
    }
}

fn cloudwatch(
    address: &str,
    region: Option<&str>,
    creds: Option<AwsCredentials>,
) -> Result<CloudWatchProvider, ProviderError> {
    let mut spec = provider("cloudwatch", Some(address), false);
    spec.region = region.map(str::to_owned);
    let empty = BTreeMap::new();
    CloudWatchProvider::with_credentials(
        &ProviderInit {
            provider: &spec,
            credentials: &empty,
            interval: Duration::from_secs(60),
            kube: None,
        },
        creds,
    )
}

/// Recomputes the signature of a received request from its headers and body, as AWS does.
fn verify_signature(seen: &Seen, host: &str, creds: &AwsCredentials) {
    let authorization = seen.one_header("authorization");
    let signed_names = authorization
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let headers: Vec<(&str, &str)> = signed_names
        .split(';')
        .map(|name| {
            (
                name,
                if name == "host" {
                    host
                } else {
                    seen.one_header(name)
                },
            )
        })
        .collect();
    let expected = sigv4_sign(
        &SigV4Request {
            method: &seen.method,
            path: &seen.path,
            query: &seen.query,
            headers: &headers,
            payload: &seen.body,
            amz_date: seen.one_header("x-amz-date"),
            region: "eu-west-1",
            service: "monitoring",
        },
        creds,
    );
    assert_eq!(authorization, expected.authorization);
}

#[tokio::test]
async fn get_metric_data_request_is_exact_and_signed() {
    let (server, addr) = Server::start().await;
    server.reply(
        "/",
        200,
        r#"{"MetricDataResults":[{"Id":"e1","Label":"ErrorRate","Timestamps":[1700000000],"Values":[0.25,0.5],"StatusCode":"Complete"}],"Messages":[]}"#,
    );
    let creds = credentials(Some("session-token"));
    let p = cloudwatch(&addr, Some("eu-west-1"), Some(creds.clone())).unwrap();
    assert_eq!(p.kind(), "cloudwatch");
    assert_eq!(p.run_query(QUERY).await.unwrap(), 0.25);

    let seen = server.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/");
    assert_eq!(seen.query, "");
    assert_eq!(seen.one_header("content-type"), "application/x-amz-json-1.0");
    assert_eq!(seen.one_header("x-amz-target"), TARGET);
    assert_eq!(
        seen.one_header("x-amz-target"),
        "GraniteServiceVersion20100801.GetMetricData"
    );
    assert_eq!(seen.one_header("x-amz-security-token"), "session-token");
    let amz_date = seen.one_header("x-amz-date");
    let sent_at = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", amz_date)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second();
    assert!((now() - sent_at).abs() <= 5, "x-amz-date {amz_date}");
    let authorization = seen.one_header("authorization");
    assert!(
        authorization.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/{}/eu-west-1/monitoring/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=",
            &amz_date[..8]
        )),
        "{authorization}"
    );
    verify_signature(&seen, addr.trim_start_matches("http://"), &creds);

    let body = seen.json();
    let end = body["EndTime"].as_i64().unwrap();
    assert!((now() - end).abs() <= 5, "EndTime {end}");
    assert_eq!(
        body["StartTime"].as_i64().unwrap(),
        end - 600,
        "10 × the 1m interval"
    );
    assert_eq!(body["MaxDatapoints"], 20);
    // Go's case-insensitive field names become the API's; unknown fields are dropped.
    assert_eq!(
        body["MetricDataQueries"],
        serde_json::json!([
            {"Id": "e1", "Expression": "m1 / m2", "Label": "ErrorRate"},
            {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "MyKubernetesCluster", "MetricName": "ErrorCount",
                "Dimensions": [{"Name": "appName", "Value": "podinfo.test"}]}, "Period": 60, "Stat": "Sum",
                "Unit": "Count"}, "ReturnData": false}
        ])
    );
    assert_eq!(body.as_object().unwrap().len(), 4);
}

#[tokio::test]
async fn without_a_session_token_it_is_not_signed() {
    let (server, addr) = Server::start().await;
    server.reply("/", 200, r#"{"MetricDataResults":[{"Values":[3]}]}"#);
    let creds = credentials(None);
    let p = cloudwatch(&addr, Some("eu-west-1"), Some(creds.clone())).unwrap();
    assert_eq!(p.run_query(QUERY).await.unwrap(), 3.0);
    let seen = server.last();
    assert!(seen.header("x-amz-security-token").is_empty());
    assert!(
        seen.one_header("authorization")
            .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target, ")
    );
    verify_signature(&seen, addr.trim_start_matches("http://"), &creds);
}

#[tokio::test]
async fn results_no_data_errors_and_malformed_answers() {
    let (server, addr) = Server::start().await;
    let p = cloudwatch(&addr, Some("eu-west-1"), Some(credentials(None))).unwrap();

    for body in [
        r#"{"MetricDataResults":[]}"#,
        r#"{"MetricDataResults":[{"Id":"e1","Values":[]}]}"#,
        r#"{"MetricDataResults":[{"Id":"e1"}]}"#,
        r#"{"Messages":[]}"#,
    ] {
        server.reply("/", 200, body);
        match p.run_query(QUERY).await.unwrap_err() {
            ProviderError::NoValues {
                provider: "cloudwatch",
                reason: NoDataReason::Empty,
            } => {}
            other => panic!("{body}: {other}"),
        }
    }
    server.reply("/", 200, r#"{"MetricDataResults":[{"Values":["NaN"]}]}"#);
    assert!(matches!(
        p.run_query(QUERY).await.unwrap_err(),
        ProviderError::NoValues {
            reason: NoDataReason::NaN,
            ..
        }
    ));
    server.reply("/", 200, r#"{"MetricDataResults":[{"Values":["Infinity"]}]}"#);
    assert_eq!(p.run_query(QUERY).await.unwrap(), f64::INFINITY);

    for body in [
        "not json",
        r#"{"MetricDataResults":{}}"#,
        r#"{"MetricDataResults":[{"Values":[true]}]}"#,
    ] {
        server.reply("/", 200, body);
        let err = p.run_query(QUERY).await.unwrap_err();
        assert!(
            matches!(
                err,
                ProviderError::Parse {
                    provider: "cloudwatch",
                    ..
                }
            ),
            "{body}: {err}"
        );
    }

    let denied =
        r#"{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"User is not authorized"}"#;
    server.reply("/", 403, denied);
    let err = p.run_query(QUERY).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cloudwatch: error response: Status 403 Forbidden: {denied}")
    );

    // A query that is not a MetricDataQuery array is an error before anything is sent.
    server.clear();
    let err = p.run_query(r#"{"Id":"e1"}"#).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cloudwatch: error unmarshaling query: "),
        "{err}"
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn server_errors_are_retried_three_times() {
    let (server, addr) = Server::start().await;
    let p = cloudwatch(&addr, Some("eu-west-1"), Some(credentials(None))).unwrap();
    server.replies_in_order(
        "/",
        &[
            (500, "boom"),
            (503, "busy"),
            (200, r#"{"MetricDataResults":[{"Values":[7]}]}"#),
        ],
    );
    assert_eq!(p.run_query(QUERY).await.unwrap(), 7.0);
    assert_eq!(server.seen().len(), 3);

    server.clear();
    server.reply("/", 503, "busy");
    let err = p.run_query(QUERY).await.unwrap_err();
    assert!(matches!(err, ProviderError::Status { status: 503, .. }), "{err}");
    assert_eq!(server.seen().len(), 4, "one attempt and three retries");

    // A client error is not retried.
    server.clear();
    server.reply("/", 400, "{}");
    assert!(p.run_query(QUERY).await.is_err());
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn is_online_sends_an_empty_request_and_accepts_400() {
    let (server, addr) = Server::start().await;
    let p = cloudwatch(&addr, Some("eu-west-1"), Some(credentials(None))).unwrap();
    server.reply(
        "/",
        400,
        r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"1 validation error detected"}"#,
    );
    p.is_online().await.unwrap();
    let seen = server.last();
    assert_eq!(seen.one_header("x-amz-target"), TARGET);
    assert_eq!(
        seen.json(),
        serde_json::json!({"MetricDataQueries": [], "StartTime": -62_135_596_800_i64, "EndTime": -62_135_596_800_i64})
    );

    server.reply("/", 200, r#"{"MetricDataResults":[]}"#);
    p.is_online().await.unwrap();

    server.reply("/", 403, r#"{"__type":"AccessDeniedException"}"#);
    let err = p.is_online().await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::NotOnline {
                provider: "cloudwatch",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("unexpected status code: 403"), "{err}");

    // Nothing listening: an error, not online.
    let closed = cloudwatch("http://127.0.0.1:1", Some("eu-west-1"), Some(credentials(None))).unwrap();
    assert!(matches!(
        closed.is_online().await.unwrap_err(),
        ProviderError::Request { .. }
    ));
}

#[test]
fn region_and_credentials_are_required() {
    let err = cloudwatch("http://127.0.0.1:1", None, Some(credentials(None))).unwrap_err();
    assert_eq!(err.to_string(), "cloudwatch: region not specified");
    let err = cloudwatch("http://127.0.0.1:1", Some(""), Some(credentials(None))).unwrap_err();
    assert_eq!(err.to_string(), "cloudwatch: region not specified");
    let err = cloudwatch("http://127.0.0.1:1", Some("eu-west-1"), None).unwrap_err();
    assert!(matches!(
        err,
        ProviderError::Config {
            provider: "cloudwatch",
            ..
        }
    ));
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    let err = cloudwatch("ftp://x", Some("eu-west-1"), Some(credentials(None))).unwrap_err();
    assert!(matches!(
        err,
        ProviderError::InvalidAddress {
            provider: "cloudwatch",
            ..
        }
    ));
}

#[test]
fn the_default_endpoint_is_regional() {
    let spec = {
        let mut p = provider("cloudwatch", None, false);
        p.region = Some("us-east-2".into());
        p
    };
    let empty = BTreeMap::new();
    let p = CloudWatchProvider::with_credentials(
        &ProviderInit {
            provider: &spec,
            credentials: &empty,
            interval: Duration::from_secs(30),
            kube: None,
        },
        Some(credentials(None)),
    )
    .unwrap();
    assert_eq!(
        p.endpoint().as_str(),
        "https://monitoring.us-east-2.amazonaws.com/"
    );
}
