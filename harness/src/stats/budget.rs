//! The per-run false-alarm budget shared by all statistical checks of a run.

use serde::{Deserialize, Serialize};

/// How the family-wise budget is divided among the checks of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Correction {
    /// Every check gets `family_alpha / m`.
    Bonferroni,
    /// Holm's step-down procedure: as valid as Bonferroni and never less powerful.
    Holm,
}

/// A family-wise error budget: the probability that a run with a correct gateway reports at
/// least one statistical failure is at most `family_alpha`, whatever the dependence between
/// checks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// The family-wise false-alarm probability of one run.
    pub family_alpha: f64,
    /// How it is divided.
    pub method: Correction,
}

impl Default for Budget {
    /// 1e-4 per run, Holm.
    fn default() -> Self {
        Self {
            family_alpha: 1e-4,
            method: Correction::Holm,
        }
    }
}

impl Budget {
    /// The level at which to plan each of `n_checks` checks: `family_alpha / n_checks`.
    ///
    /// Holm's smallest threshold equals Bonferroni's, so planning every check at this level keeps
    /// the stated power under both methods; Holm can only reject more.
    pub fn per_check_alpha(&self, n_checks: usize) -> f64 {
        self.family_alpha / n_checks.max(1) as f64
    }

    /// Which hypotheses are rejected (`true` = the check fails) given one p-value per check.
    ///
    /// A NaN p-value is treated as 1 (no evidence).
    pub fn adjust(&self, p_values: &[f64]) -> Vec<bool> {
        let m = p_values.len();
        let p = |i: usize| {
            if p_values[i].is_nan() {
                1.0
            } else {
                p_values[i]
            }
        };
        match self.method {
            Correction::Bonferroni => (0..m)
                .map(|i| p(i) <= self.family_alpha / m as f64)
                .collect(),
            Correction::Holm => {
                let mut order: Vec<usize> = (0..m).collect();
                order.sort_by(|&a, &b| p(a).total_cmp(&p(b)));
                let mut rejected = vec![false; m];
                for (rank, &i) in order.iter().enumerate() {
                    if p(i) <= self.family_alpha / (m - rank) as f64 {
                        rejected[i] = true;
                    } else {
                        break;
                    }
                }
                rejected
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_check_alpha_divides_the_family_budget() {
        let b = Budget::default();
        assert!((b.per_check_alpha(6) - 1e-4 / 6.0).abs() < 1e-18);
        assert_eq!(b.per_check_alpha(0), 1e-4);
    }

    #[test]
    fn holm_steps_down_and_stops_at_the_first_acceptance() {
        let holm = Budget {
            family_alpha: 0.05,
            method: Correction::Holm,
        };
        // Thresholds 0.0125, 0.0167, 0.025, 0.05 for the sorted p-values.
        assert_eq!(
            holm.adjust(&[0.04, 0.01, 0.015, 0.03]),
            vec![false, true, true, false]
        );
        // 0.03 > 0.025 stops the procedure, so 0.04 is kept too, although it is below 0.05.
        assert_eq!(holm.adjust(&[0.01, 0.03, 0.04]), vec![true, false, false]);
        assert_eq!(holm.adjust(&[0.001, 0.02, 0.03]), vec![true, true, true]);
        let bonf = Budget {
            method: Correction::Bonferroni,
            ..holm
        };
        assert_eq!(bonf.adjust(&[0.001, 0.02, 0.03]), vec![true, false, false]);
        assert_eq!(holm.adjust(&[f64::NAN]), vec![false]);
        assert!(holm.adjust(&[]).is_empty());
    }
}
