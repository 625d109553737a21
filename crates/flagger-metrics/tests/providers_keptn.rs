//! The keptn provider on the real test cluster with minimal Keptn CRDs (`testdata/crds/keptn.yaml`): a
//! KeptnMetric's status value is read, and for Analyses the test plays the Keptn controller (it finds the
//! created Analysis, checks its spec, completes it) and asserts the result and the deletion.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use flagger_metrics::provider::NoDataReason;
use flagger_metrics::providers::keptn::KeptnProvider;
use flagger_metrics::{AnyProvider, MetricProvider, ProviderError, ProviderInit};
use testkit::kube::{TestNamespace, install_crds, poll};

const CRDS: &str = include_str!("../testdata/crds/keptn.yaml");

async fn setup(prefix: &str) -> TestNamespace {
    let ns = TestNamespace::new(prefix).await.unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(CRDS).unwrap();
    let crds: Vec<CustomResourceDefinition> = docs
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    install_crds(&ns.client, &crds).await.unwrap();
    ns
}

fn api(ns: &TestNamespace, version: &str, kind: &str) -> Api<DynamicObject> {
    let plural = if kind == "Analysis" {
        "analyses"
    } else {
        "keptnmetrics"
    };
    let gvk = GroupVersionKind::gvk("metrics.keptn.sh", version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
}

fn keptn(client: &kube::Client) -> KeptnProvider {
    let spec: flagger_api::MetricTemplateProvider = serde_json::from_value(json!({"type": "keptn"})).unwrap();
    let empty = BTreeMap::new();
    KeptnProvider::new(&ProviderInit {
        provider: &spec,
        credentials: &empty,
        interval: Duration::from_secs(60),
        kube: Some(client),
    })
    .unwrap()
}

/// Creates a KeptnMetric at `v1` (Keptn's storage version), with `status` if given.
async fn keptn_metric(ns: &TestNamespace, name: &str, status: Option<serde_json::Value>) {
    let metrics = api(ns, "v1", "KeptnMetric");
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "metrics.keptn.sh/v1",
        "kind": "KeptnMetric",
        "metadata": {"name": name, "namespace": ns.name},
        "spec": {"provider": {"name": "my-prometheus-provider"}, "query": "sum(rate(http_requests_total[1m]))",
                 "fetchIntervalSeconds": 10},
    }))
    .unwrap();
    metrics.create(&PostParams::default(), &object).await.unwrap();
    if let Some(status) = status {
        metrics
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn keptn_metric_values() {
    let ns = setup("keptn-metric").await;
    let p = keptn(&ns.client);
    assert_eq!(p.kind(), "keptn");
    p.is_online().await.unwrap();

    keptn_metric(
        &ns,
        "response-time",
        Some(json!({"value": "2.75", "rawValue": "Mi43NQ=="})),
    )
    .await;
    assert_eq!(
        p.run_query(&format!("keptnmetric/{}/response-time", ns.name))
            .await
            .unwrap(),
        2.75
    );
    // Flagger lower-cases the query and accepts the plural.
    assert_eq!(
        p.run_query(&format!("KeptnMetrics/{}/Response-Time\n", ns.name))
            .await
            .unwrap(),
        2.75
    );

    keptn_metric(&ns, "not-fetched-yet", None).await;
    match p
        .run_query(&format!("keptnmetric/{}/not-fetched-yet", ns.name))
        .await
        .unwrap_err()
    {
        ProviderError::NoValues {
            provider: "keptn",
            reason: NoDataReason::Empty,
        } => {}
        other => panic!("{other}"),
    }

    keptn_metric(&ns, "nan", Some(json!({"value": "NaN"}))).await;
    assert!(matches!(
        p.run_query(&format!("keptnmetric/{}/nan", ns.name))
            .await
            .unwrap_err(),
        ProviderError::NoValues {
            reason: NoDataReason::NaN,
            ..
        }
    ));

    keptn_metric(&ns, "garbage", Some(json!({"value": "fast"}))).await;
    let err = p
        .run_query(&format!("keptnmetric/{}/garbage", ns.name))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Parse {
                provider: "keptn",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!(
            "could not parse value of KeptnMetric {}/garbage to float",
            ns.name
        )),
        "{err}"
    );

    let err = p
        .run_query(&format!("keptnmetric/{}/missing", ns.name))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Request {
                provider: "keptn",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("could not retrieve KeptnMetric {}/missing", ns.name)),
        "{err}"
    );

    let err = p.run_query("keptnmetric/only-two").await.unwrap_err();
    assert!(err.to_string().contains("unexpected query format"), "{err}");
}

/// Waits for the provider's Analysis to appear and returns it.
async fn created_analysis(analyses: &Api<DynamicObject>) -> DynamicObject {
    poll(
        "an Analysis created by the provider",
        Duration::from_secs(10),
        || async {
            let list = analyses.list(&ListParams::default()).await?;
            Ok(match list.items.into_iter().next() {
                Some(analysis) => Ok(analysis),
                None => Err("none yet"),
            })
        },
    )
    .await
    .unwrap()
}

async fn assert_deleted(analyses: &Api<DynamicObject>, name: &str) {
    poll(
        &format!("Analysis {name} deleted"),
        Duration::from_secs(10),
        || async {
            Ok(match analyses.get_opt(name).await? {
                None => Ok(()),
                Some(_) => Err("still there"),
            })
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn analysis_results_as_the_keptn_controller_completes_them() {
    let ns = setup("keptn-analysis").await;
    let p = keptn(&ns.client);
    let analyses = api(&ns, "v1beta1", "Analysis");

    for (pass, expected) in [(true, 1.0), (false, 0.0)] {
        let query = format!(
            "analysis/{}/Response-Time-Check/5m/Reporter=destination;workload=podinfo;ignored",
            ns.name
        );
        let started = Instant::now();
        let run = tokio::spawn({
            let p = p.clone();
            async move { p.run_query(&query).await }
        });

        let analysis = created_analysis(&analyses).await;
        let name = analysis.metadata.name.clone().unwrap();
        let suffix = name.strip_prefix("response-time-check-").unwrap();
        assert_eq!(suffix.len(), 6, "{name}");
        assert!(
            suffix.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{name}"
        );
        assert_eq!(
            analysis.types.as_ref().unwrap().api_version,
            "metrics.keptn.sh/v1beta1"
        );
        assert_eq!(
            analysis.data["spec"],
            json!({
                "analysisDefinition": {"name": "response-time-check"},
                "timeframe": {"recent": "5m"},
                "args": {"reporter": "destination", "workload": "podinfo"},
            })
        );

        // Keptn's controller: first still running, then completed with the verdict.
        analyses
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"state": "Progressing"}})),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !run.is_finished(),
            "the provider waits while the Analysis is not Completed"
        );
        analyses
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"state": "Completed", "pass": pass}})),
            )
            .await
            .unwrap();

        let value = run.await.unwrap().unwrap();
        assert_eq!(value, expected, "pass={pass}");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_deleted(&analyses, &name).await;
    }
}

#[tokio::test]
async fn an_analysis_that_never_completes_times_out_and_is_deleted() {
    let ns = setup("keptn-timeout").await;
    let p = keptn(&ns.client).with_analysis_timeout(Duration::from_secs(3));
    let analyses = api(&ns, "v1beta1", "Analysis");
    let query = format!("analyses/{}/slow", ns.name);
    let started = Instant::now();
    let run = tokio::spawn({
        let p = p.clone();
        async move { p.run_query(&query).await }
    });
    let analysis = created_analysis(&analyses).await;
    let name = analysis.metadata.name.clone().unwrap();
    // Defaults: duration 1m, no arguments.
    assert_eq!(
        analysis.data["spec"],
        json!({"analysisDefinition": {"name": "slow"}, "timeframe": {"recent": "1m"}, "args": {}})
    );
    // Completed without a verdict is not a result.
    analyses
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"state": "Completed"}})),
        )
        .await
        .unwrap();

    let err = run.await.unwrap().unwrap_err();
    let took = started.elapsed();
    assert!(
        // Bounded by the 3 s timeout (without it the wait would never end); the rest is API calls on a
        // possibly loaded server.
        took >= Duration::from_millis(2900) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert!(
        err.to_string().contains(&format!(
            "encountered timeout while waiting for Keptn Analysis {}/slow to be finished",
            ns.name
        )),
        "{err}"
    );
    assert_deleted(&analyses, &name).await;
}

#[tokio::test]
async fn an_analysis_that_cannot_be_created_is_an_error() {
    // The CRDs must be served, or the API server answers "404 page not found" for the resource instead.
    let ns = setup("keptn-nocreate").await;
    let p = keptn(&ns.client);
    let err = p
        .run_query("analysis/no-such-namespace-xyz/def")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("could not create Keptn Analysis no-such-namespace-xyz/def"),
        "{err}"
    );
    // The API server's answer: the namespace, not the resource, is missing.
    assert!(
        err.to_string()
            .contains("namespaces \"no-such-namespace-xyz\" not found"),
        "{err}"
    );
}

#[test]
fn the_operators_client_is_required() {
    let spec: flagger_api::MetricTemplateProvider = serde_json::from_value(json!({"type": "keptn"})).unwrap();
    let empty = BTreeMap::new();
    let init = ProviderInit {
        provider: &spec,
        credentials: &empty,
        interval: Duration::from_secs(60),
        kube: None,
    };
    assert_eq!(
        KeptnProvider::new(&init).unwrap_err().to_string(),
        "could not initialize KeptnProvider: no KubeConfig provided"
    );
    assert_eq!(
        AnyProvider::new(&init).unwrap_err().to_string(),
        "could not initialize KeptnProvider: no KubeConfig provided"
    );
}
