//! Every valid manifest of the compatibility corpus is accepted by a real kube-apiserver with the CRDs
//! `flagger crds` generates, with strict field validation (no field silently pruned).

use std::path::Path;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use testkit::{TestNamespace, install_crds};

#[tokio::test]
async fn every_valid_corpus_manifest_is_accepted_by_the_api_server() {
    let ns = TestNamespace::new("corpus").await.unwrap();
    install_crds(&ns.client, &flagger_api::crds()).await.unwrap();

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/corpus/valid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut checked = 0;
    let mut rejected = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        for (index, mut doc) in docs.into_iter().enumerate() {
            if doc["apiVersion"] != flagger_api::API_VERSION {
                continue;
            }
            let kind = doc["kind"].as_str().unwrap().to_string();
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            // Cross-namespace references stay as written; the object itself goes into the test namespace.
            doc["metadata"]["namespace"] = serde_json::json!(ns.name);
            let gvk = GroupVersionKind::gvk(flagger_api::GROUP, flagger_api::VERSION, &kind);
            let api: Api<DynamicObject> =
                Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk));
            let params = PatchParams::apply("corpus").dry_run().validation_strict();
            if let Err(e) = api.patch(&name, &params, &Patch::Apply(&doc)).await {
                rejected.push(format!("{}:{index}: {kind}/{name}: {e}", file.display()));
            }
            checked += 1;
        }
    }
    assert!(
        rejected.is_empty(),
        "the API server rejected valid manifests:\n{}",
        rejected.join("\n")
    );
    assert!(checked >= 50, "only {checked} documents checked");
}
