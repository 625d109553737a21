//! `flagger_controller::events::EventRecorder` against the local control plane: the core/v1 Events it
//! writes (as client-go's recorder does, with repeats counted on one object), the leader gate, and the
//! event webhooks on a loopback receiver.
//!
//! Needs the local control plane (`eval "$(cargo xtask testenv env)"`). Every test has its own namespace.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::Result;
use flagger_api::Canary;
use flagger_controller::ControllerConfig;
use flagger_controller::events::EventRecorder;
use flagger_controller::gate::WriteGate;
use flagger_core::machine::Event;
use flagger_core::provider::MeshProvider;
use flagger_webhooks::client::WebhookClient;
use k8s_openapi::api::core::v1::Event as KubeEvent;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testkit::hooks::Receiver;
use testkit::{TestNamespace, install_crds};

const DEADLINE: Duration = Duration::from_secs(20);
const INSTANCE: &str = "flagger-7d9f8-x2k4q";

/// Canary `podinfo` created in the test namespace with `webhooks` in its analysis, and a status in phase
/// `phase`; returned as the API server has it (uid, resourceVersion).
async fn create_canary(
    ns: &TestNamespace,
    webhooks: serde_json::Value,
    phase: Option<&str>,
) -> Result<Canary> {
    install_crds(&ns.client, &flagger_api::crds()).await?;
    let canary: Canary = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": ns.name},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50, "webhooks": webhooks},
        },
    }))?;
    let api: Api<Canary> = ns.api();
    let mut created = api.create(&PostParams::default(), &canary).await?;
    if let Some(phase) = phase {
        created = api
            .patch_status(
                "podinfo",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": phase}})),
            )
            .await?;
    }
    Ok(created)
}

fn config(event_webhook: Option<String>) -> ControllerConfig {
    let mut config = ControllerConfig::new(MeshProvider::Kubernetes);
    config.instance = INSTANCE.into();
    config.event_webhook = event_webhook;
    config
}

fn recorder(ns: &TestNamespace, config: &ControllerConfig) -> EventRecorder {
    EventRecorder::new(ns.client.clone(), config, WebhookClient::new().unwrap())
}

/// The Events about `canary`, oldest first.
async fn events_of(ns: &TestNamespace, canary: &Canary) -> Result<Vec<KubeEvent>> {
    let api: Api<KubeEvent> = ns.api();
    let uid = canary.uid().unwrap();
    let mut events: Vec<KubeEvent> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(uid.as_str()))
        .collect();
    events.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(events)
}

fn by_message<'a>(events: &'a [KubeEvent], message: &str) -> &'a KubeEvent {
    let found: Vec<&KubeEvent> = events
        .iter()
        .filter(|e| e.message.as_deref() == Some(message))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one Event with message {message:?} in {events:#?}"
    );
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_written_like_client_gos_recorder() -> Result<()> {
    let ns = TestNamespace::new("events-write").await?;
    let canary = create_canary(&ns, json!([]), None).await?;
    let recorder = recorder(&ns, &config(None));
    let gate = WriteGate::open();
    let n = &ns.name;
    let scaling = format!("New revision detected! Scaling up podinfo.{n}");
    let halt = format!(
        "Halt advancement podinfo-primary.{n} waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available"
    );

    recorder.record(&canary, &Event::normal(&scaling), &gate).await;
    let events = events_of(&ns, &canary).await?;
    assert_eq!(events.len(), 1, "{events:#?}");
    let first = &events[0];
    assert_eq!(first.type_.as_deref(), Some("Normal"));
    assert_eq!(first.reason.as_deref(), Some("Synced"));
    assert_eq!(first.message.as_deref(), Some(scaling.as_str()));
    assert_eq!(first.count, Some(1));
    let source = first.source.clone().unwrap();
    assert_eq!(source.component.as_deref(), Some("flagger"));
    assert_eq!(source.host, None);
    assert_eq!(first.reporting_component.as_deref(), Some("flagger"));
    assert_eq!(first.reporting_instance.as_deref(), Some(INSTANCE));
    let io = &first.involved_object;
    assert_eq!(io.api_version.as_deref(), Some("flagger.app/v1beta1"));
    assert_eq!(io.kind.as_deref(), Some("Canary"));
    assert_eq!(io.name.as_deref(), Some("podinfo"));
    assert_eq!(io.namespace.as_deref(), Some(n.as_str()));
    assert_eq!(io.uid, canary.uid());
    assert_eq!(io.resource_version, canary.resource_version());
    assert_eq!(io.field_path, None);
    assert_eq!(first.metadata.namespace.as_deref(), Some(n.as_str()));
    // client-go's name: `<object name>.<unix nanoseconds in hex>`.
    let name = first.metadata.name.clone().unwrap();
    let suffix = name.strip_prefix("podinfo.").unwrap();
    assert!(
        suffix.len() >= 15
            && suffix
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{name}"
    );
    let created = first.first_timestamp.clone().unwrap();
    assert_eq!(first.last_timestamp, Some(created.clone()));
    let nanos = i128::from_str_radix(suffix, 16)?;
    assert_eq!(nanos / 1_000_000_000, i128::from(created.0.as_second()));

    // A different message, or a different type, is a new object.
    recorder.record(&canary, &Event::warning(&halt), &gate).await;
    let events = events_of(&ns, &canary).await?;
    assert_eq!(events.len(), 2, "{events:#?}");
    let warning = by_message(&events, &halt);
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert_eq!(warning.count, Some(1));
    assert_ne!(warning.metadata.name, Some(name.clone()));

    // The same message again: the first object counts 2; nothing new is created.
    recorder.record(&canary, &Event::normal(&scaling), &gate).await;
    let events = events_of(&ns, &canary).await?;
    assert_eq!(events.len(), 2, "{events:#?}");
    let repeated = by_message(&events, &scaling);
    assert_eq!(repeated.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(repeated.count, Some(2));
    assert_eq!(repeated.type_.as_deref(), Some("Normal"));
    assert_eq!(repeated.first_timestamp, Some(created.clone()));
    assert!(repeated.last_timestamp.clone().unwrap().0 >= created.0);
    assert_eq!(by_message(&events, &halt).count, Some(1));

    // The same message as a Warning is yet another object.
    recorder.record(&canary, &Event::warning(&scaling), &gate).await;
    let events = events_of(&ns, &canary).await?;
    assert_eq!(events.len(), 3, "{events:#?}");

    // An Event deleted meanwhile (the API server's TTL) is created again with the next count.
    let api: Api<KubeEvent> = ns.api();
    api.delete(&name, &DeleteParams::default()).await?;
    testkit::kube::poll("the Event to be deleted", DEADLINE, || async {
        Ok(match api.get_opt(&name).await? {
            None => Ok(()),
            Some(e) => Err(e.metadata.deletion_timestamp),
        })
    })
    .await?;
    recorder.record(&canary, &Event::normal(&scaling), &gate).await;
    let again = api.get(&name).await?;
    assert_eq!(again.count, Some(3));
    assert_eq!(again.message.as_deref(), Some(scaling.as_str()));
    assert_eq!(again.first_timestamp, Some(created));
    assert_eq!(events_of(&ns, &canary).await?.len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_gate_writes_and_posts_nothing() -> Result<()> {
    let ns = TestNamespace::new("events-gate").await?;
    let hooks = Receiver::start().await?;
    let canary = create_canary(
        &ns,
        json!([{"name": "ev", "type": "event", "url": hooks.url("ev")}]),
        None,
    )
    .await?;
    let recorder = recorder(&ns, &config(Some(hooks.url("global"))));
    let (leading, rx) = tokio::sync::watch::channel(false);
    let gate = WriteGate::new(rx);

    recorder
        .record(&canary, &Event::normal("recorded while not leading"), &gate)
        .await;
    assert!(events_of(&ns, &canary).await?.is_empty());

    leading.send_replace(true);
    recorder
        .record(&canary, &Event::normal("recorded while leading"), &gate)
        .await;
    let events = events_of(&ns, &canary).await?;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].message.as_deref(), Some("recorded while leading"));
    // The canary's events are posted in order: had the first one been posted, it would be the first call.
    let calls = hooks.wait_for_calls("ev", 1, DEADLINE).await?;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].body["metadata"]["eventMessage"],
        "recorded while leading"
    );
    assert!(hooks.calls_to("global").is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_webhooks_receive_flaggers_payload() -> Result<()> {
    let ns = TestNamespace::new("events-hooks").await?;
    let hooks = Receiver::start().await?;
    hooks.set_status("broken", 500);
    let canary = create_canary(
        &ns,
        json!([
            {"name": "load", "type": "rollout", "url": hooks.url("load")},
            {"name": "broken", "type": "event", "url": hooks.url("broken")},
            {"name": "ev", "type": "event", "url": hooks.url("ev"),
             "metadata": {"team": "sre", "eventType": "not this one"}},
        ]),
        Some("Progressing"),
    )
    .await?;
    let recorder = recorder(&ns, &config(Some(hooks.url("global"))));
    let gate = WriteGate::open();
    let n = &ns.name;
    let checksum = flagger_webhooks::canary_checksum(&canary);

    let message = format!(
        "Halt advancement no values found for istio metric request-success-rate probably podinfo.{n} is not receiving traffic: running query failed: no values found"
    );
    let before = jiff::Timestamp::now().as_millisecond();
    recorder.record(&canary, &Event::warning(&message), &gate).await;
    let after = jiff::Timestamp::now().as_millisecond();

    let calls = hooks.wait_for_calls("ev", 1, DEADLINE).await?;
    let body = &calls[0].body;
    let timestamp = body["metadata"]["timestamp"].as_str().unwrap().to_owned();
    let millis: i64 = timestamp.parse()?;
    assert!(
        (before..=after).contains(&millis),
        "{before} <= {millis} <= {after}"
    );
    assert_eq!(
        *body,
        json!({
            "name": "podinfo",
            "namespace": n,
            "phase": "Progressing",
            "checksum": checksum,
            "metadata": {
                "eventMessage": message,
                "eventType": "Warning",
                "timestamp": timestamp,
                "team": "sre",
            },
        })
    );
    // The failing hook was called too, before it, and did not stop it.
    assert_eq!(hooks.calls_to("broken").len(), 1);
    let mut without_team = body.clone();
    without_team["metadata"].as_object_mut().unwrap().remove("team");
    assert_eq!(hooks.calls_to("broken")[0].body, without_team);

    // A burst of events arrives in the order it was recorded.
    let burst: Vec<String> = (1..=5)
        .map(|w| format!("Advance podinfo.{n} canary weight {}", w * 10))
        .collect();
    for m in &burst {
        recorder.record(&canary, &Event::normal(m), &gate).await;
    }
    let calls = hooks.wait_for_calls("ev", 6, DEADLINE).await?;
    let received: Vec<&str> = calls[1..]
        .iter()
        .map(|c| c.body["metadata"]["eventMessage"].as_str().unwrap())
        .collect();
    assert_eq!(received, burst);
    assert!(
        calls[1..]
            .iter()
            .all(|c| c.body["metadata"]["eventType"] == "Normal")
    );

    // Without event hooks of its own, the canary's events go to the global URL. Posted in order after the
    // ones above, so by the time it arrives the global URL would have seen any earlier event.
    let mut without = canary.clone();
    let analysis = without.spec.analysis.as_mut().unwrap();
    analysis.webhooks.as_mut().unwrap().retain(|h| h.name == "load");
    recorder
        .record(
            &without,
            &Event::normal("Promotion completed! Scaling down podinfo"),
            &gate,
        )
        .await;
    let global = hooks.wait_for_calls("global", 1, DEADLINE).await?;
    assert_eq!(global.len(), 1);
    let body = &global[0].body;
    assert_eq!(body["name"], "podinfo");
    assert_eq!(body["namespace"], n.as_str());
    assert_eq!(body["phase"], "Progressing");
    assert_eq!(body["checksum"], flagger_webhooks::canary_checksum(&without));
    let metadata = body["metadata"].as_object().unwrap();
    assert_eq!(
        metadata.keys().map(String::as_str).collect::<Vec<_>>(),
        ["eventMessage", "eventType", "timestamp"]
    );
    assert_eq!(
        metadata["eventMessage"],
        "Promotion completed! Scaling down podinfo"
    );
    assert_eq!(metadata["eventType"], "Normal");
    assert_eq!(hooks.calls_to("ev").len(), 6);
    assert_eq!(hooks.calls_to("broken").len(), 6);
    assert!(hooks.calls_to("load").is_empty());
    Ok(())
}
