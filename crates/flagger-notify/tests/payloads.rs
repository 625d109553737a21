//! The exact JSON each provider type posts, the headers, the token and the proxy, against local
//! receivers on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use flagger_api::AlertProviderSpec;
use flagger_core::provider::AlertProviderType;
use flagger_notify::routing::provider_config;
use flagger_notify::{Alert, AlertEvent, AnyNotifier, Notifier, NotifierConfig, NotifyError};
use k8s_openapi::ByteString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{RecordingProxy, canary};

/// Three alerts: a new revision with metadata and the cluster name (info), a gate (warn, no fields), and
/// a rollback (error).
fn alerts() -> [Alert; 3] {
    let canary = canary(json!({
        "interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
        "alerts": [{"name": "on-call", "severity": "info", "providerRef": {"name": "slack"}}]
    }));
    [
        Alert::for_event(&canary, &AlertEvent::NewRevision, "prod-eu"),
        Alert::for_event(&canary, &AlertEvent::WaitingForApproval, ""),
        Alert::for_event(
            &canary,
            &AlertEvent::FailedChecksThreshold { failed_checks: 5 },
            "",
        ),
    ]
}

const METADATA: [(&str, &str); 5] = [
    ("Cluster", "prod-eu"),
    ("Target", "Deployment/podinfo-app.test"),
    ("Failed checks threshold", "5"),
    ("Progress deadline", "60s"),
    ("Traffic routing", "Weight step: 10 max: 50"),
];
const NEW_REVISION: &str = "New revision detected, progressing canary analysis.";
const WAITING: &str = "Canary is waiting for approval.";
const FAILED: &str = "Failed checks threshold reached 5";

fn config(provider: AlertProviderType, address: String) -> NotifierConfig {
    NotifierConfig {
        provider,
        address,
        token: None,
        proxy: None,
        username: "flagger".to_owned(),
        channel: "general".to_owned(),
    }
}

async fn receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// Posts the three alerts with `config` and returns the bodies received (each request's content type
/// checked) and the requests.
async fn post_all(server: &MockServer, config: &NotifierConfig) -> (Vec<Value>, Vec<wiremock::Request>) {
    let notifier = AnyNotifier::new(config).unwrap();
    for alert in alerts() {
        notifier.post(&alert).await.unwrap();
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let bodies = requests
        .iter()
        .map(|r| {
            assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect();
    (bodies, requests)
}

fn slack_format(color: &str, text: &str, fields: &[(&str, &str)], channel: &str) -> Value {
    json!({
        "channel": channel,
        "username": "flagger",
        "icon_url": "",
        "icon_emoji": ":rocket:",
        "attachments": [{
            "color": color,
            "author_name": "podinfo.test",
            "text": text,
            "mrkdwn_in": ["text"],
            "fields": fields.iter().map(|(n, v)| json!({"title": n, "value": v, "short": false})).collect::<Vec<_>>(),
        }]
    })
}

#[tokio::test]
async fn slack_payloads_are_flaggers() {
    let server = receiver().await;
    let (bodies, requests) = post_all(
        &server,
        &config(
            AlertProviderType::Slack,
            format!("{}/services/T/B/X", server.uri()),
        ),
    )
    .await;
    assert!(requests.iter().all(|r| r.url.path() == "/services/T/B/X"));
    assert_eq!(
        bodies[0],
        slack_format("good", NEW_REVISION, &METADATA, "general")
    );
    assert_eq!(bodies[1], slack_format("good", WAITING, &[], "general"));
    assert_eq!(bodies[2], slack_format("danger", FAILED, &[], "general"));
    // No token configured: no Authorization header.
    assert!(requests.iter().all(|r| r.headers.get("authorization").is_none()));
}

#[tokio::test]
async fn discord_payloads_are_slacks_posted_to_the_slack_path() {
    let server = receiver().await;
    let (bodies, requests) = post_all(
        &server,
        &config(
            AlertProviderType::Discord,
            format!("{}/api/webhooks/1/abc", server.uri()),
        ),
    )
    .await;
    assert!(
        requests
            .iter()
            .all(|r| r.url.path() == "/api/webhooks/1/abc/slack")
    );
    assert_eq!(
        bodies[0],
        slack_format("good", NEW_REVISION, &METADATA, "general")
    );
    assert_eq!(bodies[1], slack_format("good", WAITING, &[], "general"));
    assert_eq!(bodies[2], slack_format("danger", FAILED, &[], "general"));
}

#[tokio::test]
async fn rocket_payloads_use_rocket_colours() {
    let server = receiver().await;
    let mut config = config(AlertProviderType::Rocket, format!("{}/hooks/abc", server.uri()));
    config.channel = "releases".to_owned();
    let (bodies, requests) = post_all(&server, &config).await;
    assert!(requests.iter().all(|r| r.url.path() == "/hooks/abc"));
    assert_eq!(
        bodies[0],
        slack_format("#0076D7", NEW_REVISION, &METADATA, "releases")
    );
    assert_eq!(bodies[1], slack_format("#0076D7", WAITING, &[], "releases"));
    assert_eq!(bodies[2], slack_format("#FF0000", FAILED, &[], "releases"));
}

fn teams_card(color: &str, text: &str, fields: &[(&str, &str)]) -> Value {
    json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": color,
        "summary": "podinfo.test",
        "sections": [{
            "activityTitle": text,
            "activitySubtitle": "podinfo.test",
            "facts": fields.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        }]
    })
}

#[tokio::test]
async fn msteams_payloads_are_message_cards() {
    let server = receiver().await;
    let (bodies, _) = post_all(
        &server,
        &config(
            AlertProviderType::Msteams,
            format!("{}/webhookb2/x", server.uri()),
        ),
    )
    .await;
    assert_eq!(bodies[0], teams_card("0076D7", NEW_REVISION, &METADATA));
    assert_eq!(bodies[1], teams_card("0076D7", WAITING, &[]));
    assert_eq!(bodies[2], teams_card("FF0000", FAILED, &[]));
}

fn gchat_card(text: &str, fields: &[(&str, &str)]) -> Value {
    let paragraph = |t: String| json!({"widgets": [{"textParagraph": {"text": t}}]});
    let mut sections = vec![paragraph(format!(
        "<font color=#848484><strong>{text}</strong></font>"
    ))];
    sections.extend(
        fields
            .iter()
            .map(|(n, v)| paragraph(format!("{n}<br><font color=#848484><strong>{v}</strong></font>"))),
    );
    json!({
        "cards": [{
            "header": {"title": "Flagger", "subtitle": "podinfo.test", "imageUrl": "https://flagger.app/favicon.png"},
            "sections": sections,
        }]
    })
}

#[tokio::test]
async fn gchat_payloads_are_cards() {
    let server = receiver().await;
    let (bodies, _) = post_all(
        &server,
        &config(
            AlertProviderType::Gchat,
            format!("{}/v1/spaces/x/messages", server.uri()),
        ),
    )
    .await;
    assert_eq!(bodies[0], gchat_card(NEW_REVISION, &METADATA));
    assert_eq!(bodies[1], gchat_card(WAITING, &[]));
    assert_eq!(bodies[2], gchat_card(FAILED, &[]));
}

#[tokio::test]
async fn payload_matches_what_is_posted() {
    let server = receiver().await;
    let notifier =
        AnyNotifier::new(&config(AlertProviderType::Gchat, format!("{}/x", server.uri()))).unwrap();
    let [alert, _, _] = alerts();
    notifier.post(&alert).await.unwrap();
    let body: Value = serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(notifier.payload(&alert), body);
}

fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

fn spec(value: Value) -> AlertProviderSpec {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn slack_sends_the_secret_token_as_bearer() {
    let server = receiver().await;
    let spec = spec(json!({"type": "slack", "channel": "releases", "secretRef": {"name": "slack-url"}}));
    let data = secret(&[
        ("address", &format!("{}/api/chat.postMessage", server.uri())),
        ("token", "xoxb-123"),
    ]);
    let config = provider_config(&spec, Some(&data)).unwrap();
    let notifier = AnyNotifier::new(&config).unwrap();
    let [_, _, alert] = alerts();
    notifier.post(&alert).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), "/api/chat.postMessage");
    assert_eq!(
        requests[0].headers.get("authorization").unwrap(),
        "Bearer xoxb-123"
    );
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body, slack_format("danger", FAILED, &[], "releases"));
}

#[tokio::test]
async fn only_slack_sends_the_token() {
    for provider in [
        AlertProviderType::Msteams,
        AlertProviderType::Discord,
        AlertProviderType::Rocket,
        AlertProviderType::Gchat,
    ] {
        let server = receiver().await;
        let mut config = config(provider, format!("{}/hook", server.uri()));
        config.token = Some("secret-token".to_owned());
        let notifier = AnyNotifier::new(&config).unwrap();
        notifier.post(&alerts()[1]).await.unwrap();
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1, "{provider}");
        assert!(requests[0].headers.get("authorization").is_none(), "{provider}");
    }
}

#[tokio::test]
async fn every_type_posts_through_its_proxy() {
    let proxy = RecordingProxy::start().await;
    // The target is a closed loopback port: only the proxy can answer.
    let target = "http://127.0.0.1:9/hook";
    for provider in AlertProviderType::ALL {
        let mut config = config(*provider, target.to_owned());
        config.proxy = Some(proxy.url.clone());
        config.token = Some("xoxb-proxy".to_owned());
        AnyNotifier::new(&config)
            .unwrap()
            .post(&alerts()[0])
            .await
            .unwrap();
    }
    let recorded = proxy.recorded();
    assert_eq!(recorded.len(), 5);
    let lines: Vec<&str> = recorded.iter().map(|r| r.request_line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "POST http://127.0.0.1:9/hook HTTP/1.1",
            "POST http://127.0.0.1:9/hook HTTP/1.1",
            "POST http://127.0.0.1:9/hook/slack HTTP/1.1",
            "POST http://127.0.0.1:9/hook HTTP/1.1",
            "POST http://127.0.0.1:9/hook HTTP/1.1",
        ]
    );
    assert_eq!(recorded[0].header("authorization"), Some("Bearer xoxb-proxy"));
    assert_eq!(
        recorded[0].json(),
        slack_format("good", NEW_REVISION, &METADATA, "general")
    );
    assert_eq!(recorded[1].json(), teams_card("0076D7", NEW_REVISION, &METADATA));
    assert_eq!(recorded[4].json(), gchat_card(NEW_REVISION, &METADATA));
}

#[tokio::test]
async fn non_2xx_is_an_error_with_the_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_service"))
        .mount(&server)
        .await;
    let notifier = AnyNotifier::new(&config(
        AlertProviderType::Slack,
        format!("{}/hook", server.uri()),
    ))
    .unwrap();
    let error = notifier.post(&alerts()[0]).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "sending notification bad response 404: no_service"
    );
    assert!(!error.is_retriable());
}

#[tokio::test]
async fn closed_port_is_a_retriable_transport_error() {
    let notifier = AnyNotifier::new(&config(
        AlertProviderType::Msteams,
        "http://127.0.0.1:9/hook".to_owned(),
    ))
    .unwrap();
    let error = notifier.post(&alerts()[0]).await.unwrap_err();
    assert!(matches!(error, NotifyError::Transport(_)), "{error:?}");
    assert!(error.is_retriable());
}

#[test]
fn construction_is_validated_like_flagger() {
    let build = |provider, address: &str, username: &str, channel: &str| {
        let mut c = config(provider, address.to_owned());
        c.username = username.to_owned();
        c.channel = channel.to_owned();
        AnyNotifier::new(&c).map(|_| ()).map_err(|e| e.to_string())
    };
    let ok = "http://127.0.0.1:9/hook";
    assert_eq!(
        build(AlertProviderType::Slack, ok, "flagger", ""),
        Err("empty Slack channel".into())
    );
    assert_eq!(
        build(AlertProviderType::Slack, ok, "", "general"),
        Err("empty Slack username".into())
    );
    assert_eq!(
        build(AlertProviderType::Discord, ok, "flagger", ""),
        Err("empty Discord channel".into())
    );
    assert_eq!(
        build(AlertProviderType::Rocket, ok, "", "x"),
        Err("empty Rocket username".into())
    );
    // Teams and Google Chat need neither.
    assert_eq!(build(AlertProviderType::Msteams, ok, "", ""), Ok(()));
    assert_eq!(build(AlertProviderType::Gchat, ok, "", ""), Ok(()));
    assert_eq!(
        build(
            AlertProviderType::Slack,
            "hooks.slack.com/services/secret",
            "flagger",
            "general"
        ),
        Err("invalid Slack hook URL <unparsable>".into())
    );
    assert_eq!(
        build(AlertProviderType::Gchat, "", "flagger", "general"),
        Err("empty webhook address".into())
    );
    let mut bad_proxy = config(AlertProviderType::Gchat, ok.to_owned());
    bad_proxy.proxy = Some("::not a url::".to_owned());
    assert!(matches!(
        AnyNotifier::new(&bad_proxy),
        Err(NotifyError::InvalidProxy { .. })
    ));
}
