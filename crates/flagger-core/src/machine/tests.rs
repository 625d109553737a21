//! Table tests of one tick: the phase table (§2.3), weights (§2.4), A/B and blue/green (§2.5), rollback (§2.6).
