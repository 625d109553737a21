//! Service targets (§2.8, non-Knative `kind: Service`): `<target>-canary` and `<target>-primary` copies, a
//! change of the Service spec is a new revision, and promotion copies the spec into the primary.

use flagger_api::CanaryPhase as P;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use testkit::kube::{apply_yaml, poll};

use crate::support::*;

fn spec_selector(s: &Service) -> std::collections::BTreeMap<String, String> {
    s.spec.as_ref().unwrap().selector.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_target_is_copied_and_its_new_spec_promoted() {
    let ns = namespace("svctarget").await;
    apply_yaml(
        &ns.client,
        &ns.name,
        r#"
apiVersion: v1
kind: Service
metadata:
  name: backend
  labels: {app: backend}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"kind":"Service"}'
    team: payments
spec:
  selector: {app: backend-v1}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#,
    )
    .await
    .unwrap();
    let yaml = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: backend
spec:
  provider: kubernetes
  targetRef: {apiVersion: v1, kind: Service, name: backend}
  service: {port: 80}
  analysis:
    interval: 10s
    threshold: 2
    iterations: 1
";
    apply_canary(&ns, yaml).await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    let initialized = wait_phase(&ns, "backend", P::Initialized, RELEASE).await;
    assert!(
        initialized
            .status
            .as_ref()
            .unwrap()
            .last_applied_spec
            .as_deref()
            .is_some_and(|h| h.starts_with("frs1-")),
        "{}",
        op.logs()
    );

    let services: Api<Service> = ns.api();
    for copy in ["backend-canary", "backend-primary"] {
        let svc = services.get(copy).await.unwrap();
        assert_eq!(spec_selector(&svc)["app"], "backend-v1", "{copy}");
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.ports.as_ref().unwrap()[0].port, 80);
        assert_ne!(
            spec.cluster_ip,
            services.get("backend").await.unwrap().spec.unwrap().cluster_ip
        );
        let annotations = svc.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.get("team").map(String::as_str), Some("payments"));
        assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert_eq!(svc.metadata.owner_references.as_ref().unwrap()[0].kind, "Canary");
    }
    // No generated apex Service: the kubernetes router does nothing for Service targets.
    assert_eq!(
        spec_selector(&services.get("backend").await.unwrap())["app"],
        "backend-v1"
    );

    // A new Service spec is a new revision: the canary copy follows at once, the primary at promotion.
    services
        .patch(
            "backend",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"selector": {"app": "backend-v2"}}})),
        )
        .await
        .unwrap();
    wait_phase(&ns, "backend", P::Progressing, RELEASE).await;
    poll("the canary copy to follow the target", RELEASE, || async {
        let sel = spec_selector(&services.get("backend-canary").await?);
        Ok(if sel["app"] == "backend-v2" {
            Ok(())
        } else {
            Err(sel)
        })
    })
    .await
    .unwrap();
    assert_eq!(
        spec_selector(&services.get("backend-primary").await.unwrap())["app"],
        "backend-v1"
    );
    wait_phase(&ns, "backend", P::Succeeded, RELEASE).await;
    assert_eq!(
        spec_selector(&services.get("backend-primary").await.unwrap())["app"],
        "backend-v2",
        "{}",
        op.logs()
    );
}
