//! Traffic weight arithmetic of a progressive (canary) release, exactly as Flagger 1.44 steps it.
//!
//! Weights are percentages of traffic; the primary and the canary always add up to [`TOTAL_WEIGHT`].

/// The sum of the primary and canary weights. Flagger hard-codes it.
pub const TOTAL_WEIGHT: u32 = 100;

/// How the weight ladder of an analysis is configured (`stepWeight`, `stepWeights`, `maxWeight`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ladder {
    /// `analysis.stepWeight`: a fixed increment. Takes precedence over `step_weights` when above zero.
    pub step_weight: u32,
    /// `analysis.stepWeights`: an explicit, increasing ladder such as `[1, 2, 10, 80]`.
    pub step_weights: Vec<u32>,
    /// `analysis.maxWeight`; zero means unset (100). Ignored when `step_weights` is used.
    pub max_weight: u32,
}

impl Ladder {
    /// The canary weight at which the analysis stops increasing traffic and promotes.
    ///
    /// With `stepWeights` it is the last step (capped at 100) and `maxWeight` is ignored; otherwise
    /// `maxWeight`, or 100 when unset.
    pub fn max_weight(&self) -> u32 {
        match self.step_weights.last() {
            Some(&last) => last.min(TOTAL_WEIGHT),
            None if self.max_weight > 0 => self.max_weight,
            None => TOTAL_WEIGHT,
        }
    }

    /// The increment to apply to the canary's current weight `canary`.
    ///
    /// A fixed `stepWeight` (or no ladder at all) always gives `stepWeight`, which may be zero: such a canary
    /// never advances. With `stepWeights`, the step moves the canary to the next rung; a weight that is not
    /// on the ladder (for example after a manual change) jumps straight to 100. The result never takes the
    /// canary above 100, except that a canary already at 100 gets a step of 1 (Flagger's guard).
    pub fn next_step(&self, canary: u32) -> u32 {
        if self.step_weight > 0 || self.step_weights.is_empty() {
            return self.step_weight;
        }
        let room = TOTAL_WEIGHT.saturating_sub(canary);
        if room == 0 {
            return 1;
        }
        if canary == 0 {
            return room.min(self.step_weights[0]);
        }
        for (i, &rung) in self.step_weights.iter().enumerate() {
            if rung == canary {
                return match self.step_weights.get(i + 1) {
                    Some(&next) => room.min(next.saturating_sub(canary)),
                    None => room,
                };
            }
        }
        room
    }

    /// One canary step: the new `(primary, canary)` weights from the current canary weight. The canary gets
    /// `next_step` more (capped at 100) and the primary the rest. It does not check `max_weight`: the
    /// caller promotes instead of stepping once the canary has reached it, so the weight may overshoot
    /// `max_weight` by part of a step, as in Flagger (stepWeight 20, maxWeight 50 gives 20, 40, 60).
    pub fn advance(&self, canary: u32) -> (u32, u32) {
        let canary = canary.saturating_add(self.next_step(canary)).min(TOTAL_WEIGHT);
        (TOTAL_WEIGHT - canary, canary)
    }
}

/// One promotion traffic-shift step (`stepWeightPromotion`): from the current weights read from the router,
/// the primary gets `step` more and the canary `step` less. `step == 0` routes everything to the primary at
/// once.
pub fn promotion_step(primary: u32, canary: u32, step: u32) -> (u32, u32) {
    if step == 0 {
        return (TOTAL_WEIGHT, 0);
    }
    let primary = primary.saturating_add(step).min(TOTAL_WEIGHT);
    let canary = canary.saturating_sub(step);
    (primary, canary)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ladder(step_weight: u32, step_weights: &[u32], max_weight: u32) -> Ladder {
        Ladder {
            step_weight,
            step_weights: step_weights.to_vec(),
            max_weight,
        }
    }

    /// Steps from zero until the canary reaches the max weight, returning the primary weights seen.
    fn primary_weights(l: &Ladder) -> Vec<u32> {
        let mut canary = 0;
        let mut seen = vec![TOTAL_WEIGHT];
        while canary < l.max_weight() {
            let (p, c) = l.advance(canary);
            assert!(c > canary, "no progress from {canary}");
            seen.push(p);
            canary = c;
        }
        seen
    }

    #[test]
    fn step_weight_overshoots_max_weight_like_flagger() {
        assert_eq!(primary_weights(&ladder(20, &[], 50)), vec![100, 80, 60, 40]);
    }

    #[test]
    fn step_weights_follow_the_ladder() {
        assert_eq!(
            primary_weights(&ladder(0, &[1, 2, 10, 80], 0)),
            vec![100, 99, 98, 90, 20]
        );
    }

    #[test]
    fn step_weights_ignore_max_weight_and_cap_at_100() {
        assert_eq!(ladder(0, &[10, 120], 30).max_weight(), 100);
        assert_eq!(ladder(0, &[5, 40], 90).max_weight(), 40);
    }

    #[test]
    fn max_weight_defaults_to_100() {
        assert_eq!(ladder(10, &[], 0).max_weight(), 100);
    }

    #[test]
    fn step_weight_wins_over_step_weights() {
        assert_eq!(ladder(5, &[1, 2], 0).next_step(0), 5);
    }

    #[test]
    fn off_ladder_weight_jumps_to_full() {
        assert_eq!(ladder(0, &[10, 20, 30], 0).next_step(15), 85);
    }

    #[test]
    fn zero_step_never_advances() {
        assert_eq!(ladder(0, &[], 0).next_step(0), 0);
    }

    #[test]
    fn full_canary_gets_the_guard_step_of_one() {
        assert_eq!(ladder(0, &[50, 100], 0).next_step(100), 1);
        assert_eq!(ladder(0, &[50, 100], 0).advance(100), (0, 100));
    }

    #[test]
    fn promotion_steps_move_traffic_back_to_primary() {
        assert_eq!(promotion_step(40, 60, 0), (100, 0));
        assert_eq!(promotion_step(40, 60, 25), (65, 35));
        assert_eq!(promotion_step(90, 10, 25), (100, 0));
    }

    proptest! {
        #[test]
        fn weights_always_sum_to_100(
            step_weight in 0u32..=150,
            mut step_weights in proptest::collection::vec(1u32..=100, 0..6),
            max_weight in 0u32..=150,
            canary in 0u32..=100,
        ) {
            step_weights.sort_unstable();
            step_weights.dedup();
            let (p, c) = ladder(step_weight, &step_weights, max_weight).advance(canary);
            prop_assert_eq!(p + c, TOTAL_WEIGHT);
            prop_assert!(c >= canary);
        }

        #[test]
        fn promotion_never_moves_traffic_to_the_canary(primary in 0u32..=100, step in 0u32..=150) {
            let (p, c) = promotion_step(primary, TOTAL_WEIGHT - primary, step);
            prop_assert!(p >= primary);
            prop_assert!(c <= TOTAL_WEIGHT - primary);
            prop_assert!(p <= TOTAL_WEIGHT);
        }

        #[test]
        fn a_ladder_always_reaches_its_max_in_at_most_100_steps(
            step_weight in 1u32..=100,
            max_weight in 1u32..=100,
        ) {
            let l = ladder(step_weight, &[], max_weight);
            let mut canary = 0;
            let mut steps = 0;
            while canary < l.max_weight() {
                canary = l.advance(canary).1;
                steps += 1;
                prop_assert!(steps <= 100);
            }
        }
    }
}
