//! Calling a canary's webhooks for the state machine.

use flagger_api::{Canary, CanaryPhase};
use flagger_webhooks::payload::CanaryWebhookPayload;

use crate::context::Context;

/// Calls webhook number `index` of the canary's analysis with `phase` in the payload. `Err` carries
/// Flagger's error text for the events (`... check <hook> failed <text>`).
pub async fn call(ctx: &Context, canary: &Canary, index: usize, phase: CanaryPhase) -> Result<(), String> {
    let Some(hook) = canary.analysis().and_then(|a| a.webhooks().get(index)) else {
        return Err(format!("webhook {index} not found"));
    };
    let payload = CanaryWebhookPayload::new(canary, phase, hook);
    match ctx.webhooks.call(hook, &payload).await {
        Ok(()) => Ok(()),
        Err(e) => {
            ctx.metrics.inc_webhook_failure(hook.hook_type().as_str());
            tracing::debug!(hook = %hook.name, error = %e, "webhook failed");
            Err(e.flagger_message())
        }
    }
}
