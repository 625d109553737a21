//! Test fixtures: canaries built from JSON, a driver for the step protocol, and a tiny in-memory world.

use std::collections::BTreeMap;

use flagger_api::{Canary, CanaryPhase, CanaryStatus};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::{
    Action, Answer, Answers, Event, EventType, MetricsOutcome, Observed, Plan, Readiness, Request, Routes,
    Step, TargetRevision, decide,
};
use crate::provider::MeshProvider;

pub(super) const T0: i64 = 1_700_000_000;

pub(super) fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("timestamp")
}

/// A Canary `podinfo` in `test` targeting Deployment `podinfo`, with this analysis (interval 1m).
pub(super) fn canary(analysis: Value) -> Canary {
    let mut analysis = analysis;
    if let Some(map) = analysis.as_object_mut() {
        map.entry("interval").or_insert(json!("1m"));
        map.entry("threshold").or_insert(json!(5));
    }
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": analysis,
        }
    }))
    .expect("canary")
}

pub(super) fn hook(name: &str, type_: &str) -> Value {
    json!({"name": name, "type": type_, "url": format!("http://hooks/{name}")})
}

/// A status in `phase` whose applied and promoted revisions are `applied`/`promoted`, with a condition.
pub(super) fn status(phase: CanaryPhase, applied: &str, promoted: &str) -> CanaryStatus {
    let mut s = CanaryStatus {
        phase: Some(phase),
        failed_checks: Some(0),
        canary_weight: Some(0),
        iterations: Some(0),
        last_applied_spec: Some(applied.to_owned()),
        last_promoted_spec: Some(promoted.to_owned()),
        last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            at(T0 - 3600),
        )),
        ..CanaryStatus::default()
    };
    s.conditions = s.conditions_for_phase(
        phase,
        "Deployment",
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(T0 - 3600)),
    );
    s
}

/// Everything decide reads, owned.
#[derive(Clone, Debug)]
pub(super) struct Input {
    pub canary: Canary,
    pub target: TargetRevision,
    pub primary: Readiness,
    pub canary_workload: Readiness,
    pub target_scaled_to_zero: bool,
    pub routes: Routes,
    pub provider: MeshProvider,
    pub primary_runs_target: bool,
    pub last_tick: Option<Timestamp>,
}

impl Input {
    pub(super) fn new(canary: Canary, hash: &str) -> Self {
        Self {
            canary,
            target: TargetRevision {
                spec_hash: hash.to_owned(),
                configs: Some(BTreeMap::new()),
            },
            primary: Readiness::Ready,
            canary_workload: Readiness::Ready,
            target_scaled_to_zero: false,
            routes: Routes::PRIMARY,
            provider: MeshProvider::Istio,
            primary_runs_target: true,
            last_tick: None,
        }
    }

    pub(super) fn with_status(mut self, status: CanaryStatus) -> Self {
        self.canary.status = Some(status);
        self
    }

    pub(super) fn observed(&self) -> Observed<'_> {
        Observed {
            canary: &self.canary,
            target: self.target.clone(),
            primary: self.primary.clone(),
            canary_workload: self.canary_workload.clone(),
            target_scaled_to_zero: self.target_scaled_to_zero,
            routes: self.routes,
            provider: self.provider.clone(),
            primary_runs_target: self.primary_runs_target,
            last_tick: self.last_tick,
        }
    }
}

/// Answers webhooks by name (missing names succeed) and metrics with `metrics_ok`.
#[derive(Clone, Debug, Default)]
pub(super) struct Script {
    pub hooks: BTreeMap<String, Result<(), String>>,
    pub metrics_ok: bool,
}

impl Script {
    pub(super) fn ok() -> Self {
        Self {
            hooks: BTreeMap::new(),
            metrics_ok: true,
        }
    }

    pub(super) fn fail(mut self, name: &str) -> Self {
        self.hooks.insert(name.to_owned(), Err("500".to_owned()));
        self
    }

    pub(super) fn answer(&self, request: &Request) -> Answer {
        match request {
            Request::Webhook { name, .. } => Answer::Webhook(self.hooks.get(name).cloned().unwrap_or(Ok(()))),
            Request::Metrics => Answer::Metrics(MetricsOutcome {
                passed: self.metrics_ok,
                events: if self.metrics_ok {
                    vec![]
                } else {
                    vec![Event::warning(
                        "Halt advancement no values found for istio metric request-success-rate probably podinfo.test is not receiving traffic: running query failed: no values found",
                    )]
                },
            }),
        }
    }
}

/// Runs the step protocol to the end: the requests made, in order, and the plan.
pub(super) fn drive(input: &Input, script: &Script, now: Timestamp) -> (Vec<Request>, Plan) {
    let observed = input.observed();
    let mut answers = Answers::default();
    let mut requests = Vec::new();
    for _ in 0..100 {
        match decide(&observed, &answers, now).expect("decide") {
            Step::Need(request) => {
                answers.push(script.answer(&request));
                requests.push(request);
            }
            Step::Done(plan) => return (requests, *plan),
        }
    }
    panic!("decide asked more than 100 questions");
}

pub(super) fn messages(plan: &Plan) -> Vec<String> {
    plan.events().map(|e| e.message.clone()).collect()
}

pub(super) fn warnings(plan: &Plan) -> Vec<String> {
    plan.events()
        .filter(|e| e.type_ == EventType::Warning)
        .map(|e| e.message.clone())
        .collect()
}

pub(super) fn new_phase(plan: &Plan) -> Option<CanaryPhase> {
    plan.status.as_ref().map(CanaryStatus::phase)
}

/// A tiny world: applies plans to the canary status, the router and the target's scale.
#[derive(Clone, Debug)]
pub(super) struct World {
    pub input: Input,
    pub script: Script,
    pub now: Timestamp,
    /// Whether the target (canary) workload runs.
    pub scaled_up: bool,
    /// The revision running in the primary.
    pub primary_revision: String,
    /// Every SetRoutes applied.
    pub route_log: Vec<Routes>,
    /// The phase after every call.
    pub phase_log: Vec<CanaryPhase>,
    /// Every event.
    pub events: Vec<String>,
    /// Every request.
    pub requests: Vec<Request>,
    pub plans: Vec<Plan>,
}

impl World {
    /// An initialized canary (Initialized, target scaled to zero, primary at `hash`).
    pub(super) fn initialized(canary: Canary, hash: &str) -> Self {
        let mut w = Self {
            input: Input::new(canary, hash),
            script: Script::ok(),
            now: at(T0),
            scaled_up: true,
            primary_revision: String::new(),
            route_log: vec![],
            phase_log: vec![],
            events: vec![],
            requests: vec![],
            plans: vec![],
        };
        w.call();
        assert_eq!(w.phase(), CanaryPhase::Initialized);
        w.primary_revision = hash.to_owned();
        w
    }

    pub(super) fn phase(&self) -> CanaryPhase {
        self.input
            .canary
            .status
            .as_ref()
            .map(CanaryStatus::phase)
            .unwrap_or_default()
    }

    pub(super) fn status(&self) -> CanaryStatus {
        self.input.canary.status.clone().unwrap_or_default()
    }

    /// Changes the target to revision `hash`.
    pub(super) fn deploy(&mut self, hash: &str) {
        self.input.target.spec_hash = hash.to_owned();
    }

    /// Calls decide now and applies the plan.
    pub(super) fn call(&mut self) -> Plan {
        self.observe();
        let (requests, plan) = drive(&self.input, &self.script, self.now);
        self.apply(requests, plan)
    }

    /// Updates what the world reports about the canary workload: ready when it runs.
    pub(super) fn observe(&mut self) {
        self.input.target_scaled_to_zero = !self.scaled_up;
        self.input.canary_workload = if self.scaled_up {
            Readiness::Ready
        } else {
            Readiness::NotReady {
                message: "waiting for rollout to finish: 0 of 1 updated replicas are available".to_owned(),
                retriable: true,
            }
        };
    }

    fn apply(&mut self, requests: Vec<Request>, plan: Plan) -> Plan {
        self.apply_prefix(requests, plan, usize::MAX)
    }

    /// Applies the first `cut` actions of the plan, as an operator killed after them would have. The
    /// status and the tick time are written at [`Action::WriteStatus`] (at the end when the status is
    /// unchanged).
    fn apply_prefix(&mut self, requests: Vec<Request>, plan: Plan, cut: usize) -> Plan {
        self.requests.extend(requests);
        let mut written = false;
        for action in plan.actions.iter().take(cut) {
            match action {
                Action::SetRoutes(r) => {
                    self.input.routes = *r;
                    self.route_log.push(*r);
                }
                Action::ScaleToZero => self.scaled_up = false,
                Action::ScaleFromZero => self.scaled_up = true,
                Action::Promote => self.primary_revision = self.input.target.spec_hash.clone(),
                Action::Event(e) => self.events.push(e.message.clone()),
                Action::WriteStatus => {
                    self.write(&plan);
                    written = true;
                }
                _ => {}
            }
        }
        if !written && cut >= plan.actions.len() {
            self.write(&plan);
        }
        self.phase_log.push(self.phase());
        self.plans.push(plan.clone());
        plan
    }

    fn write(&mut self, plan: &Plan) {
        if let Some(s) = &plan.status {
            self.input.canary.status = Some(s.clone());
        }
        if let Some(t) = plan.tick {
            self.input.last_tick = Some(t);
        }
    }

    /// Like [`World::tick`], but the operator dies after `cut` actions of the plan.
    pub(super) fn tick_and_crash(&mut self, cut: usize) -> Plan {
        self.now = self.now.checked_add(SignedDuration::from_secs(60)).expect("time");
        self.observe();
        let (requests, plan) = drive(&self.input, &self.script, self.now);
        self.apply_prefix(requests, plan, cut)
    }

    /// Moves the clock one analysis interval and calls decide.
    pub(super) fn tick(&mut self) -> Plan {
        self.now = self.now.checked_add(SignedDuration::from_secs(60)).expect("time");
        self.call()
    }

    /// Primary weights of every SetRoutes so far.
    pub(super) fn primary_weights(&self) -> Vec<i32> {
        self.route_log.iter().map(|r| r.primary).collect()
    }
}
