//! The fixed-sample split check: Pearson goodness of fit plus simultaneous intervals.

use std::cell::Cell;
use std::collections::BTreeMap;

use super::gof::{FixedDesign, chi_square_sf, pearson_statistic};
use super::intervals::{clopper_pearson, clopper_pearson_upper};
use super::plan::fixed_requests;
use super::spec::{CheckSettings, Prepared, SplitSpec, StatsError};
use super::verdict::{
    CheckMethod, DestinationResult, LeakGuarantee, Outcome, SplitVerdict, fmt_points, percent,
};

/// Judges observed counts against a split in one go. See [`FixedCheck::judge`].
pub fn judge(
    spec: &SplitSpec,
    observed: &BTreeMap<String, u64>,
    settings: &CheckSettings,
) -> Result<SplitVerdict, StatsError> {
    Ok(FixedCheck::new(spec, settings)?.judge(observed))
}

/// A planned fixed-sample check, reusable for many judgements (it remembers the minimum
/// detectable deviation of the last `n` it saw, which is what simulations repeat).
#[derive(Debug, Clone)]
pub struct FixedCheck {
    prepared: Prepared,
    settings: CheckSettings,
    design: FixedDesign,
    planned_requests: u64,
    /// `(n, achieved minimum detectable deviation, power reached at δ)` for the last `n`.
    power_memo: Cell<Option<(u64, f64, bool)>>,
}

impl FixedCheck {
    /// Validates the spec and settings and plans the sample size.
    pub fn new(spec: &SplitSpec, settings: &CheckSettings) -> Result<Self, StatsError> {
        let prepared = Prepared::new(spec, settings)?;
        let design = FixedDesign::new(prepared.nonzero_shares(), settings.alpha, settings.power);
        let planned_requests = fixed_requests(&prepared, &design, settings)?;
        Ok(Self {
            prepared,
            settings: *settings,
            design,
            planned_requests,
            power_memo: Cell::new(None),
        })
    }

    /// The number of requests the check was planned for.
    pub fn planned_requests(&self) -> u64 {
        self.planned_requests
    }

    fn power_at(&self, n: u64) -> (f64, bool) {
        if let Some((memo_n, mdd, reaches)) = self.power_memo.get()
            && memo_n == n
        {
            return (mdd, reaches);
        }
        let delta = self.settings.min_detectable_deviation;
        let mdd = self.design.min_detectable_deviation(n);
        let reaches = n > 0 && self.design.min_power(n, delta).0 >= self.settings.power;
        self.power_memo.set(Some((n, mdd, reaches)));
        (mdd, reaches)
    }

    /// Judges the observed counts (destination name → replies).
    ///
    /// * **Fail** if the Pearson test over the positive-weight destinations rejects at `alpha`
    ///   (a false alarm has probability <= `alpha`, up to the chi-square approximation), if a
    ///   zero-weight destination answered at all, or if a destination outside the split answered.
    /// * **Pass** otherwise, provided `n` is large enough for the declared power against δ.
    /// * **Inconclusive** when `n` is too small for that power.
    ///
    /// The intervals are Clopper–Pearson at `alpha / k` each (simultaneous over the `k`
    /// destinations); they name the destinations responsible for a rejection but do not add
    /// failures of their own, so the whole `alpha` is spent on the goodness-of-fit test.
    pub fn judge(&self, observed: &BTreeMap<String, u64>) -> SplitVerdict {
        let p = &self.prepared;
        let settings = &self.settings;
        let alpha = settings.alpha;
        let mut counts = vec![0u64; p.names.len()];
        let mut unknown = Vec::new();
        for (name, &c) in observed {
            match p.index_of(name) {
                Some(i) => counts[i] += c,
                None if c > 0 => unknown.push((name.clone(), c)),
                None => {}
            }
        }
        let n = counts.iter().sum::<u64>() + unknown.iter().map(|(_, c)| c).sum::<u64>();
        let mut reasons = Vec::new();

        let mut leaks = Vec::new();
        for &z in &p.zero {
            if counts[z] > 0 {
                reasons.push(format!(
                    "destination `{}` has weight 0 but answered {} of {n} requests",
                    p.names[z], counts[z]
                ));
                leaks.push((p.names[z].clone(), counts[z]));
            }
        }
        for (name, c) in &unknown {
            reasons.push(format!(
                "`{name}` is not a destination of this split but answered {c} of {n} requests"
            ));
        }
        leaks.extend(unknown.iter().cloned());

        let positive_counts: Vec<u64> = p.nonzero.iter().map(|&i| counts[i]).collect();
        let df = positive_counts.len().saturating_sub(1);
        let (statistic, n_tested) = if df > 0 {
            pearson_statistic(&positive_counts, &self.design.shares)
        } else {
            (0.0, 0)
        };
        let p_value = if df > 0 && n_tested > 0 {
            chi_square_sf(df, statistic)
        } else {
            1.0
        };

        let alpha_each = alpha / p.names.len() as f64;
        let destinations: Vec<DestinationResult> = p
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| DestinationResult {
                name: name.clone(),
                expected_share: p.shares[i],
                observed: counts[i],
                observed_share: if n == 0 {
                    0.0
                } else {
                    counts[i] as f64 / n as f64
                },
                interval: clopper_pearson(counts[i], n, alpha_each),
            })
            .collect();

        if p_value <= alpha {
            reasons.push(format!(
                "the split deviates from the weights: chi-square = {statistic:.2} with {df} \
                 degrees of freedom, p = {p_value:.3e} <= alpha = {alpha:.3e}"
            ));
            for d in &destinations {
                if d.expected_share > 0.0
                    && (d.expected_share < d.interval.0 || d.expected_share > d.interval.1)
                {
                    reasons.push(format!(
                        "`{}` answered {} ({} of {n}), simultaneous interval [{}, {}], \
                         expected {}",
                        d.name,
                        percent(d.observed_share),
                        d.observed,
                        percent(d.interval.0),
                        percent(d.interval.1),
                        percent(d.expected_share)
                    ));
                }
            }
        }

        let zero_hits: u64 = p.zero.iter().map(|&z| counts[z]).sum();
        let leak_upper_bound =
            (!p.zero.is_empty()).then(|| clopper_pearson_upper(zero_hits, n, alpha));
        let (achieved, reaches_power) = self.power_at(n);
        let leak_requests = p.leak_requests(settings);
        let leak_guarantee = leak_requests.map(|required| {
            LeakGuarantee::at(
                settings.min_detectable_leak,
                settings.leak_power,
                required,
                n,
            )
        });

        let outcome = if !reasons.is_empty() {
            Outcome::Fail
        } else if n == 0 {
            reasons.push("no requests were observed".to_owned());
            Outcome::Inconclusive
        } else if let Some(required) = leak_requests.filter(|&required| n < required) {
            reasons.push(format!(
                "only {n} requests: a leak of {} to the zero-weight destinations is caught with \
                 probability {} only after {required}",
                percent(settings.min_detectable_leak),
                settings.leak_power
            ));
            Outcome::Inconclusive
        } else if reaches_power {
            Outcome::Pass
        } else {
            reasons.push(format!(
                "only {n} requests: power {} is reached against deviations of {} points, not the \
                 declared {} (the plan asks for {} requests)",
                settings.power,
                fmt_points(achieved),
                fmt_points(settings.min_detectable_deviation),
                self.planned_requests
            ));
            Outcome::Inconclusive
        };

        SplitVerdict {
            outcome,
            method: CheckMethod::FixedSample {
                degrees_of_freedom: df,
                planned_requests: self.planned_requests,
            },
            n,
            alpha,
            min_detectable_deviation: settings.min_detectable_deviation,
            power: settings.power,
            statistic,
            p_value,
            destinations,
            zero_weight_leaks: leaks,
            leak_upper_bound,
            leak_guarantee,
            achieved_min_detectable_deviation: achieved,
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn exact_counts_at_the_planned_size_pass() {
        let spec = SplitSpec::new([("a", 80), ("b", 20), ("z", 0)]);
        let check = FixedCheck::new(&spec, &CheckSettings::default()).expect("valid");
        let n = check.planned_requests();
        let a = n * 4 / 5;
        let verdict = check.judge(&counts(&[("a", a), ("b", n - a)]));
        assert_eq!(verdict.outcome, Outcome::Pass, "{:?}", verdict.reasons);
        assert!(verdict.achieved_min_detectable_deviation <= 0.05);
        assert!(verdict.p_value > 0.5);
        assert_eq!(verdict.n, n);
        let bound = verdict
            .leak_upper_bound
            .expect("spec has a zero-weight destination");
        assert!((bound - clopper_pearson_upper(0, n, 1e-4)).abs() < 1e-15);
        let json = serde_json::to_value(&verdict).expect("serializable");
        assert_eq!(json["outcome"], "pass");
        assert_eq!(json["method"]["kind"], "fixed_sample");
    }

    #[test]
    fn too_few_requests_are_inconclusive_not_a_pass() {
        let spec = SplitSpec::new([("a", 80), ("b", 20)]);
        let verdict = judge(
            &spec,
            &counts(&[("a", 400), ("b", 100)]),
            &CheckSettings::default(),
        )
        .expect("valid");
        assert_eq!(verdict.outcome, Outcome::Inconclusive);
        assert!(verdict.achieved_min_detectable_deviation > 0.05);
        assert!(
            verdict.reasons[0].contains("only 500 requests"),
            "{:?}",
            verdict.reasons
        );
        let empty = judge(&spec, &BTreeMap::new(), &CheckSettings::default()).expect("valid");
        assert_eq!(empty.outcome, Outcome::Inconclusive);
        assert_eq!(empty.achieved_min_detectable_deviation, 1.0);
    }

    #[test]
    fn every_violation_is_listed() {
        let spec = SplitSpec::new([("a", 80), ("b", 20), ("z", 0)]);
        // 50/50 instead of 80/20, a hit on the zero-weight destination, and a stranger.
        let observed = counts(&[("a", 1500), ("b", 1500), ("z", 2), ("stranger", 1)]);
        let verdict = judge(&spec, &observed, &CheckSettings::default()).expect("valid");
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert_eq!(verdict.n, 3003);
        assert!(verdict.p_value < 1e-100);
        let all = verdict.reasons.join("\n");
        for needle in [
            "`z` has weight 0",
            "`stranger` is not a destination",
            "deviates from the weights",
            "`a` answered 49.95%",
            "`b` answered 49.95%",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        assert_eq!(
            verdict.zero_weight_leaks,
            vec![("z".to_owned(), 2), ("stranger".to_owned(), 1)]
        );
    }

    #[test]
    fn a_lone_destination_has_no_goodness_of_fit_only_leak_checks() {
        let spec = SplitSpec::new([("old", 0), ("new", 100)]);
        let check = FixedCheck::new(&spec, &CheckSettings::default()).expect("valid");
        let n = check.planned_requests();
        let clean = check.judge(&counts(&[("new", n)]));
        assert_eq!(clean.outcome, Outcome::Pass, "{:?}", clean.reasons);
        assert_eq!(clean.p_value, 1.0);
        assert_eq!(
            clean.method,
            CheckMethod::FixedSample {
                degrees_of_freedom: 0,
                planned_requests: n
            }
        );
        let leaked = check.judge(&counts(&[("new", n - 1), ("old", 1)]));
        assert_eq!(leaked.outcome, Outcome::Fail);
        assert_eq!(leaked.reasons.len(), 1);
    }
}
