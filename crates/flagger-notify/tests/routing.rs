//! The severity filter, the global notifier fallback, provider settings and the alert catalogue.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use flagger_api::{AlertProviderSpec, AlertSeverity};
use flagger_core::provider::AlertProviderType;
use flagger_notify::routing::{
    ProviderError, Recipients, provider_config, provider_namespace, recipients, subscriber_accepts,
};
use flagger_notify::{
    Alert, AlertEvent, AnyNotifier, Field, GlobalNotifierSettings, Severity, metadata_fields,
};
use k8s_openapi::ByteString;
use serde_json::json;

use common::canary;

#[test]
fn severity_matrix() {
    use AlertSeverity::{Error as E, Info as I, Unset as U, Warn as W};
    use Severity::{Error, Info, Warn};
    // (subscriber, message, sent) — "" and a missing severity mean info (Flagger never sends them).
    let table = [
        (Some(I), Info, true),
        (Some(I), Warn, true),
        (Some(I), Error, true),
        (Some(W), Info, false),
        (Some(W), Warn, true),
        (Some(W), Error, true),
        (Some(E), Info, false),
        (Some(E), Warn, false),
        (Some(E), Error, true),
        (Some(U), Info, true),
        (Some(U), Warn, true),
        (Some(U), Error, true),
        (None, Info, true),
        (None, Warn, true),
        (None, Error, true),
    ];
    for (subscriber, message, sent) in table {
        assert_eq!(
            subscriber_accepts(subscriber, message),
            sent,
            "{subscriber:?} {message}"
        );
    }
}

#[test]
fn empty_severity_in_a_manifest_receives_info() {
    let canary = canary(json!({
        "interval": "1m", "threshold": 5, "stepWeight": 10,
        "alerts": [{"name": "blank", "severity": "", "providerRef": {"name": "slack"}}]
    }));
    let Recipients::Providers(alerts) = recipients(&canary, Severity::Info) else {
        panic!("expected providers")
    };
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].name, "blank");
}

#[test]
fn canaries_without_alerts_use_the_global_notifier() {
    let without = canary(json!({"interval": "1m", "threshold": 5, "stepWeight": 10}));
    for severity in [Severity::Info, Severity::Warn, Severity::Error] {
        assert_eq!(recipients(&without, severity), Recipients::Global);
    }
    let empty_list = canary(json!({"interval": "1m", "threshold": 5, "stepWeight": 10, "alerts": []}));
    assert_eq!(recipients(&empty_list, Severity::Info), Recipients::Global);
}

#[test]
fn canaries_with_alerts_never_use_the_global_notifier() {
    let canary = canary(json!({
        "interval": "1m", "threshold": 5, "stepWeight": 10,
        "alerts": [
            {"name": "errors", "severity": "error", "providerRef": {"name": "pager"}},
            {"name": "warnings", "severity": "warn", "providerRef": {"name": "teams", "namespace": "ops"}},
            {"name": "all", "severity": "info", "providerRef": {"name": "slack"}},
        ]
    }));
    let names = |severity| match recipients(&canary, severity) {
        Recipients::Providers(alerts) => alerts.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
        Recipients::Global => panic!("global notifier used for a canary with alerts"),
    };
    assert_eq!(names(Severity::Info), ["all"]);
    assert_eq!(names(Severity::Warn), ["warnings", "all"]);
    assert_eq!(names(Severity::Error), ["errors", "warnings", "all"]);

    let only_errors = common::canary(json!({
        "interval": "1m", "threshold": 5, "stepWeight": 10,
        "alerts": [{"name": "errors", "severity": "error", "providerRef": {"name": "pager"}}]
    }));
    assert_eq!(
        recipients(&only_errors, Severity::Info),
        Recipients::Providers(vec![])
    );

    let Recipients::Providers(all) = recipients(&canary, Severity::Error) else {
        panic!("expected providers")
    };
    assert_eq!(provider_namespace(all[0], "test"), "test");
    assert_eq!(provider_namespace(all[1], "test"), "ops");
}

#[test]
fn global_settings_follow_flags_and_env() {
    let flags = GlobalNotifierSettings {
        slack_url: "http://127.0.0.1:9/flag".to_owned(),
        slack_channel: "releases".to_owned(),
        ..GlobalNotifierSettings::default()
    };
    assert_eq!(flags.slack_user, "flagger");

    let none = GlobalNotifierSettings::default().with_env(|_| None);
    assert_eq!(none.config(), None);

    let slack = flags.clone().with_env(|_| None).config().unwrap();
    assert_eq!(slack.provider, AlertProviderType::Slack);
    assert_eq!(slack.address, "http://127.0.0.1:9/flag");
    assert_eq!(
        (slack.username.as_str(), slack.channel.as_str()),
        ("flagger", "releases")
    );
    assert_eq!(slack.token, None);

    // Non-empty env variables win over the flags; empty ones do not.
    let env = |key: &str| match key {
        "SLACK_URL" => Some("http://127.0.0.1:9/env".to_owned()),
        "SLACK_TOKEN" => Some("xoxb-env".to_owned()),
        "SLACK_PROXY_URL" => Some(String::new()),
        _ => None,
    };
    let slack = flags.clone().with_env(env).config().unwrap();
    assert_eq!(slack.address, "http://127.0.0.1:9/env");
    assert_eq!(slack.token.as_deref(), Some("xoxb-env"));
    assert_eq!(slack.proxy, None);

    // Teams replaces Slack when its URL is set by flag or env.
    let teams = flags
        .clone()
        .with_env(|k| (k == "MSTEAMS_URL").then(|| "http://127.0.0.1:9/teams".to_owned()))
        .config()
        .unwrap();
    assert_eq!(teams.provider, AlertProviderType::Msteams);
    assert_eq!(teams.address, "http://127.0.0.1:9/teams");
    let teams = GlobalNotifierSettings {
        msteams_url: "http://127.0.0.1:9/teams-flag".to_owned(),
        msteams_proxy_url: "http://127.0.0.1:3128".to_owned(),
        ..GlobalNotifierSettings::default()
    }
    .config()
    .unwrap();
    assert_eq!(teams.provider, AlertProviderType::Msteams);
    assert_eq!(teams.proxy.as_deref(), Some("http://127.0.0.1:3128"));
    assert!(AnyNotifier::new(&teams).is_ok());

    // As in Flagger, global Slack without -slack-channel cannot be built.
    let no_channel = GlobalNotifierSettings {
        slack_url: "http://127.0.0.1:9/flag".to_owned(),
        ..GlobalNotifierSettings::default()
    };
    let error = AnyNotifier::new(&no_channel.config().unwrap()).unwrap_err();
    assert_eq!(error.to_string(), "empty Slack channel");
}

fn spec(value: serde_json::Value) -> AlertProviderSpec {
    serde_json::from_value(value).unwrap()
}

fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

#[test]
fn provider_settings_defaults_and_secret() {
    let plain = provider_config(
        &spec(json!({"type": "rocket", "address": "http://127.0.0.1:9/r", "proxy": "http://127.0.0.1:3128"})),
        None,
    )
    .unwrap();
    assert_eq!(plain.provider, AlertProviderType::Rocket);
    assert_eq!(plain.address, "http://127.0.0.1:9/r");
    assert_eq!(
        (plain.username.as_str(), plain.channel.as_str()),
        ("flagger", "general")
    );
    assert_eq!(plain.proxy.as_deref(), Some("http://127.0.0.1:3128"));
    assert_eq!(plain.token, None);

    let with_secret = spec(json!({
        "type": "slack", "username": "bot", "channel": "ops", "address": "http://127.0.0.1:9/ignored",
        "secretRef": {"name": "hook"}
    }));
    let config = provider_config(
        &with_secret,
        Some(&secret(&[
            ("address", "http://127.0.0.1:9/secret"),
            ("token", "t0k"),
        ])),
    )
    .unwrap();
    assert_eq!(config.address, "http://127.0.0.1:9/secret");
    assert_eq!(config.token.as_deref(), Some("t0k"));
    assert_eq!(
        (config.username.as_str(), config.channel.as_str()),
        ("bot", "ops")
    );
    // The token is never printed.
    assert!(!format!("{config:?}").contains("t0k"));
    assert!(!format!("{config:?}").contains("/secret"));

    assert_eq!(
        provider_config(&with_secret, Some(&secret(&[("token", "t0k")]))),
        Err(ProviderError::SecretWithoutAddress)
    );
    assert_eq!(
        provider_config(&with_secret, None),
        Err(ProviderError::SecretNotRead("hook".to_owned()))
    );
    assert_eq!(
        provider_config(
            &spec(json!({"type": "teams", "address": "http://127.0.0.1:9"})),
            None
        )
        .map_err(|e| e.to_string()),
        Err("provider teams not supported".to_owned())
    );
}

fn fields(canary: &flagger_api::Canary) -> Vec<(String, String)> {
    metadata_fields(canary)
        .into_iter()
        .map(|Field { name, value }| (name, value))
        .collect()
}

#[test]
fn metadata_fields_per_strategy() {
    let routing = |analysis| {
        fields(&canary(analysis))
            .into_iter()
            .find(|(n, _)| n == "Traffic routing")
            .map(|(_, v)| v)
    };
    assert_eq!(
        routing(json!({"interval": "1m", "threshold": 2, "iterations": 5,
            "match": [{"headers": {"x-canary": {"exact": "1"}}}]})),
        Some("A/B Testing".to_owned())
    );
    assert_eq!(
        routing(json!({"interval": "1m", "threshold": 2, "iterations": 5})),
        Some("Blue/Green".to_owned())
    );
    // As in Flagger, `max` is the field as written: 0 when unset.
    assert_eq!(
        routing(json!({"interval": "1m", "threshold": 2, "stepWeight": 20})),
        Some("Weight step: 20 max: 0".to_owned())
    );
    assert_eq!(
        routing(json!({"interval": "1m", "threshold": 2, "stepWeights": [1, 5, 25, 50], "maxWeight": 50})),
        Some("Weight steps: 1,5,25,50 max: 50".to_owned())
    );
    assert_eq!(routing(json!({"interval": "1m", "threshold": 2})), None);

    let all = fields(&canary(
        json!({"interval": "1m", "threshold": 0, "iterations": 3}),
    ));
    assert_eq!(
        all,
        [
            ("Target".to_owned(), "Deployment/podinfo-app.test".to_owned()),
            ("Failed checks threshold".to_owned(), "1".to_owned()),
            ("Progress deadline".to_owned(), "60s".to_owned()),
            ("Traffic routing".to_owned(), "Blue/Green".to_owned()),
        ]
    );
}

#[test]
fn catalogue_messages_severities_and_fields() {
    let canary = canary(json!({"interval": "1m", "threshold": 3, "iterations": 4}));
    let cases: [(AlertEvent, &str, Severity, bool); 11] = [
        (
            AlertEvent::Initialized,
            "New Deployment detected, initialization completed.",
            Severity::Info,
            true,
        ),
        (
            AlertEvent::NewRevision,
            "New revision detected, progressing canary analysis.",
            Severity::Info,
            true,
        ),
        (
            AlertEvent::WaitingForApproval,
            "Canary is waiting for approval.",
            Severity::Warn,
            false,
        ),
        (
            AlertEvent::PromotionWaitingForApproval,
            "Canary promotion is waiting for approval.",
            Severity::Warn,
            false,
        ),
        (
            AlertEvent::TrafficIncreaseWaitingForApproval,
            "Canary traffic increase is waiting for approval.",
            Severity::Warn,
            false,
        ),
        (
            AlertEvent::ManualRollback,
            "Rolling back manual webhook invoked",
            Severity::Warn,
            false,
        ),
        (
            AlertEvent::FailedChecksThreshold { failed_checks: 3 },
            "Failed checks threshold reached 3",
            Severity::Error,
            false,
        ),
        (
            AlertEvent::PromotionFailed {
                error: "primary not ready".to_owned(),
            },
            "Promotion failed, primary not ready: primary not ready",
            Severity::Error,
            false,
        ),
        (
            AlertEvent::Succeeded,
            "Canary analysis completed successfully, promotion finished.",
            Severity::Info,
            false,
        ),
        (
            AlertEvent::Skipped,
            "Canary analysis was skipped, promotion finished.",
            Severity::Info,
            false,
        ),
        (
            AlertEvent::ProgressDeadlineExceeded {
                error: "deployment podinfo-app not ready".to_owned(),
            },
            "Progress deadline exceeded deployment podinfo-app not ready",
            Severity::Error,
            false,
        ),
    ];
    for (event, message, severity, metadata) in cases {
        let plain = Alert::for_event(&canary, &event, "");
        assert_eq!(plain.message, message);
        assert_eq!(plain.severity, severity);
        assert_eq!(
            (plain.canary_name.as_str(), plain.canary_namespace.as_str()),
            ("podinfo", "test")
        );
        assert_eq!(plain.fields.len(), if metadata { 4 } else { 0 }, "{message}");
        // The cluster name comes first, on every alert.
        let clustered = Alert::for_event(&canary, &event, "eu-1");
        assert_eq!(clustered.fields[0], Field::new("Cluster", "eu-1"));
        assert_eq!(clustered.fields.len(), plain.fields.len() + 1);
    }
}
