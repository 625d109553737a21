//! Scenario tests: the machine driven tick by tick against the in-memory [`World`] of the fixtures, and
//! property tests of its invariants.

use flagger_api::{CanaryPhase as P, ConditionStatus, HookType, PROMOTED_CONDITION};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::fixture::*;
use super::*;

const OLD: &str = "frs1-00000000000000a1";
const NEW: &str = "frs1-00000000000000b2";
const NEWER: &str = "frs1-00000000000000c3";

/// The phases the canary went through, without repeats.
fn phases(world: &World) -> Vec<P> {
    let mut out: Vec<P> = Vec::new();
    for p in &world.phase_log {
        if out.last() != Some(p) {
            out.push(*p);
        }
    }
    out
}

/// Ticks until the canary leaves the analysis (Succeeded or Failed), at most `max` ticks.
fn run_to_end(world: &mut World, max: usize) {
    for _ in 0..max {
        world.tick();
        if matches!(world.phase(), P::Succeeded | P::Failed) {
            return;
        }
    }
    panic!("still {} after {max} ticks", world.phase());
}

/// Primary weights, starting with the 100 that the router holds before the release.
fn primary_weights(world: &World) -> Vec<i32> {
    let mut w = vec![100];
    w.extend(world.primary_weights());
    w
}

fn release(analysis: Value) -> World {
    let mut world = World::initialized(canary(analysis), OLD);
    world.deploy(NEW);
    world.call();
    assert_eq!(world.phase(), P::Progressing);
    world
}

#[test]
fn step_weight_20_max_weight_50_gives_primary_weights_100_80_60_40_then_promotion() {
    let mut world = release(json!({"stepWeight": 20, "maxWeight": 50}));
    run_to_end(&mut world, 20);
    assert_eq!(primary_weights(&world), vec![100, 80, 60, 40, 100]);
    assert_eq!(
        phases(&world),
        vec![
            P::Initialized,
            P::Progressing,
            P::Promoting,
            P::Finalising,
            P::Succeeded
        ]
    );
    assert_eq!(world.primary_revision, NEW);
    assert!(!world.scaled_up);
    let s = world.status();
    assert_eq!(s.last_promoted_spec.as_deref(), Some(NEW));
    let c = s.condition(PROMOTED_CONDITION).expect("condition");
    assert_eq!(c.status, ConditionStatus::True);
    // Promotion comes one tick after max weight: 60 is analysed once more.
    let copy = world
        .events
        .iter()
        .position(|e| e.starts_with("Copying"))
        .expect("copying");
    assert_eq!(world.events[copy - 1], "Advance podinfo.test canary weight 60");
}

#[test]
fn step_weights_1_2_10_80_give_primary_weights_99_98_90_20() {
    let mut world = release(json!({"stepWeights": [1, 2, 10, 80]}));
    run_to_end(&mut world, 20);
    assert_eq!(primary_weights(&world), vec![100, 99, 98, 90, 20, 100]);
    assert_eq!(world.phase(), P::Succeeded);
}

#[test]
fn step_weight_promotion_is_honoured() {
    let mut world = release(json!({"stepWeight": 50, "stepWeightPromotion": 30}));
    run_to_end(&mut world, 20);
    assert_eq!(primary_weights(&world), vec![100, 50, 0, 30, 60, 90, 100]);
    assert!(
        world
            .events
            .contains(&"Advance podinfo.test primary weight 60".to_owned())
    );
}

fn blue_green_analysis() -> Value {
    json!({"iterations": 5, "webhooks": [
        hook("gate", "confirm-rollout"),
        hook("pre", "pre-rollout"),
        hook("load", "rollout"),
        hook("post", "post-rollout"),
    ]})
}

#[test]
fn blue_green_with_five_iterations() {
    let mut world = release(blue_green_analysis());
    run_to_end(&mut world, 20);
    assert_eq!(
        phases(&world),
        vec![
            P::Initialized,
            P::Progressing,
            P::Promoting,
            P::Finalising,
            P::Succeeded
        ]
    );
    // Five iterations, one tick with all traffic on the canary, then promotion back to the primary.
    assert_eq!(
        world.route_log,
        vec![
            Routes {
                primary: 0,
                canary: 100,
                mirrored: false
            },
            Routes::PRIMARY
        ]
    );
    let iterations: Vec<&String> = world
        .events
        .iter()
        .filter(|e| e.contains("canary iteration"))
        .collect();
    assert_eq!(iterations.len(), 5);
    assert_eq!(iterations[4], "Advance podinfo.test canary iteration 5/5");
    let hooks: Vec<(HookType, P)> = world
        .requests
        .iter()
        .filter_map(|r| match r {
            Request::Webhook { hook_type, phase, .. } => Some((*hook_type, *phase)),
            Request::Metrics => None,
        })
        .collect();
    assert_eq!(hooks[0], (HookType::ConfirmRollout, P::Initialized));
    assert_eq!(hooks[1], (HookType::PreRollout, P::Progressing));
    assert!(
        hooks[2..]
            .iter()
            .all(|h| *h == (HookType::Rollout, P::Progressing))
    );
    // Iterations 2..5, the switch tick and the promotion tick run the rollout hook and the metrics.
    assert_eq!(hooks.len() - 2, 6);
    assert!(world.plans.iter().any(|p| {
        p.actions
            .contains(&Action::RunPostRolloutHooks { phase: P::Succeeded })
    }));
    assert_eq!(world.primary_revision, NEW);
    assert!(!world.scaled_up);
}

#[test]
fn blue_green_on_the_kubernetes_provider_never_sets_weights() {
    let mut world = World::initialized(canary(blue_green_analysis()), OLD);
    world.input.provider = MeshProvider::Kubernetes;
    world.deploy(NEW);
    world.call();
    run_to_end(&mut world, 20);
    assert_eq!(world.phase(), P::Succeeded);
    // Flagger still calls SetRoutes(100, 0) on its no-op router when promoting; nothing routes to the canary.
    assert!(world.route_log.iter().all(|r| r.canary == 0));
    assert!(!world.events.contains(&"Routing all traffic to canary".to_owned()));
}

#[test]
fn rollback_after_threshold_failed_rollout_hooks_then_revert_starts_nothing_and_a_new_change_does() {
    let mut world = release(json!({"stepWeight": 20, "threshold": 2, "webhooks": [hook("load", "rollout")]}));
    world.script = Script::ok().fail("load");
    run_to_end(&mut world, 10);
    assert_eq!(world.phase(), P::Failed);
    assert_eq!(primary_weights(&world), vec![100, 80, 100]);
    assert_eq!(world.input.routes, Routes::PRIMARY);
    assert!(!world.scaled_up);
    let halts = world
        .events
        .iter()
        .filter(|e| *e == "Halt podinfo.test advancement external check load failed 500")
        .count();
    assert_eq!(halts, 2);
    assert!(
        world
            .events
            .contains(&"Rolling back podinfo.test failed checks threshold reached 2".to_owned())
    );

    // Revert the target to the primary's revision: nothing starts, however often we look.
    world.script = Script::ok();
    world.deploy(OLD);
    let before = world.plans.len();
    world.call();
    for _ in 0..3 {
        world.tick();
    }
    assert_eq!(world.phase(), P::Failed);
    assert!(!world.scaled_up);
    assert!(
        world.plans[before..]
            .iter()
            .all(|p| p.routes().count() == 0 && !p.actions.contains(&Action::ScaleFromZero))
    );

    // A new change starts a run.
    world.deploy(NEWER);
    world.call();
    assert_eq!(world.phase(), P::Progressing);
    assert!(world.scaled_up);
}

#[test]
fn gates_hold_and_release_the_release() {
    let mut world = World::initialized(
        canary(json!({"stepWeight": 50, "webhooks": [
            hook("rollout-gate", "confirm-rollout"),
            hook("promotion-gate", "confirm-promotion"),
        ]})),
        OLD,
    );
    world.script = Script::ok().fail("rollout-gate").fail("promotion-gate");
    world.deploy(NEW);
    world.call();
    assert_eq!(world.phase(), P::Waiting);
    world.tick();
    assert_eq!(world.phase(), P::Waiting);
    assert!(!world.scaled_up);

    world.script = Script::ok().fail("promotion-gate");
    world.tick();
    assert_eq!(world.phase(), P::Progressing);
    for _ in 0..4 {
        world.tick();
    }
    assert_eq!(world.phase(), P::WaitingPromotion);
    assert_eq!(world.input.routes.canary, 100);
    world.tick();
    assert_eq!(world.phase(), P::WaitingPromotion);

    world.script = Script::ok();
    world.tick();
    assert_eq!(world.phase(), P::Promoting);
    run_to_end(&mut world, 5);
    assert_eq!(world.phase(), P::Succeeded);
}

#[test]
fn a_rollback_hook_answering_200_rolls_back() {
    let mut world = release(json!({"stepWeight": 20, "webhooks": [hook("rb", "rollback")]}));
    world.script = Script::ok().fail("rb");
    world.tick();
    world.tick();
    assert_eq!(world.input.routes.canary, 40);
    world.script = Script::ok();
    world.tick();
    assert_eq!(world.phase(), P::Failed);
    assert_eq!(world.input.routes, Routes::PRIMARY);
    assert!(!world.scaled_up);
    assert!(
        world
            .events
            .contains(&"Rolling back podinfo.test manual webhook invoked".to_owned())
    );
}

#[test]
fn a_new_revision_mid_analysis_restarts_the_analysis() {
    let mut world = release(json!({"stepWeight": 20, "webhooks": [hook("pre", "pre-rollout")]}));
    world.tick();
    world.tick();
    assert_eq!(world.input.routes.canary, 40);
    world.deploy(NEWER);
    world.call();
    assert_eq!(world.input.routes, Routes::PRIMARY);
    let s = world.status();
    assert_eq!(
        (s.phase(), s.canary_weight, s.last_applied_spec.as_deref()),
        (P::Progressing, Some(0), Some(NEWER))
    );
    let starts = |w: &World| {
        w.events
            .iter()
            .filter(|e| *e == "Starting canary analysis for podinfo.test")
            .count()
    };
    assert_eq!(starts(&world), 1);
    world.tick();
    assert_eq!(starts(&world), 2, "pre-rollout runs again");
    run_to_end(&mut world, 20);
    assert_eq!(world.primary_revision, NEWER);
}

#[test]
fn watch_events_between_ticks_never_take_a_step() {
    let mut world = release(json!({"stepWeight": 10}));
    world.tick();
    let routes = world.route_log.len();
    for _ in 0..5 {
        world.call();
    }
    assert_eq!(world.route_log.len(), routes);
    world.tick();
    assert_eq!(world.route_log.len(), routes + 1);
}

// ----- properties -----

fn analysis_strategy() -> impl Strategy<Value = Value> {
    let hooks = proptest::sample::subsequence(
        vec![
            ("pre", "pre-rollout"),
            ("load", "rollout"),
            ("more", "confirm-traffic-increase"),
            ("promote", "confirm-promotion"),
            ("rb", "rollback"),
            ("gate", "confirm-rollout"),
        ],
        0..=6,
    );
    let shape = prop_oneof![
        (1i32..=60, 1i32..=100).prop_map(|(s, m)| json!({"stepWeight": s, "maxWeight": m})),
        proptest::collection::btree_set(1i32..=100, 1..5)
            .prop_map(|w| json!({"stepWeights": w.into_iter().collect::<Vec<_>>()})),
        (1i32..=4).prop_map(|n| json!({"iterations": n})),
        (1i32..=4).prop_map(|n| json!({"iterations": n, "match": [{"headers": {"x": {"exact": "y"}}}]})),
    ];
    (shape, hooks, any::<bool>(), 1i32..=3, 0i32..=60).prop_map(
        |(mut shape, hooks, mirror, threshold, promotion)| {
            let map = shape.as_object_mut().expect("object");
            map.insert("mirror".into(), json!(mirror));
            map.insert("threshold".into(), json!(threshold));
            map.insert("stepWeightPromotion".into(), json!(promotion));
            map.insert(
                "webhooks".into(),
                Value::Array(hooks.into_iter().map(|(n, t)| hook(n, t)).collect()),
            );
            shape
        },
    )
}

/// One tick of a random world: which hooks fail, whether metrics pass, and what else happens.
#[derive(Clone, Debug)]
struct TickScript {
    failing: Vec<bool>,
    metrics_ok: bool,
    new_revision: bool,
    primary_broken: bool,
}

fn tick_strategy() -> impl Strategy<Value = TickScript> {
    (
        proptest::collection::vec(proptest::bool::weighted(0.3), 6),
        proptest::bool::weighted(0.8),
        proptest::bool::weighted(0.05),
        proptest::bool::weighted(0.03),
    )
        .prop_map(|(failing, metrics_ok, new_revision, primary_broken)| TickScript {
            failing,
            metrics_ok,
            new_revision,
            primary_broken,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn invariants_hold_on_random_releases(
        analysis in analysis_strategy(),
        kubernetes in proptest::bool::weighted(0.2),
        ticks in proptest::collection::vec(tick_strategy(), 1..40),
    ) {
        let mut world = World::initialized(canary(analysis), OLD);
        if kubernetes {
            world.input.provider = MeshProvider::Kubernetes;
        }
        world.deploy(NEW);
        world.call();
        for (n, t) in ticks.iter().enumerate() {
            let names = ["pre", "load", "more", "promote", "rb", "gate"];
            world.script = Script { metrics_ok: t.metrics_ok, ..Script::ok() };
            for (name, fail) in names.iter().zip(&t.failing) {
                if *fail {
                    world.script = world.script.clone().fail(name);
                }
            }
            if t.new_revision {
                world.deploy(&format!("frs1-{n:016}"));
            }
            world.input.primary = if t.primary_broken {
                Readiness::NotReady { message: "exceeded".to_owned(), retriable: false }
            } else {
                Readiness::Ready
            };
            let before = world.status();
            let routes_before = world.input.routes;

            // decide is deterministic.
            let mut twin = world.clone();
            twin.now = world.now.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(60)).expect("time");
            twin.observe();
            let (_, first) = drive(&twin.input, &twin.script, twin.now);
            let plan = world.tick();
            prop_assert_eq!(&first, &plan);

            // Weights always sum to 100.
            for r in plan.routes() {
                prop_assert_eq!(r.primary + r.canary, 100, "{:?}", r);
            }
            // A failed check never moves weights forward.
            let failed_more = plan
                .status
                .as_ref()
                .is_some_and(|s| s.failed_checks() > before.failed_checks() && s.phase() == before.phase());
            if failed_more {
                prop_assert!(plan.routes().all(|r| r.canary <= routes_before.canary), "{:?}", plan);
            }
            // Nothing routes to the canary after it is scaled to zero in the same plan.
            if let Some(zero) = plan.actions.iter().position(|a| *a == Action::ScaleToZero) {
                prop_assert!(plan.actions[zero..].iter().all(|a| !matches!(a, Action::SetRoutes(r) if r.canary > 0)));
            }
            // Status weights stay within 0..=100.
            let s = world.status();
            prop_assert!((0..=100).contains(&s.canary_weight()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The operator killed at any point of any tick and restarted at once finishes the release with the
    /// same weights as without the crashes: no step twice, no step skipped, no traffic left on a canary
    /// scaled to zero.
    #[test]
    fn crashes_never_double_or_skip_a_step(
        step in 1i32..=50,
        max in 1i32..=100,
        promotion in 0i32..=60,
        crashes in proptest::collection::vec(proptest::option::weighted(0.3, 0usize..20), 60),
    ) {
        let analysis = json!({"stepWeight": step, "maxWeight": max, "stepWeightPromotion": promotion});
        let mut clean = release(analysis.clone());
        run_to_end(&mut clean, 200);

        let mut world = release(analysis);
        for crash in crashes.iter().cycle().take(400) {
            match crash {
                Some(cut) => {
                    world.tick_and_crash(*cut);
                    // Restarted at once: a reconcile before the next interval.
                    world.call();
                }
                None => {
                    world.tick();
                }
            }
            if matches!(world.phase(), P::Succeeded | P::Failed) {
                break;
            }
        }
        prop_assert_eq!(world.phase(), P::Succeeded);
        let mut seen = world.route_log.clone();
        seen.dedup();
        prop_assert_eq!(seen, clean.route_log.clone());
        prop_assert!(!world.scaled_up);
        prop_assert_eq!(world.input.routes, Routes::PRIMARY);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A rollback interrupted at any point is finished after the restart: traffic back on the primary,
    /// the canary scaled to zero, Failed.
    #[test]
    fn crashes_never_leave_a_rollback_half_done(
        step in 1i32..=50,
        threshold in 1i32..=3,
        rollback_hook in any::<bool>(),
        crashes in proptest::collection::vec(proptest::option::weighted(0.4, 0usize..20), 60),
    ) {
        let webhooks = if rollback_hook { vec![hook("rb", "rollback")] } else { vec![] };
        let analysis = json!({"stepWeight": step, "threshold": threshold, "webhooks": webhooks});
        let script = if rollback_hook {
            Script::ok()
        } else {
            Script { metrics_ok: false, ..Script::ok() }
        };
        let mut world = release(analysis);
        // Take the first step cleanly (the rollback hook not signalling), then fail or signal a rollback,
        // with crashes.
        world.script = Script::ok().fail("rb");
        world.tick();
        world.script = script;
        for crash in crashes.iter().cycle().take(400) {
            match crash {
                Some(cut) => {
                    world.tick_and_crash(*cut);
                    world.call();
                }
                None => {
                    world.tick();
                }
            }
            if world.phase() == P::Failed {
                break;
            }
        }
        prop_assert_eq!(world.phase(), P::Failed);
        prop_assert_eq!(world.input.routes, Routes::PRIMARY);
        prop_assert!(!world.scaled_up);
        let forward = world.route_log.iter().filter(|r| r.canary > 0).count();
        prop_assert_eq!(forward, 1, "no step after the first: {:?}", world.route_log);
    }
}
