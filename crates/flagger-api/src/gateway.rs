//! Gateway API-shaped references a Canary carries in `spec.service` for the `gatewayapi` providers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A parent (normally a `Gateway`) that the generated `HTTPRoute` attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group of the parent; empty means the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "gateway.networking.k8s.io"))]
    #[schemars(
        length(max = 253),
        regex(pattern = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub group: Option<String>,

    /// Kind of the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Gateway"))]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
    )]
    pub kind: Option<String>,

    /// Namespace of the parent; defaults to the Canary's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,

    /// Name of the parent.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Name of a section of the parent, e.g. a Gateway listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub section_name: Option<String>,

    /// Port of the parent to attach to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Mirrors every request of the route to another backend (responses from the mirror are ignored).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestMirrorFilter {
    /// The backend that receives the mirrored requests.
    pub backend_ref: BackendObjectReference,
}

/// A backend of a route, normally a Service and port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "message": "Must have port for Service reference",
    "rule": "(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true"
}]))]
pub struct BackendObjectReference {
    /// API group of the backend; empty means the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ""))]
    #[schemars(
        length(max = 253),
        regex(pattern = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub group: Option<String>,

    /// Kind of the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Service"))]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
    )]
    pub kind: Option<String>,

    /// Name of the backend.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Namespace of the backend; defaults to the Canary's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,

    /// Port of the backend; required when the backend is a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}
