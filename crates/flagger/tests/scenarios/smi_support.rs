//! Support for scenarios routed through SMI TrafficSplits: the CRD and the TrafficSplit's weights.

use kube::api::Api;
use testkit::TestNamespace;

pub use crate::support::Weights;
use crate::support::namespace_with_crds;

/// The SMI TrafficSplit CRD (a test fixture of the SMI router).
pub const TRAFFIC_SPLIT_CRD: &str =
    include_str!("../../../flagger-controller/testdata/crds/smi-trafficsplit.yaml");

/// A namespace with Flagger's CRDs and the SMI TrafficSplit CRD.
pub async fn smi_namespace(prefix: &str) -> TestNamespace {
    namespace_with_crds(prefix, TRAFFIC_SPLIT_CRD).await
}

fn backend_weight(ts: &kube::api::DynamicObject, service: &str) -> Option<i64> {
    ts.data["spec"]["backends"].as_array()?.iter().find_map(|b| {
        if b["service"] != service {
            return None;
        }
        match &b["weight"] {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
    })
}

impl Weights {
    /// Starts recording the weights of the TrafficSplit `podinfo` (version `version` of split.smi-spec.io).
    pub fn record(ns: &TestNamespace, version: &str) -> Self {
        let gvk = kube::api::GroupVersionKind::gvk("split.smi-spec.io", version, "TrafficSplit");
        let resource = kube::api::ApiResource::from_gvk(&gvk);
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
        Self::watch(api, "podinfo", |ts| {
            Some((
                backend_weight(ts, "podinfo-primary")?,
                backend_weight(ts, "podinfo-canary")?,
            ))
        })
    }
}
