//! Pure logic of flagger-rs. Nothing in this crate performs I/O.
//!
//! - [`duration`]: Go duration strings, parsed exactly as Flagger parses them.
//! - [`provider`]: provider names (traffic, metric and alert providers) with Flagger's matching rules.
//! - [`validate`]: semantic validation of Canary, MetricTemplate and AlertProvider objects.
//! - [`hash`]: revision hashes (`lastAppliedSpec`) and Flagger's config checksums (`trackedConfigs`).
//! - [`autoscaler`]: the primary's HorizontalPodAutoscaler or KEDA ScaledObject.
//! - [`config`]: config tracking: referenced ConfigMaps/Secrets, their `-primary` copies, change detection.
//! - [`primary`]: the `<target>-primary` Deployment built from its target.
//! - [`services`]: the apex, primary and canary Services of a Deployment or DaemonSet canary.
//! - [`readiness`]: whether a Deployment or DaemonSet is rolled out and available, Flagger's rules.
//! - [`weights`]: the traffic weight ladder of a progressive release (stepWeight, stepWeights, maxWeight).
//! - [`machine`]: the canary state machine, a pure step function from what was observed to a plan (decide).
//! - [`document`]: checking one manifest document: typed parsing with field paths, unknown fields, validation.

pub mod autoscaler;
pub mod config;
pub mod document;
pub mod duration;
pub mod goflag;
pub mod hash;
pub mod machine;
pub mod primary;
pub mod provider;
pub mod readiness;
pub mod services;
pub mod validate;
pub mod weights;

#[cfg(test)]
mod test_support {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    /// The controller reference a Canary named `name` puts on the objects it generates.
    pub(crate) fn owner(name: &str) -> OwnerReference {
        OwnerReference {
            api_version: "flagger.app/v1beta1".into(),
            kind: "Canary".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}
