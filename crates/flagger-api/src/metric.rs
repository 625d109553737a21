//! The `MetricTemplate` resource: a reusable query against a metrics provider.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::ResourceCondition;

/// Metric provider used when `provider.type` is not one Flagger knows.
pub const DEFAULT_METRIC_PROVIDER: &str = "prometheus";

/// Desired state of a MetricTemplate: a query, and the provider that runs it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "MetricTemplate",
    plural = "metrictemplates",
    singular = "metrictemplate",
    namespaced,
    status = "MetricTemplateStatus",
    category = "all",
    annotation("helm.sh/resource-policy", "keep"),
    derive = "PartialEq",
    doc = "MetricTemplate is a query against a metrics provider (Prometheus, Datadog, CloudWatch, ...) that \
           Canaries reference in their analysis; the result is compared with the canary's threshold range.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider.type")
)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateSpec {
    /// The metrics provider that runs the query.
    pub provider: MetricTemplateProvider,

    /// The query. `{{ name }}`, `{{ namespace }}`, `{{ target }}`, `{{ service }}`, `{{ ingress }}`,
    /// `{{ route }}`, `{{ interval }}` and `{{ variables.<key> }}` are replaced with the canary's values.
    pub query: String,
}

/// A metrics provider and how to reach it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateProvider {
    /// Kind of provider.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = [
        "prometheus", "influxdb", "datadog", "externalmetrics", "stackdriver", "cloudwatch", "newrelic",
        "graphite", "dynatrace", "keptn", "splunk"
    ]))]
    pub type_: String,

    /// API address of the provider, e.g. `http://prometheus.monitoring:9090`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,

    /// HTTP headers sent with every query (Prometheus only), replacing the default headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, Vec<String>>>,

    /// Secret (in the template's namespace) with the provider's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,

    /// Cloud region of the provider (CloudWatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Skip TLS certificate verification of the provider address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

impl MetricTemplateProvider {
    /// Whether TLS verification is skipped (`insecureSkipVerify`).
    pub fn insecure_skip_verify(&self) -> bool {
        self.insecure_skip_verify == Some(true)
    }
}

/// A reference to a Secret in the referring object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret.
    pub name: String,
}

/// Observed state of a MetricTemplate. Flagger declares it but never writes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateStatus {
    /// Conditions of this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ResourceCondition>>,
}
