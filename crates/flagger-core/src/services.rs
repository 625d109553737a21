//! The three ClusterIP Services of a Deployment or DaemonSet canary (Flagger 1.44 §2.11), as pure builders:
//!
//! | Service | selects pods with | metadata from |
//! | --- | --- | --- |
//! | `<svc>-canary` | `<key>: <value>` (the target's pods) | `spec.service.canary` |
//! | `<svc>-primary` | `<key>: <value>-primary` | `spec.service.primary` |
//! | `<svc>` (apex) | `<key>: <value>-primary` | `spec.service.apex` |
//!
//! `<key>`/`<value>` is the target's selector label, `<svc>` the service name (`spec.service.name`, or the
//! target's name).

use std::collections::BTreeMap;

use flagger_api::{Canary, CustomMetadata};
use k8s_openapi::api::core::v1::{Container, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::primary::PRIMARY_SUFFIX;

/// Annotations on every object Flagger generates, so Flux does not revert what the operator changes.
pub const TOOLKIT_ANNOTATIONS: [(&str, &str); 2] = [
    ("kustomize.toolkit.fluxcd.io/reconcile", "disabled"),
    ("helm.toolkit.fluxcd.io/driftDetection", "disabled"),
];

/// Containers whose ports are never discovered: the mesh proxies.
const SIDECARS: [&str; 2] = ["istio-proxy", "envoy"];

/// The extra ports of `spec.service.portDiscovery`: every container port of the target's pods except the
/// mesh proxies' and the service's own port, named after the container port or `tcp-<container>-<index>`.
pub fn discovered_ports(canary: &Canary, containers: &[Container]) -> BTreeMap<String, i32> {
    let service = &canary.spec.service;
    let target_port = service.target_port();
    let mut ports = BTreeMap::new();
    for container in containers.iter().filter(|c| !SIDECARS.contains(&c.name.as_str())) {
        for (i, port) in container.ports.iter().flatten().enumerate() {
            let is_service_port = match target_port.clone() {
                IntOrString::Int(n) => port.container_port == n,
                IntOrString::String(ref name) => port.name.as_deref() == Some(name.as_str()),
            };
            if is_service_port {
                continue;
            }
            let name = port
                .name
                .clone()
                .unwrap_or_else(|| format!("tcp-{}-{i}", container.name));
            ports.insert(name, port.container_port);
        }
    }
    ports
}

/// One generated Service: `name`, selecting pods labelled `selector_key: pod_selector`, owned by the Canary.
pub fn desired_service(
    canary: &Canary,
    name: &str,
    selector_key: &str,
    pod_selector: &str,
    metadata: Option<&CustomMetadata>,
    extra_ports: &BTreeMap<String, i32>,
    owner: OwnerReference,
) -> Service {
    let service = &canary.spec.service;
    let mut first = ServicePort {
        name: Some(service.port_name().to_string()),
        protocol: Some("TCP".into()),
        port: service.port,
        target_port: Some(service.target_port()),
        ..Default::default()
    };
    first.app_protocol = service.app_protocol.clone().filter(|p| !p.is_empty());
    let mut ports = vec![first];
    ports.extend(extra_ports.iter().map(|(name, port)| ServicePort {
        name: Some(name.clone()),
        protocol: Some("TCP".into()),
        port: *port,
        target_port: Some(IntOrString::Int(*port)),
        ..Default::default()
    }));

    let mut labels = metadata.and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(selector_key.to_string(), name.to_string());
    let mut annotations = metadata.and_then(|m| m.annotations.clone()).unwrap_or_default();
    for (k, v) in TOOLKIT_ANNOTATIONS {
        annotations.insert(k.to_string(), v.to_string());
    }

    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: canary.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(BTreeMap::from([(
                selector_key.to_string(),
                pod_selector.to_string(),
            )])),
            ports: Some(ports),
            cluster_ip: service.headless.unwrap_or(false).then(|| "None".to_string()),
            traffic_distribution: service.traffic_distribution.clone().filter(|t| !t.is_empty()),
            ..Default::default()
        }),
        status: None,
    }
}

/// The canary, primary and apex Services, in that order.
pub fn desired_services(
    canary: &Canary,
    selector_key: &str,
    selector_value: &str,
    extra_ports: &BTreeMap<String, i32>,
    owner: &OwnerReference,
) -> [Service; 3] {
    let service = &canary.spec.service;
    let primary_value = format!("{selector_value}{PRIMARY_SUFFIX}");
    let build = |name: String, selector: &str, metadata: Option<&CustomMetadata>| {
        desired_service(
            canary,
            &name,
            selector_key,
            selector,
            metadata,
            extra_ports,
            owner.clone(),
        )
    };
    [
        build(
            canary.canary_service_name(),
            selector_value,
            service.canary.as_ref(),
        ),
        build(
            canary.primary_service_name(),
            &primary_value,
            service.primary.as_ref(),
        ),
        build(
            canary.service_name().to_string(),
            &primary_value,
            service.apex.as_ref(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ContainerPort;

    use super::*;
    use crate::test_support::owner;

    fn canary(service: serde_json::Value) -> Canary {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": service,
                "analysis": {"interval": "1m", "threshold": 5, "iterations": 5}
            }
        }))
        .unwrap()
    }

    fn port(name: Option<&str>, n: i32) -> ContainerPort {
        ContainerPort {
            name: name.map(String::from),
            container_port: n,
            ..Default::default()
        }
    }

    #[test]
    fn three_services_select_the_canary_and_the_primary() {
        let c = canary(serde_json::json!({"port": 9898}));
        let [canary_svc, primary_svc, apex] =
            desired_services(&c, "app", "podinfo", &BTreeMap::new(), &owner("podinfo"));
        let name_and_selector = |s: &Service| {
            (
                s.metadata.name.clone().unwrap(),
                s.spec.as_ref().unwrap().selector.clone().unwrap()["app"].clone(),
            )
        };
        assert_eq!(
            name_and_selector(&canary_svc),
            ("podinfo-canary".into(), "podinfo".into())
        );
        assert_eq!(
            name_and_selector(&primary_svc),
            ("podinfo-primary".into(), "podinfo-primary".into())
        );
        assert_eq!(
            name_and_selector(&apex),
            ("podinfo".into(), "podinfo-primary".into())
        );

        let spec = apex.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(
            spec.ports.unwrap(),
            vec![ServicePort {
                name: Some("http".into()),
                protocol: Some("TCP".into()),
                port: 9898,
                target_port: Some(IntOrString::Int(9898)),
                ..Default::default()
            }]
        );
        assert_eq!(spec.cluster_ip, None);
        let labels = apex.metadata.labels.unwrap();
        assert_eq!(
            labels,
            BTreeMap::from([("app".to_string(), "podinfo".to_string())])
        );
        let annotations = apex.metadata.annotations.unwrap();
        assert_eq!(annotations["kustomize.toolkit.fluxcd.io/reconcile"], "disabled");
        assert_eq!(annotations["helm.toolkit.fluxcd.io/driftDetection"], "disabled");
        assert_eq!(apex.metadata.owner_references, Some(vec![owner("podinfo")]));
    }

    #[test]
    fn service_options_shape_the_spec_and_metadata() {
        let c = canary(serde_json::json!({
            "name": "frontend", "port": 80, "targetPort": "http", "portName": "web", "appProtocol": "http",
            "headless": true, "trafficDistribution": "PreferClose",
            "apex": {"labels": {"team": "a"}, "annotations": {"note": "apex"}},
            "canary": {"annotations": {"note": "canary"}}
        }));
        let [canary_svc, primary_svc, apex] =
            desired_services(&c, "app", "podinfo", &BTreeMap::new(), &owner("podinfo"));
        assert_eq!(apex.metadata.name.as_deref(), Some("frontend"));
        assert_eq!(primary_svc.metadata.name.as_deref(), Some("frontend-primary"));
        let spec = apex.spec.clone().unwrap();
        let first = &spec.ports.as_ref().unwrap()[0];
        assert_eq!(first.name.as_deref(), Some("web"));
        assert_eq!(first.target_port, Some(IntOrString::String("http".into())));
        assert_eq!(first.app_protocol.as_deref(), Some("http"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.traffic_distribution.as_deref(), Some("PreferClose"));
        let labels = apex.metadata.labels.unwrap();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels["app"], "frontend");
        assert_eq!(apex.metadata.annotations.unwrap()["note"], "apex");
        assert_eq!(canary_svc.metadata.annotations.unwrap()["note"], "canary");
        assert!(!primary_svc.metadata.annotations.unwrap().contains_key("note"));
    }

    #[test]
    fn port_discovery_skips_proxies_and_the_service_port() {
        let c = canary(serde_json::json!({"port": 9898, "portDiscovery": true}));
        let containers = vec![
            Container {
                name: "podinfod".into(),
                ports: Some(vec![
                    port(Some("http"), 9898),
                    port(Some("grpc"), 9999),
                    port(None, 8080),
                ]),
                ..Default::default()
            },
            Container {
                name: "istio-proxy".into(),
                ports: Some(vec![port(Some("envoy"), 15090)]),
                ..Default::default()
            },
        ];
        let ports = discovered_ports(&c, &containers);
        assert_eq!(
            ports,
            BTreeMap::from([("grpc".to_string(), 9999), ("tcp-podinfod-2".to_string(), 8080)])
        );
        let [svc, ..] = desired_services(&c, "app", "podinfo", &ports, &owner("podinfo"));
        let names: Vec<_> = svc
            .spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| p.name.unwrap())
            .collect();
        assert_eq!(names, ["http", "grpc", "tcp-podinfod-2"]);
    }

    #[test]
    fn a_named_target_port_is_excluded_from_discovery_by_name() {
        let c = canary(serde_json::json!({"port": 80, "targetPort": "http"}));
        let containers = vec![Container {
            name: "app".into(),
            ports: Some(vec![port(Some("http"), 9898), port(Some("metrics"), 9797)]),
            ..Default::default()
        }];
        assert_eq!(
            discovered_ports(&c, &containers),
            BTreeMap::from([("metrics".to_string(), 9797)])
        );
    }
}
