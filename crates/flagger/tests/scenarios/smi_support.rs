//! Support for scenarios routed through SMI TrafficSplits: the CRD and a recorder of the weights.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher;
use testkit::TestNamespace;
use testkit::kube::install_crds;

use crate::support::namespace;

/// The SMI TrafficSplit CRD (a test fixture of the SMI router).
pub const TRAFFIC_SPLIT_CRD: &str =
    include_str!("../../../flagger-controller/testdata/crds/smi-trafficsplit.yaml");

/// A namespace with Flagger's CRDs and the SMI TrafficSplit CRD.
pub async fn smi_namespace(prefix: &str) -> TestNamespace {
    let ns = namespace(prefix).await;
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_saphyr::from_str(TRAFFIC_SPLIT_CRD).unwrap();
    install_crds(&ns.client, &[crd]).await.unwrap();
    ns
}

/// Records every distinct `(primary, canary)` weight pair of the TrafficSplit `podinfo`, from a watch: the
/// routes as the operator wrote them, in order.
#[derive(Clone, Default)]
pub struct Weights(Arc<Mutex<Vec<(i64, i64)>>>);

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
    /// Starts watching the TrafficSplit `podinfo` (version `version` of split.smi-spec.io).
    pub fn record(ns: &TestNamespace, version: &str) -> Self {
        let weights = Self::default();
        let gvk = kube::api::GroupVersionKind::gvk("split.smi-spec.io", version, "TrafficSplit");
        let resource = kube::api::ApiResource::from_gvk(&gvk);
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
        let w = weights.clone();
        let mut stream = watcher::watch_object(api, "podinfo").boxed();
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let Ok(Some(ts)) = item else { continue };
                let (Some(p), Some(c)) = (
                    backend_weight(&ts, "podinfo-primary"),
                    backend_weight(&ts, "podinfo-canary"),
                ) else {
                    continue;
                };
                let mut all = w.0.lock().unwrap();
                if all.last() != Some(&(p, c)) {
                    all.push((p, c));
                }
            }
        });
        weights
    }

    /// Every weight pair seen, in order.
    pub fn pairs(&self) -> Vec<(i64, i64)> {
        self.0.lock().unwrap().clone()
    }

    /// The primary weights seen, in order.
    pub fn primary(&self) -> Vec<i64> {
        self.pairs().iter().map(|(p, _)| *p).collect()
    }

    /// Waits until a weight pair satisfies `check`.
    pub async fn wait(&self, what: &str, timeout: Duration, check: impl Fn((i64, i64)) -> bool) {
        testkit::kube::poll(what, timeout, || async {
            let pairs = self.pairs();
            Ok(if pairs.iter().any(|p| check(*p)) {
                Ok(())
            } else {
                Err(pairs)
            })
        })
        .await
        .unwrap();
    }
}
