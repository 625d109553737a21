//! Scenario tests: the machine driven tick by tick against a tiny in-memory world.
