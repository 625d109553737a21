//! Table tests of one tick: the phase table (§2.3), weights (§2.4), A/B and blue/green (§2.5), rollback
//! and failed promotion (§2.6), webhooks (§5.2), status rules (§1.2).

use std::time::Duration;

use flagger_api::{AlertSeverity, CanaryPhase as P, ConditionStatus, HookType, PROMOTED_CONDITION};
use serde_json::json;

use super::fixture::*;
use super::*;

const OLD: &str = "frs1-0000000000000001";
const NEW: &str = "frs1-0000000000000002";
const NEWER: &str = "frs1-0000000000000003";

fn canary_analysis() -> serde_json::Value {
    json!({"stepWeight": 20, "maxWeight": 50})
}

/// An input in `phase`, analysing `NEW` while the primary runs `OLD`, last ticked one interval ago.
fn progressing(analysis: serde_json::Value, phase: P, weight: i32) -> Input {
    let mut s = status(phase, NEW, OLD);
    s.canary_weight = Some(weight);
    let mut input = Input::new(canary(analysis), NEW).with_status(s);
    input.routes = Routes {
        primary: 100 - weight,
        canary: weight,
        mirrored: false,
    };
    input.last_tick = Some(at(T0 - 60));
    input
}

fn actions_without_infrastructure(plan: &Plan) -> Vec<Action> {
    plan.actions
        .iter()
        .filter(|a| {
            !matches!(
                a,
                Action::InitializeServices
                    | Action::EnsurePrimary
                    | Action::ReconcileApexService
                    | Action::ReconcileMeshRouter
                    | Action::CheckMetricProviders
                    | Action::ReconcilePrimaryScaler { init: true }
            )
        })
        .cloned()
        .collect()
}

fn write_status_index(plan: &Plan) -> usize {
    plan.actions
        .iter()
        .position(|a| *a == Action::WriteStatus)
        .expect("a status write")
}

// ----- initialization -----

#[test]
fn a_new_canary_is_initialized_in_one_tick_when_the_primary_is_ready() {
    let input = Input::new(canary(canary_analysis()), OLD);
    let (requests, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(requests.is_empty());
    assert_eq!(
        plan.actions,
        vec![
            Action::WriteStatus,
            Action::InitializeServices,
            Action::CheckMetricProviders,
            Action::EnsurePrimary,
            Action::ReconcileApexService,
            Action::ScaleToZero,
            Action::ReconcileMeshRouter,
            Action::WriteStatus,
            Action::Event(Event::normal("Initialization done! podinfo.test")),
            Action::Alert(Alert {
                severity: AlertSeverity::Info,
                message: "New Deployment detected, initialization completed.".to_owned(),
                with_metadata: true,
            }),
        ]
        .into_iter()
        .skip(1)
        .collect::<Vec<_>>()
    );
    let s = plan.status.expect("status");
    assert_eq!(s.phase(), P::Initialized);
    assert_eq!(s.last_applied_spec.as_deref(), Some(OLD));
    assert_eq!(s.last_promoted_spec.as_deref(), Some(OLD));
    assert_eq!(
        (s.canary_weight, s.failed_checks, s.iterations),
        (Some(0), Some(0), Some(0))
    );
    let c = s.condition(PROMOTED_CONDITION).expect("condition");
    assert_eq!(
        (c.status, c.reason.as_str()),
        (ConditionStatus::True, "Initialized")
    );
    assert_eq!(s.last_transition_time.map(|t| t.0), Some(at(T0)));
    // Initialized is idle: no timer.
    assert_eq!((plan.tick, plan.requeue_after), (None, None));
}

#[test]
fn initializing_waits_for_the_primary_and_rolls_back_past_its_deadline() {
    let mut input = Input::new(canary(canary_analysis()), OLD);
    input.primary = Readiness::NotReady {
        message: "waiting for rollout to finish: observed deployment generation less than desired generation"
            .to_owned(),
        retriable: true,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        warnings(&plan),
        vec![
            "podinfo-primary.test not ready: waiting for rollout to finish: observed deployment generation less than desired generation"
        ]
    );
    assert_eq!(new_phase(&plan), Some(P::Initializing));
    assert!(!plan.actions.contains(&Action::ScaleToZero));
    assert_eq!(plan.tick, Some(at(T0)));
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(60)));

    input.primary = Readiness::NotReady {
        message: "deployment \"podinfo-primary\" exceeded its progress deadline".to_owned(),
        retriable: false,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(new_phase(&plan), Some(P::Failed));
    assert!(plan.actions.contains(&Action::ScaleToZero));
    assert!(messages(&plan).contains(&"Canary failed! Scaling down podinfo.test".to_owned()));
}

#[test]
fn an_initialized_canary_with_an_autoscaler_pauses_it() {
    let mut c = canary(canary_analysis());
    c.spec.autoscaler_ref = Some(
        serde_json::from_value(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}),
        )
        .expect("ref"),
    );
    let (_, plan) = drive(&Input::new(c, OLD), &Script::ok(), at(T0));
    let pos = |a: &Action| plan.actions.iter().position(|x| x == a).expect("action");
    assert!(pos(&Action::ReconcilePrimaryScaler { init: true }) < pos(&Action::PauseTargetScaler));
    assert!(pos(&Action::PauseTargetScaler) < pos(&Action::ScaleToZero));
}

#[test]
fn app_mesh_reconciles_its_router_before_the_primary() {
    // Both App Mesh versions (so the primary's pods find their virtual node); other providers after it.
    for (provider, mesh_first) in [
        (MeshProvider::AppMeshV1beta2, true),
        (MeshProvider::AppMesh, true),
        (MeshProvider::Linkerd, false),
    ] {
        let mut input = Input::new(canary(canary_analysis()), OLD);
        input.provider = provider.clone();
        let (_, plan) = drive(&input, &Script::ok(), at(T0));
        let pos = |a: &Action| plan.actions.iter().position(|x| x == a).expect("action");
        assert_eq!(
            pos(&Action::ReconcileMeshRouter) < pos(&Action::EnsurePrimary),
            mesh_first,
            "{provider:?}"
        );
        assert_eq!(
            plan.actions
                .iter()
                .filter(|a| **a == Action::ReconcileMeshRouter)
                .count(),
            1,
            "{provider:?}"
        );
    }
}

// ----- change detection -----

#[test]
fn idle_phases_without_a_change_write_nothing_and_are_not_requeued() {
    for phase in [P::Initialized, P::Succeeded, P::Failed] {
        let input = Input::new(canary(canary_analysis()), OLD).with_status(status(phase, OLD, OLD));
        let (requests, plan) = drive(&input, &Script::ok(), at(T0));
        assert!(requests.is_empty(), "{phase}");
        assert_eq!(plan.status, None, "{phase}");
        assert_eq!((plan.tick, plan.requeue_after), (None, None), "{phase}");
        assert!(plan.events().next().is_none(), "{phase}");
    }
}

#[test]
fn a_target_reverted_to_the_promoted_spec_starts_nothing() {
    // Succeeded: lastApplied is NEW (an old change), promoted OLD, the target is back at OLD.
    let input = Input::new(canary(canary_analysis()), OLD).with_status(status(P::Succeeded, NEW, OLD));
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(plan.status, None);
    assert!(!plan.actions.contains(&Action::ScaleFromZero));

    // Failed re-syncs lastAppliedSpec to the current target every time, and starts nothing.
    let input = Input::new(canary(canary_analysis()), OLD).with_status(status(P::Failed, NEW, OLD));
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    let s = plan.status.expect("resynced");
    assert_eq!(s.phase(), P::Failed);
    assert_eq!(s.last_applied_spec.as_deref(), Some(OLD));
    assert!(!plan.actions.contains(&Action::ScaleFromZero));
}

#[test]
fn a_failed_release_is_not_retried_until_a_new_change() {
    // The failed spec NEW is still the target: lastAppliedSpec already holds it.
    let input = Input::new(canary(canary_analysis()), NEW).with_status(status(P::Failed, NEW, OLD));
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(plan.status, None);
    // A newer change starts a run.
    let input = Input::new(canary(canary_analysis()), NEWER).with_status(status(P::Failed, NEW, OLD));
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(new_phase(&plan), Some(P::Progressing));
    assert_eq!(
        plan.status.and_then(|s| s.last_applied_spec).as_deref(),
        Some(NEWER)
    );
}

#[test]
fn a_new_revision_starts_progressing_at_once() {
    for phase in [P::Initialized, P::Succeeded, P::Failed] {
        let mut input = Input::new(canary(canary_analysis()), NEW).with_status(status(phase, OLD, OLD));
        // Ticked a second ago: a change does not wait for the interval.
        input.last_tick = Some(at(T0 - 1));
        let (requests, plan) = drive(&input, &Script::ok(), at(T0));
        assert!(requests.is_empty());
        assert_eq!(
            actions_without_infrastructure(&plan),
            vec![
                Action::Event(Event::normal("New revision detected! Scaling up podinfo.test")),
                Action::Alert(Alert {
                    severity: AlertSeverity::Info,
                    message: "New revision detected, progressing canary analysis.".to_owned(),
                    with_metadata: true,
                }),
                Action::ScaleFromZero,
                Action::WriteStatus,
            ],
            "{phase}"
        );
        let s = plan.status.expect("status");
        assert_eq!(s.phase(), P::Progressing);
        assert_eq!(s.last_applied_spec.as_deref(), Some(NEW));
        assert_eq!(s.last_promoted_spec.as_deref(), Some(OLD));
        assert_eq!(plan.tick, Some(at(T0)));
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(60)));
    }
}

#[test]
fn a_tracked_config_change_is_a_new_revision() {
    let mut s = status(P::Succeeded, OLD, OLD);
    s.tracked_configs = Some([("configmap/podinfo".to_owned(), "aaaa".to_owned())].into());
    let mut input = Input::new(canary(canary_analysis()), OLD).with_status(s);
    input.target.configs = Some([("configmap/podinfo".to_owned(), "bbbb".to_owned())].into());
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    let s = plan.status.expect("status");
    assert_eq!(s.phase(), P::Progressing);
    assert_eq!(
        s.tracked_configs
            .and_then(|c| c.get("configmap/podinfo").cloned())
            .as_deref(),
        Some("bbbb")
    );
}

// ----- confirm-rollout -----

#[test]
fn a_closed_confirm_rollout_gate_waits_and_an_open_one_progresses() {
    let analysis = json!({"stepWeight": 20, "webhooks": [hook("gate", "confirm-rollout")]});
    let input = Input::new(canary(analysis.clone()), NEW).with_status(status(P::Succeeded, OLD, OLD));
    let closed = Script::ok().fail("gate");
    let (requests, plan) = drive(&input, &closed, at(T0));
    assert_eq!(
        requests,
        vec![Request::Webhook {
            index: 0,
            name: "gate".to_owned(),
            hook_type: HookType::ConfirmRollout,
            phase: P::Succeeded,
        }]
    );
    assert_eq!(
        actions_without_infrastructure(&plan),
        vec![
            Action::WriteStatus,
            Action::Event(Event::warning(
                "Halt podinfo.test advancement waiting for approval gate"
            )),
            Action::Alert(Alert {
                severity: AlertSeverity::Warn,
                message: "Canary is waiting for approval.".to_owned(),
                with_metadata: false,
            }),
        ]
    );
    let waiting = plan.status.expect("status");
    assert_eq!(waiting.phase(), P::Waiting);
    let c = waiting.condition(PROMOTED_CONDITION).expect("condition");
    assert_eq!(
        (c.status, c.message.as_deref()),
        (ConditionStatus::Unknown, Some("Waiting for approval."))
    );

    // Still closed next interval: no event, no write.
    let mut input = input.with_status(waiting);
    input.last_tick = Some(at(T0));
    let (requests, plan) = drive(&input, &closed, at(T0 + 60));
    assert_eq!(requests.len(), 1);
    assert!(plan.events().next().is_none());
    assert_eq!(plan.status, None);
    assert_eq!(plan.tick, Some(at(T0 + 60)));

    // Called before the interval: nothing, not even the gate.
    let (requests, plan) = drive(&input, &closed, at(T0 + 30));
    assert!(requests.is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(30)));
    assert!(plan.actions.is_empty());

    // Open: progressing, and the gate's phase is Waiting.
    let (requests, plan) = drive(&input, &Script::ok(), at(T0 + 60));
    assert!(matches!(
        &requests[0],
        Request::Webhook {
            phase: P::Waiting,
            ..
        }
    ));
    assert_eq!(
        messages(&plan),
        vec![
            "Confirm-rollout check gate passed",
            "New revision detected! Scaling up podinfo.test"
        ]
    );
    assert_eq!(new_phase(&plan), Some(P::Progressing));
}

#[test]
fn a_muted_gate_sends_no_alert() {
    let mut gate = hook("gate", "confirm-rollout");
    gate["muteAlert"] = json!(true);
    let input = Input::new(canary(json!({"stepWeight": 20, "webhooks": [gate]})), NEW).with_status(status(
        P::Succeeded,
        OLD,
        OLD,
    ));
    let (_, plan) = drive(&input, &Script::ok().fail("gate"), at(T0));
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::Alert(_))));
    assert_eq!(new_phase(&plan), Some(P::Waiting));
}

// ----- tick timing -----

#[test]
fn an_early_call_only_requeues() {
    let input = progressing(canary_analysis(), P::Progressing, 20);
    let (requests, plan) = drive(&input, &Script::ok(), at(T0 - 20));
    assert!(requests.is_empty());
    assert_eq!(
        plan,
        Plan {
            requeue_after: Some(Duration::from_secs(20)),
            ..Plan::default()
        }
    );
}

#[test]
fn a_status_write_keeps_last_transition_time_when_nothing_changed() {
    // WaitingPromotion with the gate still closed and iterations already N-1: a tick with no change.
    let analysis = json!({"iterations": 3, "webhooks": [hook("promote", "confirm-promotion")]});
    let mut input = progressing(analysis, P::WaitingPromotion, 0);
    let mut s = input.canary.status.clone().expect("status");
    s.iterations = Some(3);
    input.canary.status = Some(s.clone());
    let (_, plan) = drive(&input, &Script::ok().fail("promote"), at(T0));
    let written = plan.status.expect("iterations go back to N-1");
    assert_eq!(written.iterations, Some(2));
    assert_eq!(written.last_transition_time.map(|t| t.0), Some(at(T0)));

    s.iterations = Some(2);
    input.canary.status = Some(s);
    input.routes = Routes::PRIMARY;
    let (_, plan) = drive(&input, &Script::ok().fail("promote"), at(T0));
    // iterations 2 < 3: one more iteration (a real change).
    assert_eq!(plan.status.and_then(|s| s.iterations), Some(3));
}

#[test]
fn a_suspended_canary_records_an_event_every_tick_and_nothing_else() {
    let mut input = progressing(canary_analysis(), P::Progressing, 20);
    input.canary.spec.suspend = Some(true);
    let (requests, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(requests.is_empty());
    assert_eq!(
        plan.actions,
        vec![Action::Event(Event::normal(
            "skipping canary run as object is suspended"
        ))]
    );
    assert_eq!(plan.status, None);
    assert_eq!(plan.tick, Some(at(T0)));
    let (_, early) = drive(&input, &Script::ok(), at(T0 - 10));
    assert!(early.actions.is_empty());
    assert_eq!(early.requeue_after, Some(Duration::from_secs(10)));
}

// ----- analysis ticks -----

#[test]
fn the_first_analysis_tick_runs_pre_rollout_and_the_first_step_without_metrics() {
    let analysis = json!({"stepWeight": 20, "webhooks": [
        hook("pre", "pre-rollout"), hook("load", "rollout"), hook("more", "confirm-traffic-increase")
    ]});
    let input = progressing(analysis, P::Progressing, 0);
    let (requests, plan) = drive(&input, &Script::ok(), at(T0));
    let kinds: Vec<(HookType, P)> = requests
        .iter()
        .map(|r| match r {
            Request::Webhook { hook_type, phase, .. } => (*hook_type, *phase),
            Request::Metrics => panic!("no metrics on the first step"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (HookType::PreRollout, P::Progressing),
            (HookType::ConfirmTrafficIncrease, P::Progressing)
        ]
    );
    assert_eq!(
        messages(&plan),
        vec![
            "Starting canary analysis for podinfo.test",
            "Pre-rollout check pre passed",
            "Confirm-traffic-increase check more passed",
            "Advance podinfo.test canary weight 20",
        ]
    );
    assert_eq!(
        plan.routes().collect::<Vec<_>>(),
        vec![Routes {
            primary: 80,
            canary: 20,
            mirrored: false
        }]
    );
    let s = plan.status.clone().expect("status");
    assert_eq!((s.phase(), s.canary_weight), (P::Progressing, Some(20)));
    // The status write comes after SetRoutes and before the Advance event.
    let w = write_status_index(&plan);
    assert!(matches!(plan.actions[w - 1], Action::SetRoutes(_)));
    assert!(matches!(plan.actions[w + 1], Action::Event(_)));
}

#[test]
fn a_failed_pre_rollout_hook_adds_one_failed_check_and_stops() {
    let analysis =
        json!({"stepWeight": 20, "webhooks": [hook("pre1", "pre-rollout"), hook("pre2", "pre-rollout")]});
    let input = progressing(analysis, P::Progressing, 0);
    let (requests, plan) = drive(&input, &Script::ok().fail("pre1"), at(T0));
    assert_eq!(requests.len(), 1);
    assert_eq!(
        warnings(&plan),
        vec!["Halt podinfo.test advancement pre-rollout check pre1 failed 500"]
    );
    assert_eq!(plan.routes().count(), 0);
    assert_eq!(plan.status.and_then(|s| s.failed_checks), Some(1));
}

#[test]
fn the_first_failing_rollout_hook_stops_the_metrics() {
    let analysis = json!({"stepWeight": 20, "webhooks": [
        {"name": "untyped", "url": "http://hooks/untyped"}, hook("load", "rollout")
    ]});
    let mut input = progressing(analysis, P::Progressing, 20);
    let mut s = input.canary.status.clone().expect("status");
    s.failed_checks = Some(2);
    input.canary.status = Some(s);
    let (requests, plan) = drive(&input, &Script::ok().fail("untyped"), at(T0));
    assert_eq!(requests.len(), 1);
    assert_eq!(
        warnings(&plan),
        vec!["Halt podinfo.test advancement external check untyped failed 500"]
    );
    assert_eq!(plan.routes().count(), 0);
    assert_eq!(plan.status.and_then(|s| s.failed_checks), Some(3));
}

#[test]
fn failed_metrics_add_a_failed_check_and_keep_the_weights() {
    let input = progressing(canary_analysis(), P::Progressing, 20);
    let script = Script {
        metrics_ok: false,
        ..Script::ok()
    };
    let (requests, plan) = drive(&input, &script, at(T0));
    assert_eq!(requests, vec![Request::Metrics]);
    assert_eq!(plan.routes().count(), 0);
    assert_eq!(warnings(&plan).len(), 1);
    assert_eq!(plan.status.and_then(|s| s.failed_checks), Some(1));
}

#[test]
fn successes_never_reset_failed_checks() {
    let mut input = progressing(canary_analysis(), P::Progressing, 20);
    let mut s = input.canary.status.clone().expect("status");
    s.failed_checks = Some(4);
    input.canary.status = Some(s);
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    let s = plan.status.expect("status");
    assert_eq!((s.failed_checks, s.canary_weight), (Some(4), Some(40)));
}

#[test]
fn the_threshold_is_checked_at_the_start_of_the_tick() {
    for (failed, rolls_back) in [(4, false), (5, true), (6, true)] {
        let mut input = progressing(canary_analysis(), P::Progressing, 40);
        let mut s = input.canary.status.clone().expect("status");
        s.failed_checks = Some(failed);
        input.canary.status = Some(s);
        let (requests, plan) = drive(&input, &Script::ok(), at(T0));
        assert_eq!(new_phase(&plan) == Some(P::Failed), rolls_back, "{failed}");
        if rolls_back {
            assert!(requests.is_empty(), "no checks once the threshold is reached");
            assert_eq!(
                actions_without_infrastructure(&plan),
                vec![
                    Action::Event(Event::warning(format!(
                        "Rolling back podinfo.test failed checks threshold reached {failed}"
                    ))),
                    Action::Alert(Alert {
                        severity: AlertSeverity::Error,
                        message: format!("Failed checks threshold reached {failed}"),
                        with_metadata: false,
                    }),
                    Action::SetRoutes(Routes::PRIMARY),
                    Action::Event(Event::warning("Canary failed! Scaling down podinfo.test")),
                    Action::ScaleToZero,
                    Action::WriteStatus,
                    Action::Metric(MetricUpdate::Failure {
                        deployment_strategy: "canary",
                        analysis_status: "completed",
                    }),
                    Action::RunPostRolloutHooks { phase: P::Failed },
                ]
            );
            let s = plan.status.expect("status");
            assert_eq!(
                (s.canary_weight, s.failed_checks, s.iterations),
                (Some(0), Some(0), Some(0))
            );
            let c = s.condition(PROMOTED_CONDITION).expect("condition");
            assert_eq!(
                (c.status, c.message.as_deref()),
                (
                    ConditionStatus::False,
                    Some("Canary analysis failed, Deployment scaled to zero.")
                )
            );
        }
    }
}

#[test]
fn a_canary_past_its_progress_deadline_rolls_back_with_the_deadline_alert() {
    let mut input = progressing(canary_analysis(), P::Progressing, 20);
    input.canary_workload = Readiness::NotReady {
        message: "deployment \"podinfo\" exceeded its progress deadline".to_owned(),
        retriable: false,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        warnings(&plan),
        vec![
            "canary deployment podinfo.test not ready: deployment \"podinfo\" exceeded its progress deadline",
            "Rolling back podinfo.test progress deadline exceeded deployment \"podinfo\" exceeded its progress deadline",
            "Canary failed! Scaling down podinfo.test"
        ]
    );
    assert_eq!(new_phase(&plan), Some(P::Failed));
    // Flagger's alert for this case is unreachable there; here it fires, once, and no threshold alert.
    let alerts: Vec<_> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Alert(alert) => Some((alert.severity, alert.message.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        alerts,
        vec![(
            AlertSeverity::Error,
            "Progress deadline exceeded deployment \"podinfo\" exceeded its progress deadline"
        )]
    );

    input.canary_workload = Readiness::NotReady {
        message: "waiting for rollout to finish: 0 of 1 updated replicas are available".to_owned(),
        retriable: true,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(plan.status, None);
    assert_eq!(plan.routes().count(), 0);
}

#[test]
fn a_new_revision_mid_analysis_restarts_at_once() {
    for phase in [P::Progressing, P::WaitingPromotion] {
        let mut input = progressing(canary_analysis(), phase, 40);
        input.target.spec_hash = NEWER.to_owned();
        // One second after the last tick: does not wait for the interval.
        input.last_tick = Some(at(T0 - 1));
        let (requests, plan) = drive(&input, &Script::ok(), at(T0));
        assert!(requests.is_empty());
        assert_eq!(
            actions_without_infrastructure(&plan),
            vec![
                Action::Event(Event::normal(
                    "New revision detected! Restarting analysis for podinfo.test"
                )),
                Action::SetRoutes(Routes::PRIMARY),
                Action::WriteStatus,
            ]
        );
        let s = plan.status.expect("status");
        assert_eq!(
            (s.phase(), s.canary_weight, s.failed_checks, s.iterations),
            (P::Progressing, Some(0), Some(0), Some(0))
        );
        assert_eq!(s.last_applied_spec.as_deref(), Some(NEWER));
    }
}

// ----- gates during analysis -----

#[test]
fn a_closed_traffic_increase_gate_halts_without_a_failed_check() {
    let analysis = json!({"stepWeight": 20, "webhooks": [hook("more", "confirm-traffic-increase")]});
    let input = progressing(analysis, P::Progressing, 20);
    let (_, plan) = drive(&input, &Script::ok().fail("more"), at(T0));
    assert_eq!(
        warnings(&plan),
        vec!["Halt podinfo.test advancement waiting for traffic increase approval more"]
    );
    assert!(plan.actions.contains(&Action::Alert(Alert {
        severity: AlertSeverity::Warn,
        message: "Canary traffic increase is waiting for approval.".to_owned(),
        with_metadata: false,
    })));
    assert_eq!(plan.status, None);
    assert_eq!(plan.routes().count(), 0);
}

#[test]
fn the_traffic_increase_gate_also_guards_the_promotion_tick() {
    let analysis =
        json!({"stepWeight": 20, "maxWeight": 50, "webhooks": [hook("more", "confirm-traffic-increase")]});
    let input = progressing(analysis, P::Progressing, 60);
    let (requests, plan) = drive(&input, &Script::ok().fail("more"), at(T0));
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0], Request::Metrics);
    assert!(matches!(
        requests[1],
        Request::Webhook {
            hook_type: HookType::ConfirmTrafficIncrease,
            ..
        }
    ));
    assert!(!plan.actions.contains(&Action::Promote));
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(plan.actions.contains(&Action::Promote));
}

#[test]
fn confirm_promotion_closed_waits_for_promotion_and_open_promotes() {
    let analysis =
        json!({"stepWeight": 20, "maxWeight": 50, "webhooks": [hook("promote", "confirm-promotion")]});
    let input = progressing(analysis, P::Progressing, 60);
    let closed = Script::ok().fail("promote");
    let (requests, plan) = drive(&input, &closed, at(T0));
    assert!(matches!(
        requests.last(),
        Some(Request::Webhook {
            hook_type: HookType::ConfirmPromotion,
            phase: P::Progressing,
            ..
        })
    ));
    assert_eq!(
        warnings(&plan),
        vec!["Halt podinfo.test advancement waiting for promotion approval promote"]
    );
    let s = plan.status.expect("status");
    // setStatusPhase(WaitingPromotion): weight 0, iterations = analysis.iterations - 1.
    assert_eq!(
        (s.phase(), s.canary_weight, s.iterations),
        (P::WaitingPromotion, Some(0), Some(-1))
    );

    // WaitingPromotion: metrics keep running, the router still holds 60.
    let mut waiting = input.clone().with_status(s);
    waiting.last_tick = Some(at(T0));
    let (requests, plan) = drive(&waiting, &closed, at(T0 + 60));
    assert_eq!(requests[0], Request::Metrics);
    assert!(plan.events().next().is_none());
    let (_, plan) = drive(&waiting, &Script::ok(), at(T0 + 60));
    assert_eq!(
        messages(&plan),
        vec![
            "Confirm-promotion check promote passed",
            "Copying podinfo.test template spec to podinfo-primary.test"
        ]
    );
    assert!(plan.actions.contains(&Action::Promote));
    assert_eq!(new_phase(&plan), Some(P::Promoting));
}

#[test]
fn a_rollback_hook_that_succeeds_rolls_back() {
    let analysis = json!({"stepWeight": 20, "webhooks": [hook("rb1", "rollback"), hook("rb2", "rollback")]});
    let input = progressing(analysis, P::Progressing, 20);
    let (requests, plan) = drive(&input, &Script::ok().fail("rb1"), at(T0));
    assert_eq!(requests.len(), 2);
    assert!(matches!(
        requests[0],
        Request::Webhook {
            phase: P::Progressing,
            hook_type: HookType::Rollback,
            ..
        }
    ));
    assert_eq!(
        messages(&plan)[..4],
        [
            "Rollback hook rb1 not signaling a rollback",
            "Rollback check rb2 passed",
            "Rolling back podinfo.test manual webhook invoked",
            "Canary failed! Scaling down podinfo.test",
        ]
    );
    assert_eq!(new_phase(&plan), Some(P::Failed));
    assert!(plan.actions.contains(&Action::ScaleToZero));

    let (requests, plan) = drive(&input, &Script::ok().fail("rb1").fail("rb2"), at(T0));
    assert_eq!(requests.len(), 3, "both rollback hooks, then the metrics");
    assert_eq!(new_phase(&plan), Some(P::Progressing));
}

// ----- weights -----

#[test]
fn canary_steps_overshoot_max_weight_and_promote_one_tick_after() {
    let cases = [(0, Some(20)), (20, Some(40)), (40, Some(60))];
    for (weight, next) in cases {
        let input = progressing(canary_analysis(), P::Progressing, weight);
        let (_, plan) = drive(&input, &Script::ok(), at(T0));
        assert_eq!(plan.status.and_then(|s| s.canary_weight), next, "{weight}");
    }
    let input = progressing(canary_analysis(), P::Progressing, 60);
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(plan.routes().count(), 0);
    assert_eq!(
        actions_without_infrastructure(&plan),
        vec![
            Action::Event(Event::normal(
                "Copying podinfo.test template spec to podinfo-primary.test"
            )),
            Action::Promote,
            Action::WriteStatus,
        ]
    );
    let s = plan.status.expect("status");
    assert_eq!((s.phase(), s.canary_weight), (P::Promoting, Some(60)));
}

#[test]
fn step_weights_follow_the_ladder_and_ignore_max_weight() {
    let analysis = json!({"stepWeights": [1, 2, 10, 80], "maxWeight": 5});
    for (weight, next) in [(0, 1), (1, 2), (2, 10), (10, 80), (7, 100)] {
        let input = progressing(analysis.clone(), P::Progressing, weight);
        let (_, plan) = drive(&input, &Script::ok(), at(T0));
        assert_eq!(
            plan.routes().last().map(|r| (r.primary, r.canary)),
            Some((100 - next, next)),
            "{weight}"
        );
    }
}

#[test]
fn a_zero_step_weight_never_advances() {
    let input = progressing(json!({"maxWeight": 50}), P::Progressing, 0);
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(plan.routes().count(), 0);
    assert!(!plan.actions.contains(&Action::Promote));
}

#[test]
fn mirroring_takes_one_mirrored_step_before_the_first_weight() {
    let analysis = json!({"stepWeight": 10, "mirror": true});
    let input = progressing(analysis.clone(), P::Progressing, 0);
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        plan.routes().collect::<Vec<_>>(),
        vec![Routes {
            primary: 100,
            canary: 0,
            mirrored: true
        }]
    );
    assert_eq!(plan.status.and_then(|s| s.canary_weight), None, "weight stays 0");
    let mut input = progressing(analysis, P::Progressing, 0);
    input.routes.mirrored = true;
    let (requests, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(requests, vec![Request::Metrics], "mirrored traffic is analysed");
    assert_eq!(
        plan.routes().collect::<Vec<_>>(),
        vec![Routes {
            primary: 90,
            canary: 10,
            mirrored: false
        }]
    );
}

#[test]
fn promotion_shifts_traffic_back_by_step_weight_promotion() {
    let analysis = json!({"stepWeight": 20, "stepWeightPromotion": 30});
    let input = progressing(analysis.clone(), P::Promoting, 60);
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        plan.routes().collect::<Vec<_>>(),
        vec![Routes {
            primary: 70,
            canary: 30,
            mirrored: false
        }]
    );
    assert_eq!(messages(&plan), vec!["Advance podinfo.test primary weight 70"]);
    let s = plan.status.expect("status");
    assert_eq!((s.phase(), s.canary_weight), (P::Promoting, Some(30)));

    let mut input = progressing(analysis, P::Promoting, 30);
    input.routes = Routes {
        primary: 70,
        canary: 30,
        mirrored: false,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(plan.routes().last(), Some(Routes::PRIMARY));
    let s = plan.status.expect("status");
    assert_eq!((s.phase(), s.canary_weight), (P::Finalising, Some(0)));
}

#[test]
fn promotion_without_step_weight_promotion_routes_everything_at_once() {
    let input = progressing(canary_analysis(), P::Promoting, 60);
    let (requests, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(requests.is_empty(), "no checks while promoting");
    assert_eq!(messages(&plan), vec!["Routing all traffic to primary"]);
    assert_eq!(plan.routes().collect::<Vec<_>>(), vec![Routes::PRIMARY]);
    assert_eq!(new_phase(&plan), Some(P::Finalising));
}

#[test]
fn promoting_waits_for_the_primary_rollout() {
    let mut input = progressing(canary_analysis(), P::Promoting, 60);
    input.primary = Readiness::NotReady {
        message: "waiting for rollout to finish: 1 old replicas are pending termination".to_owned(),
        retriable: true,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        warnings(&plan),
        vec![
            "podinfo-primary.test not ready: waiting for rollout to finish: 1 old replicas are pending termination"
        ]
    );
    assert_eq!(plan.status, None);
    assert_eq!(plan.routes().count(), 0);
}

#[test]
fn a_primary_failing_during_promotion_routes_all_traffic_to_the_canary() {
    for phase in [P::Promoting, P::Finalising] {
        let mut input = progressing(canary_analysis(), phase, 60);
        input.primary = Readiness::NotReady {
            message: "deployment \"podinfo-primary\" exceeded its progress deadline".to_owned(),
            retriable: false,
        };
        let (_, plan) = drive(&input, &Script::ok(), at(T0));
        let err =
            "podinfo-primary.test not ready: deployment \"podinfo-primary\" exceeded its progress deadline";
        assert_eq!(
            actions_without_infrastructure(&plan),
            vec![
                Action::Event(Event::warning(err)),
                Action::Event(Event::warning(format!(
                    "Promotion of podinfo.test failed, primary not ready: {err}"
                ))),
                Action::Alert(Alert {
                    severity: AlertSeverity::Error,
                    message: format!("Promotion failed, primary not ready: {err}"),
                    with_metadata: false,
                }),
                Action::SetRoutes(Routes {
                    primary: 0,
                    canary: 100,
                    mirrored: false
                }),
                Action::WriteStatus,
                Action::Metric(MetricUpdate::Failure {
                    deployment_strategy: "canary",
                    analysis_status: "completed",
                }),
                Action::RunPostRolloutHooks { phase: P::Failed },
            ],
            "{phase}"
        );
        let s = plan.status.expect("status");
        assert_eq!((s.phase(), s.canary_weight), (P::Failed, Some(100)));
    }
    // In Progressing, the same primary failure rolls back.
    let mut input = progressing(canary_analysis(), P::Progressing, 40);
    input.primary = Readiness::NotReady {
        message: "deployment \"podinfo-primary\" exceeded its progress deadline".to_owned(),
        retriable: false,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(plan.actions.contains(&Action::ScaleToZero));
    assert_eq!(plan.routes().last(), Some(Routes::PRIMARY));
}

#[test]
fn finalising_scales_down_and_succeeds() {
    let analysis = json!({"stepWeight": 20, "webhooks": [hook("post", "post-rollout")]});
    let input = progressing(analysis, P::Finalising, 0);
    let (requests, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(requests.is_empty());
    assert_eq!(
        actions_without_infrastructure(&plan),
        vec![
            Action::ScaleToZero,
            Action::WriteStatus,
            Action::Metric(MetricUpdate::Success {
                deployment_strategy: "canary",
                analysis_status: "completed",
            }),
            Action::RunPostRolloutHooks { phase: P::Succeeded },
            Action::Event(Event::normal("Promotion completed! Scaling down podinfo.test")),
            Action::Alert(Alert {
                severity: AlertSeverity::Info,
                message: "Canary analysis completed successfully, promotion finished.".to_owned(),
                with_metadata: false,
            }),
        ]
    );
    let s = plan.status.expect("status");
    assert_eq!(s.phase(), P::Succeeded);
    assert_eq!(s.last_promoted_spec.as_deref(), Some(NEW));
    let c = s.condition(PROMOTED_CONDITION).expect("condition");
    assert_eq!(
        (c.status, c.reason.as_str()),
        (ConditionStatus::True, "Succeeded")
    );
    assert_eq!((plan.tick, plan.requeue_after), (None, None));
}

#[test]
fn skip_analysis_promotes_without_checks() {
    let mut input = progressing(canary_analysis(), P::Progressing, 0);
    input.canary.spec.skip_analysis = Some(true);
    let (requests, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(requests.is_empty());
    assert_eq!(
        actions_without_infrastructure(&plan),
        vec![
            Action::SetRoutes(Routes::PRIMARY),
            Action::Event(Event::normal(
                "Copying podinfo.test template spec to podinfo-primary.test"
            )),
            Action::Promote,
            Action::ScaleToZero,
            Action::WriteStatus,
            Action::Metric(MetricUpdate::Success {
                deployment_strategy: "canary",
                analysis_status: "skipped",
            }),
            Action::RunPostRolloutHooks { phase: P::Succeeded },
            Action::Event(Event::normal(
                "Promotion completed! Canary analysis was skipped for podinfo.test"
            )),
            Action::Alert(Alert {
                severity: AlertSeverity::Info,
                message: "Canary analysis was skipped, promotion finished.".to_owned(),
                with_metadata: false,
            }),
        ]
    );
    assert_eq!(new_phase(&plan), Some(P::Succeeded));
}

// ----- A/B and blue/green -----

#[test]
fn ab_testing_routes_matched_traffic_and_counts_iterations() {
    let analysis = json!({"iterations": 2, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]});
    let mut input = progressing(analysis.clone(), P::Progressing, 0);
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        plan.routes().collect::<Vec<_>>(),
        vec![Routes {
            primary: 0,
            canary: 100,
            mirrored: false
        }]
    );
    assert_eq!(
        messages(&plan).last().map(String::as_str),
        Some("Advance podinfo.test canary iteration 1/2")
    );
    assert_eq!(plan.status.and_then(|s| s.iterations), Some(1));

    let mut s = status(P::Progressing, NEW, OLD);
    s.iterations = Some(2);
    input = input.with_status(s);
    input.routes = Routes {
        primary: 0,
        canary: 100,
        mirrored: false,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(plan.actions.contains(&Action::Promote));
    assert_eq!(new_phase(&plan), Some(P::Promoting));
}

#[test]
fn blue_green_with_mirroring_mirrors_then_switches_then_promotes() {
    let analysis = json!({"iterations": 2, "mirror": true});
    let input = progressing(analysis.clone(), P::Progressing, 0);
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        plan.routes().collect::<Vec<_>>(),
        vec![Routes {
            primary: 100,
            canary: 0,
            mirrored: true
        }]
    );
    let mut s = status(P::Progressing, NEW, OLD);
    s.iterations = Some(2);
    let mut input = progressing(analysis, P::Progressing, 0).with_status(s);
    input.routes.mirrored = true;
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        messages(&plan),
        vec!["Stop traffic mirroring and route all traffic to canary"]
    );
    assert_eq!(
        plan.routes().collect::<Vec<_>>(),
        vec![Routes {
            primary: 0,
            canary: 100,
            mirrored: false
        }]
    );
    assert_eq!(plan.status.and_then(|s| s.iterations), Some(3));
}

#[test]
fn blue_green_waiting_promotion_alternates_iterations() {
    let analysis = json!({"iterations": 3, "webhooks": [hook("promote", "confirm-promotion")]});
    let closed = Script::ok().fail("promote");
    let mut s = status(P::WaitingPromotion, NEW, OLD);
    s.iterations = Some(2);
    let mut input = Input::new(canary(analysis), NEW).with_status(s);
    input.last_tick = Some(at(T0 - 60));
    let (_, plan) = drive(&input, &closed, at(T0));
    assert_eq!(plan.status.clone().and_then(|s| s.iterations), Some(3));
    input.canary.status = plan.status;
    let (_, plan) = drive(&input, &closed, at(T0));
    assert_eq!(plan.status.and_then(|s| s.iterations), Some(2));
}

#[test]
fn the_kubernetes_provider_turns_ab_and_canary_into_blue_green() {
    let analysis = json!({"stepWeight": 20});
    let mut input = progressing(analysis, P::Progressing, 0);
    input.provider = MeshProvider::Kubernetes;
    // The no-op router reports 100/0 before the first iteration whatever the observed routes.
    input.routes = Routes {
        primary: 0,
        canary: 100,
        mirrored: false,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        warnings(&plan),
        vec![
            "Progressive traffic is not supported when using the kubernetes provider",
            "Setting canaryAnalysis.iterations: 10"
        ]
    );
    assert_eq!(
        messages(&plan).last().map(String::as_str),
        Some("Advance podinfo.test canary iteration 1/10")
    );

    let analysis = json!({"iterations": 2, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]});
    let mut input = progressing(analysis, P::Progressing, 0);
    input.provider = MeshProvider::Kubernetes;
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        warnings(&plan),
        vec!["A/B testing is not supported when using the kubernetes provider"]
    );
    assert_eq!(plan.routes().count(), 0, "blue/green never mirrors on kubernetes");
}

#[test]
fn kubernetes_promotion_finalises_at_once() {
    let mut input = progressing(json!({"iterations": 2}), P::Promoting, 0);
    input.provider = MeshProvider::Kubernetes;
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(plan.routes().count(), 0);
    assert_eq!(new_phase(&plan), Some(P::Finalising));
}

// ----- protocol -----

#[test]
fn an_answer_of_the_wrong_kind_is_an_error() {
    let analysis = json!({"stepWeight": 20, "webhooks": [hook("pre", "pre-rollout")]});
    let input = progressing(analysis, P::Progressing, 0);
    let answers = Answers::from(vec![Answer::Metrics(MetricsOutcome::default())]);
    let err = decide(&input.observed(), &answers, at(T0)).expect_err("mismatch");
    assert!(matches!(err, DecideError::AnswerMismatch { position: 0, .. }));
}

#[test]
fn daemonset_messages_use_flaggers_wording() {
    let mut input = progressing(canary_analysis(), P::Progressing, 20);
    input.canary.spec.target_ref.kind = "DaemonSet".to_owned();
    input.canary_workload = Readiness::NotReady {
        message: "waiting for rollout to finish: 0 out of 1 new pods have been updated".to_owned(),
        retriable: true,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(
        warnings(&plan),
        vec![
            "canary damonset podinfo.test not ready with retryable true: waiting for rollout to finish: 0 out of 1 new pods have been updated"
        ]
    );
}

#[test]
fn a_step_whose_status_write_was_lost_is_recorded_not_repeated() {
    // The router holds 40 but the status still says 20: the operator stopped after SetRoutes.
    let mut input = progressing(canary_analysis(), P::Progressing, 20);
    input.routes = Routes {
        primary: 60,
        canary: 40,
        mirrored: false,
    };
    let (requests, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(requests.is_empty());
    assert_eq!(plan.routes().count(), 0);
    assert_eq!(messages(&plan), vec!["Advance podinfo.test canary weight 40"]);
    assert_eq!(plan.status.and_then(|s| s.canary_weight), Some(40));
    assert_eq!(plan.tick, Some(at(T0)));
}

#[test]
fn skip_analysis_does_not_wait_for_the_primary_at_initialization() {
    let mut c = canary(canary_analysis());
    c.spec.skip_analysis = Some(true);
    let mut input = Input::new(c, OLD);
    input.primary = Readiness::NotReady {
        message: "waiting for rollout to finish: 0 of 1 updated replicas are available".to_owned(),
        retriable: true,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(new_phase(&plan), Some(P::Initialized));
    assert!(!plan.actions.contains(&Action::CheckMetricProviders));
}

#[test]
fn a_new_canary_reports_the_initializing_condition_while_it_waits() {
    let mut input = Input::new(canary(canary_analysis()), OLD);
    input.primary = Readiness::NotReady {
        message: "waiting for rollout to finish: 0 of 1 updated replicas are available".to_owned(),
        retriable: true,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    let s = plan.status.expect("status");
    let c = s.condition(PROMOTED_CONDITION).expect("condition");
    assert_eq!(
        (c.status, c.reason.as_str(), c.message.as_deref()),
        (
            ConditionStatus::Unknown,
            "Initializing",
            Some("New Deployment detected, starting initialization.")
        )
    );
    // Called again before the interval: nothing.
    let mut input = input.with_status(s);
    input.last_tick = plan.tick;
    let (_, plan) = drive(&input, &Script::ok(), at(T0 + 5));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(55)));
}

#[test]
fn waiting_promotion_rolls_back_at_the_threshold_too() {
    let mut input = progressing(canary_analysis(), P::WaitingPromotion, 0);
    input.routes = Routes {
        primary: 40,
        canary: 60,
        mirrored: false,
    };
    let mut s = input.canary.status.clone().expect("status");
    s.failed_checks = Some(5);
    input.canary.status = Some(s);
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(new_phase(&plan), Some(P::Failed));
    assert_eq!(plan.routes().last(), Some(Routes::PRIMARY));
}

#[test]
fn a_closed_confirm_rollout_gate_does_not_start_a_failed_canary_either() {
    // In Failed, the gate is called with phase Failed after lastAppliedSpec was re-synced.
    let analysis = json!({"stepWeight": 20, "webhooks": [hook("gate", "confirm-rollout")]});
    let input = Input::new(canary(analysis), NEWER).with_status(status(P::Failed, NEW, OLD));
    let (requests, plan) = drive(&input, &Script::ok().fail("gate"), at(T0));
    assert!(matches!(requests[0], Request::Webhook { phase: P::Failed, .. }));
    let s = plan.status.expect("status");
    assert_eq!(s.phase(), P::Waiting);
    assert_eq!(s.last_applied_spec.as_deref(), Some(NEWER));
}

#[test]
fn a_change_blocked_by_the_primary_is_retried_every_interval() {
    let mut input = Input::new(canary(canary_analysis()), NEW).with_status(status(P::Succeeded, OLD, OLD));
    input.primary = Readiness::NotReady {
        message: "waiting for rollout to finish: 1 old replicas are pending termination".to_owned(),
        retriable: true,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert_eq!(plan.status, None);
    assert_eq!(warnings(&plan).len(), 1);
    assert_eq!(
        (plan.tick, plan.requeue_after),
        (None, Some(Duration::from_secs(60)))
    );
}

#[test]
fn a_restart_between_ticks_waits_for_the_tick_when_the_primary_is_not_ready() {
    let mut input = progressing(canary_analysis(), P::Progressing, 40);
    input.target.spec_hash = NEWER.to_owned();
    input.last_tick = Some(at(T0 - 1));
    input.primary = Readiness::NotReady {
        message: "waiting for rollout to finish: 1 old replicas are pending termination".to_owned(),
        retriable: true,
    };
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(59)));
}

#[test]
fn hashes_written_by_go_flagger_are_rebaselined_without_starting_anything() {
    // Succeeded under Go Flagger: both hashes are Go's.
    let input = Input::new(canary(canary_analysis()), NEW).with_status(status(
        P::Succeeded,
        "5d9c8f7b4",
        "5d9c8f7b4",
    ));
    let (requests, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(requests.is_empty());
    assert!(!plan.actions.contains(&Action::ScaleFromZero));
    let s = plan.status.expect("rebaselined");
    assert_eq!(s.phase(), P::Succeeded);
    assert_eq!(
        (s.last_applied_spec.as_deref(), s.last_promoted_spec.as_deref()),
        (Some(NEW), Some(NEW))
    );

    // Mid-analysis: no restart; the promoted hash stays until the next promotion.
    let mut input = progressing(canary_analysis(), P::Progressing, 20);
    input.canary.status = Some({
        let mut s = status(P::Progressing, "7f6b5c4d", "5d9c8f7b4");
        s.canary_weight = Some(20);
        s
    });
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(
        !messages(&plan)
            .iter()
            .any(|m| m.starts_with("New revision detected"))
    );
    let s = plan.status.expect("status");
    assert_eq!(
        (
            s.last_applied_spec.as_deref(),
            s.last_promoted_spec.as_deref(),
            s.canary_weight
        ),
        (Some(NEW), Some("5d9c8f7b4"), Some(40))
    );
}

#[test]
fn adopting_a_settled_canary_from_go_flagger_says_so_in_an_event() {
    let input = Input::new(canary(canary_analysis()), NEW).with_status(status(
        P::Succeeded,
        "5d9c8f7b4",
        "5d9c8f7b4",
    ));
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(
        messages(&plan).iter().any(|m| m.starts_with("Adopted podinfo.")
            && m.ends_with("from Flagger: its promoted revision was recorded without a new analysis")),
        "{:?}",
        messages(&plan)
    );
}

#[test]
fn a_target_changed_while_no_operator_ran_is_analysed_after_the_switch_from_go_flagger() {
    // Succeeded under Go Flagger, but the primary does not run the current target: it changed meanwhile.
    let mut input = Input::new(canary(canary_analysis()), NEW).with_status(status(
        P::Succeeded,
        "5d9c8f7b4",
        "5d9c8f7b4",
    ));
    input.primary_runs_target = false;
    let (_, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(
        messages(&plan)
            .iter()
            .any(|m| m.starts_with("New revision detected")),
        "{:?}",
        messages(&plan)
    );
    assert!(plan.actions.contains(&Action::ScaleFromZero));
    assert!(!messages(&plan).iter().any(|m| m.starts_with("Adopted")));
    let s = plan.status.expect("status");
    assert_eq!(s.phase(), P::Progressing);
    assert_eq!(s.last_applied_spec.as_deref(), Some(NEW));
}

#[test]
fn a_terminating_canary_is_left_to_the_finalizer() {
    let input = Input::new(canary(canary_analysis()), NEW).with_status(status(P::Terminating, OLD, OLD));
    let (requests, plan) = drive(&input, &Script::ok(), at(T0));
    assert!(requests.is_empty());
    assert_eq!(plan, Plan::default());
}

#[test]
fn last_tick_is_read_from_status_last_tick_time() {
    assert_eq!(last_tick(None), None);
    let mut s = status(P::Progressing, OLD, OLD);
    assert_eq!(last_tick(Some(&s)), None);
    s.last_tick_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(T0 - 30)));
    assert_eq!(last_tick(Some(&s)), Some(at(T0 - 30)));
    let parsed: flagger_api::CanaryStatus =
        serde_json::from_value(json!({"lastTickTime": "2023-11-14T22:12:50Z"})).expect("status");
    assert_eq!(last_tick(Some(&parsed)), Some(at(T0 - 30)));
}
