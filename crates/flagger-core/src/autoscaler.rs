//! The primary's autoscaler (Flagger 1.44 §2.10), as pure builders: `<hpa>-primary` for an autoscaling/v2
//! HorizontalPodAutoscaler and `<so>-primary` for a KEDA ScaledObject, both scaling `<target>-primary`.
//!
//! ScaledObjects are handled as JSON: KEDA's schema is large and changes, and flagger-rs must never drop a
//! field of a user's ScaledObject it does not model.

use std::collections::BTreeMap;

use flagger_api::Canary;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Map, Value, json};

use crate::primary::{PRIMARY_SUFFIX, TOOLKIT_MARKER};

/// The annotation that pauses a KEDA ScaledObject at the given replica count.
pub const KEDA_PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";

fn without_toolkit(map: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .filter(|(k, _)| !k.contains(TOOLKIT_MARKER))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn primary_target_name(canary: &Canary) -> String {
    format!("{}{PRIMARY_SUFFIX}", canary.spec.target_ref.name)
}

fn scaler_replicas(canary: &Canary) -> (Option<i32>, Option<i32>) {
    let replicas = canary
        .spec
        .autoscaler_ref
        .as_ref()
        .and_then(|a| a.primary_scaler_replicas.as_ref());
    (
        replicas.and_then(|r| r.min_replicas),
        replicas.and_then(|r| r.max_replicas),
    )
}

/// `<hpa>-primary`: the source HPA's replicas bounds, metrics and behavior, scaling the primary, with
/// `primaryScalerReplicas` overriding the bounds. Labels are copied (without Flux's toolkit keys),
/// annotations are not.
pub fn primary_hpa(
    canary: &Canary,
    source: &HorizontalPodAutoscaler,
    owner: OwnerReference,
) -> HorizontalPodAutoscaler {
    let spec = &source.spec;
    let (min, max) = scaler_replicas(canary);
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}{PRIMARY_SUFFIX}",
                source.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: canary.metadata.namespace.clone(),
            labels: Some(without_toolkit(source.metadata.labels.as_ref())),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                name: primary_target_name(canary),
                kind: spec.scale_target_ref.kind.clone(),
                api_version: spec.scale_target_ref.api_version.clone(),
            },
            min_replicas: min.or(spec.min_replicas),
            max_replicas: max.unwrap_or(spec.max_replicas),
            metrics: spec.metrics.clone(),
            behavior: spec.behavior.clone(),
        },
        status: None,
    }
}

/// Rewrites a scaler query so that it measures the primary: every `<target>-canary` and every other
/// `<target>` becomes `<target>-primary` (e.g. `app="podinfo"` → `app="podinfo-primary"`). One left-to-right
/// pass that prefers the longer match gives what Flagger's placeholder trick gives, without a placeholder
/// that could collide with the query.
pub fn rewrite_query(query: &str, target: &str) -> String {
    if target.is_empty() {
        return query.to_string();
    }
    let canary = format!("{target}-canary");
    let primary = format!("{target}{PRIMARY_SUFFIX}");
    let mut out = String::with_capacity(query.len() + 16);
    let mut rest = query;
    while let Some(at) = rest.find(target) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let matched = if tail.starts_with(&canary) {
            canary.len()
        } else {
            target.len()
        };
        out.push_str(&primary);
        rest = &tail[matched..];
    }
    out.push_str(rest);
    out
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// `<so>-primary` from the target's KEDA ScaledObject (`source`, any apiVersion of `keda.sh`): its polling,
/// cooldown, replica counts (overridable by `primaryScalerReplicas`), `advanced` (a custom HPA name gets
/// `-primary`), `fallback`, `idleReplicaCount` and triggers, scaling the primary. Trigger queries are set
/// from `primaryScalerQueries` by trigger name when given, otherwise rewritten with [`rewrite_query`].
/// Labels and annotations are copied without Flux's toolkit keys and without the pause annotation.
pub fn primary_scaled_object(canary: &Canary, source: &Value, owner: OwnerReference) -> Value {
    let spec = &source["spec"];
    let target = &canary.spec.target_ref.name;
    let queries = canary
        .spec
        .autoscaler_ref
        .as_ref()
        .and_then(|a| a.primary_scaler_queries.as_ref());

    let mut triggers = spec["triggers"].as_array().cloned().unwrap_or_default();
    for trigger in &mut triggers {
        let name = trigger["name"].as_str().map(String::from);
        let Some(metadata) = trigger.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        match queries {
            Some(queries) => {
                if let Some(query) = name.and_then(|n| queries.get(&n)) {
                    metadata.insert("query".into(), json!(query));
                }
            }
            None => {
                if let Some(query) = metadata.get("query").and_then(Value::as_str) {
                    let rewritten = rewrite_query(query, target);
                    metadata.insert("query".into(), json!(rewritten));
                }
            }
        }
    }

    let mut scale_target = Map::new();
    scale_target.insert("name".into(), json!(primary_target_name(canary)));
    for key in ["kind", "apiVersion", "envSourceContainerName"] {
        if let Some(v) = spec["scaleTargetRef"].get(key).filter(|v| !v.is_null()) {
            scale_target.insert(key.into(), v.clone());
        }
    }
    let mut new_spec = Map::new();
    new_spec.insert("scaleTargetRef".into(), Value::Object(scale_target));
    for key in [
        "pollingInterval",
        "cooldownPeriod",
        "minReplicaCount",
        "maxReplicaCount",
        "advanced",
        "fallback",
        "idleReplicaCount",
    ] {
        if let Some(v) = spec.get(key).filter(|v| !v.is_null()) {
            new_spec.insert(key.into(), v.clone());
        }
    }
    new_spec.insert("triggers".into(), Value::Array(triggers));
    if let Some(name) = new_spec
        .get_mut("advanced")
        .and_then(|a| a.get_mut("horizontalPodAutoscalerConfig"))
        .and_then(|h| h.get_mut("name"))
        .filter(|n| n.as_str().is_some_and(|s| !s.is_empty()))
    {
        let primary = format!("{}{PRIMARY_SUFFIX}", name.as_str().unwrap_or_default());
        *name = json!(primary);
    }
    let (min, max) = scaler_replicas(canary);
    if let Some(min) = min {
        new_spec.insert("minReplicaCount".into(), json!(min));
    }
    if let Some(max) = max {
        new_spec.insert("maxReplicaCount".into(), json!(max));
    }

    let labels = without_toolkit(Some(&string_map(source["metadata"].get("labels"))));
    let mut annotations = without_toolkit(Some(&string_map(source["metadata"].get("annotations"))));
    annotations.remove(KEDA_PAUSED_REPLICAS);
    let name = format!(
        "{}{PRIMARY_SUFFIX}",
        source["metadata"]["name"].as_str().unwrap_or_default()
    );
    json!({
        "apiVersion": source["apiVersion"],
        "kind": "ScaledObject",
        "metadata": {
            "name": name,
            "namespace": canary.metadata.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner],
        },
        "spec": new_spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::owner;

    fn canary(autoscaler: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "autoscalerRef": autoscaler,
                "service": {"port": 9898},
                "analysis": {"interval": "1m", "threshold": 5, "iterations": 5}
            }
        }))
        .unwrap()
    }

    #[test]
    fn queries_are_rewritten_to_the_primary() {
        assert_eq!(
            rewrite_query(r#"sum(rate(http_requests_total{app="podinfo"}[1m]))"#, "podinfo"),
            r#"sum(rate(http_requests_total{app="podinfo-primary"}[1m]))"#
        );
        assert_eq!(
            rewrite_query(r#"x{app="podinfo-canary"} + y{app="podinfo"}"#, "podinfo"),
            r#"x{app="podinfo-primary"} + y{app="podinfo-primary"}"#
        );
        assert_eq!(rewrite_query("no match here", "podinfo"), "no match here");
    }

    #[test]
    fn the_primary_hpa_scales_the_primary_with_overrides() {
        let c = canary(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo",
            "primaryScalerReplicas": {"minReplicas": 3}}),
        );
        let source: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": "podinfo", "labels": {"app": "podinfo", "kustomize.toolkit.fluxcd.io/name": "x"},
                         "annotations": {"note": "not copied"}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                     "minReplicas": 2, "maxReplicas": 4,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                  "target": {"type": "Utilization", "averageUtilization": 99}}}]}
        }))
        .unwrap();
        let hpa = primary_hpa(&c, &source, owner("podinfo"));
        assert_eq!(hpa.metadata.name.as_deref(), Some("podinfo-primary"));
        assert_eq!(
            hpa.metadata.labels,
            Some(BTreeMap::from([("app".to_string(), "podinfo".to_string())]))
        );
        assert_eq!(hpa.metadata.annotations, None);
        assert_eq!(hpa.spec.scale_target_ref.name, "podinfo-primary");
        assert_eq!(hpa.spec.scale_target_ref.kind, "Deployment");
        assert_eq!(
            hpa.spec.min_replicas,
            Some(3),
            "primaryScalerReplicas.minReplicas wins"
        );
        assert_eq!(hpa.spec.max_replicas, 4);
        assert_eq!(hpa.spec.metrics, source.spec.metrics);
    }

    fn scaled_object() -> Value {
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "podinfo-so", "labels": {"app": "podinfo"},
                         "annotations": {KEDA_PAUSED_REPLICAS: "0", "scaledobject.keda.sh/transfer-hpa-ownership": "true"}},
            "spec": {
                "scaleTargetRef": {"name": "podinfo", "envSourceContainerName": "app"},
                "pollingInterval": 10, "cooldownPeriod": 20, "minReplicaCount": 1, "maxReplicaCount": 3,
                "advanced": {"horizontalPodAutoscalerConfig": {"name": "custom-hpa"}},
                "triggers": [
                    {"type": "prometheus", "name": "rps",
                     "metadata": {"serverAddress": "http://prom:9090", "query": "sum(rate(x{app=\"podinfo\"}[1m]))"}},
                    {"type": "cpu", "metadata": {"value": "50"}}
                ]
            }
        })
    }

    #[test]
    fn the_primary_scaled_object_scales_the_primary_with_rewritten_queries() {
        let c =
            canary(json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo-so"}));
        let so = primary_scaled_object(&c, &scaled_object(), owner("podinfo"));
        assert_eq!(so["metadata"]["name"], "podinfo-so-primary");
        assert_eq!(
            so["metadata"]["annotations"],
            json!({"scaledobject.keda.sh/transfer-hpa-ownership": "true"})
        );
        assert_eq!(
            so["spec"]["scaleTargetRef"],
            json!({"name": "podinfo-primary", "envSourceContainerName": "app"})
        );
        assert_eq!(
            so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"],
            "custom-hpa-primary"
        );
        assert_eq!(so["spec"]["pollingInterval"], 10);
        assert_eq!(
            so["spec"]["triggers"][0]["metadata"]["query"],
            "sum(rate(x{app=\"podinfo-primary\"}[1m]))"
        );
        assert_eq!(
            so["spec"]["triggers"][0]["metadata"]["serverAddress"],
            "http://prom:9090"
        );
        assert_eq!(
            so["spec"]["triggers"][1],
            json!({"type": "cpu", "metadata": {"value": "50"}})
        );
        assert_eq!(so["metadata"]["ownerReferences"][0]["kind"], "Canary");
    }

    #[test]
    fn primary_scaler_queries_and_replicas_override() {
        let c = canary(
            json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo-so",
            "primaryScalerQueries": {"rps": "sum(rate(y[1m]))"},
            "primaryScalerReplicas": {"minReplicas": 2, "maxReplicas": 9}}),
        );
        let so = primary_scaled_object(&c, &scaled_object(), owner("podinfo"));
        assert_eq!(so["spec"]["triggers"][0]["metadata"]["query"], "sum(rate(y[1m]))");
        assert_eq!(so["spec"]["minReplicaCount"], 2);
        assert_eq!(so["spec"]["maxReplicaCount"], 9);
    }
}
