//! Snapshots of what the SMI routers (linkerd, osm, `smi:v1alpha3:istio`) and the Knative router write
//! (pure builders, no cluster): the TrafficSplit at initialisation and its backends at the 25% and 50%
//! steps, and the traffic block of a Knative Service at the same steps.
#![allow(clippy::unwrap_used)]

use flagger_api::Canary;
use flagger_controller::knative;
use flagger_controller::router::smi::{self, SmiRouter};
use flagger_core::machine::Routes;
use flagger_core::provider::MeshProvider;
use serde_json::json;

const UID: &str = "5d1b4c4e-0000-4000-8000-000000000003";

fn canary(provider: &str) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": UID},
        "spec": {
            "provider": provider,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "gateways": ["public-gateway.istio-system.svc.cluster.local", "mesh"]},
            "analysis": {"interval": "15s", "threshold": 2, "maxWeight": 50, "stepWeight": 25},
        },
    }))
    .unwrap()
}

fn weights(canary: i32) -> Routes {
    Routes {
        primary: 100 - canary,
        canary,
        mirrored: false,
    }
}

/// The TrafficSplit at init and the backends at 25% and 50%, for one provider string.
fn traffic_split(provider: &str, name: &str) {
    let c = canary(provider);
    let router = SmiRouter::for_provider(&MeshProvider::parse(provider).unwrap());
    insta::assert_yaml_snapshot!(format!("{name}_init"), router.desired(&c));
    for step in [25, 50] {
        insta::assert_yaml_snapshot!(
            format!("{name}_step_{step}_backends"),
            smi::backends(router.version(), &c, weights(step))
        );
    }
}

#[test]
fn linkerd_v1alpha1_quantity_weights() {
    traffic_split("linkerd", "linkerd");
}

#[test]
fn osm_v1alpha2_integer_weights() {
    traffic_split("osm", "osm");
}

#[test]
fn smi_v1alpha3_for_istio_with_the_gateways_annotation() {
    traffic_split("smi:v1alpha3:istio", "smi_v1alpha3_istio");
}

#[test]
fn knative_service_traffic() {
    for step in [0, 25, 50, 100] {
        let w = weights(step);
        insta::assert_yaml_snapshot!(
            format!("knative_traffic_{step}"),
            json!({"spec": {"traffic": knative::traffic("podinfo-00001", w.primary, w.canary)}})
        );
    }
}
