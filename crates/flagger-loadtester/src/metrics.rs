//! The load tester's own metrics, served on `/metrics` next to the Go-style `process_*` metrics (Flagger's
//! load tester serves only Go runtime and process metrics).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `flagger_loadtester_tasks_total` | counter | `type`, `result` (`ok`, `failed`, `skipped`) |
//! | `flagger_loadtester_tasks_running` | gauge | — |
//! | `flagger_loadtester_gate_checks_total` | counter | `gate` (`gate`, `rollback`), `approved` |

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Handles to the metrics; clones share them.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    tasks: Family<Labels, Counter>,
    running: Gauge,
    gate_checks: Family<Labels, Counter>,
}

impl Metrics {
    /// Registers the metrics (and the process metrics) on `registry`, which must have no prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "flagger_loadtester_tasks",
            "Tasks by type and result (ok, failed, skipped as a duplicate of a running task)",
            m.tasks.clone(),
        );
        registry.register(
            "flagger_loadtester_tasks_running",
            "Asynchronous tasks (cmd, ngrinder) running now",
            m.running.clone(),
        );
        registry.register(
            "flagger_loadtester_gate_checks",
            "Gate and rollback checks by answer",
            m.gate_checks.clone(),
        );
        flagger_telemetry::process::register(registry);
        m
    }

    /// Counts a task of type `typ` that ended with `result`.
    pub fn task(&self, typ: &str, result: &'static str) {
        self.tasks
            .get_or_create(&vec![("type", typ.to_owned()), ("result", result.to_owned())])
            .inc();
    }

    /// Adjusts the running-tasks gauge.
    pub fn running(&self, delta: i64) {
        self.running.inc_by(delta);
    }

    /// Counts a check of a `gate` (`gate` or `rollback`).
    pub fn gate_check(&self, gate: &'static str, approved: bool) {
        self.gate_checks
            .get_or_create(&vec![
                ("gate", gate.to_owned()),
                ("approved", approved.to_string()),
            ])
            .inc();
    }
}
