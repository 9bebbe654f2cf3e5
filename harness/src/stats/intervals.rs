//! Exact (Clopper–Pearson) binomial confidence bounds and leak arithmetic.

use statrs::function::beta::inv_beta_reg;

/// The two-sided Clopper–Pearson interval for a share, at confidence `1 - alpha`.
///
/// It inverts two exact one-sided binomial tests, so its coverage is at least `1 - alpha` for
/// every true share and every `trials` (conservative, never anti-conservative). With no trials it
/// is `(0, 1)`.
pub fn clopper_pearson(successes: u64, trials: u64, alpha: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let successes = successes.min(trials);
    let (x, n) = (successes as f64, trials as f64);
    let lower = if successes == 0 {
        0.0
    } else {
        inv_beta_reg(x, n - x + 1.0, alpha / 2.0)
    };
    // Computed through the mirrored lower bound: the regularized incomplete beta is far more
    // accurate in its lower tail than just below 1.
    let upper = if successes == trials {
        1.0
    } else {
        1.0 - inv_beta_reg(n - x, x + 1.0, alpha / 2.0)
    };
    (lower, upper)
}

/// The one-sided upper Clopper–Pearson bound at confidence `1 - alpha`.
///
/// With no success this is `1 - alpha^(1/trials)`: the largest rate for which seeing no hit in
/// `trials` draws still has probability at least `alpha`. It is what a zero-weight destination
/// reports as its leak bound.
pub fn clopper_pearson_upper(successes: u64, trials: u64, alpha: f64) -> f64 {
    if trials == 0 || successes >= trials {
        return 1.0;
    }
    if successes == 0 {
        // -expm1(ln(alpha)/n) keeps precision when the bound is tiny.
        return -(alpha.ln() / trials as f64).exp_m1();
    }
    let (x, n) = (successes as f64, trials as f64);
    1.0 - inv_beta_reg(n - x, x + 1.0, alpha)
}

/// The probability that at least one of `requests` independent requests hits a destination that
/// receives a share `leak_rate` of the traffic: `1 - (1 - leak_rate)^requests`.
pub fn leak_detection_probability(leak_rate: f64, requests: u64) -> f64 {
    if leak_rate <= 0.0 {
        return 0.0;
    }
    if leak_rate >= 1.0 {
        return if requests == 0 { 0.0 } else { 1.0 };
    }
    -((requests as f64) * (-leak_rate).ln_1p()).exp_m1()
}

/// The smallest number of consecutive hit-free requests after which the upper confidence bound
/// (at `1 - alpha`) on a leak rate falls to `rate` or below: `ceil(ln(alpha) / ln(1 - rate))`.
pub(crate) fn hit_free_requests_for_bound(rate: f64, alpha: f64) -> u64 {
    (alpha.ln() / (-rate).ln_1p()).ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, rel: f64) -> bool {
        (actual - expected).abs() <= rel * expected.abs().max(1e-300)
    }

    // Reference values computed with mpmath at 50 digits by bisection on the regularized
    // incomplete beta function; (5, 10) and (0, 10) also match R's `binom.test`.
    #[test]
    fn clopper_pearson_matches_reference_values() {
        let cases = [
            (5, 10, 0.05, 0.187086028447399, 0.812913971552601),
            (0, 10, 0.05, 0.0, 0.308497107818761),
            (80, 100, 0.05, 0.708157310911372, 0.873344447898044),
            (3, 2000, 1e-4, 3.40617646763639e-5, 0.0083466933452932),
            (600, 3000, 1e-5, 0.168957286469243, 0.23372485137574),
            (2999, 3000, 1e-5, 0.995019200331852, 0.999999998333329),
        ];
        for (x, n, alpha, lo, hi) in cases {
            let (l, u) = clopper_pearson(x, n, alpha);
            assert!(
                close(l, lo, 1e-9),
                "lower of {x}/{n} at {alpha}: {l} vs {lo}"
            );
            assert!(
                close(u, hi, 1e-9),
                "upper of {x}/{n} at {alpha}: {u} vs {hi}"
            );
        }
        assert_eq!(clopper_pearson(0, 0, 0.05), (0.0, 1.0));
    }

    #[test]
    fn zero_hit_upper_bound_is_the_closed_form() {
        // 99.9 % bound after 1000 and 7000 clean requests (research notes §5.3: 0.69 %, 0.099 %).
        assert!(close(clopper_pearson_upper(0, 1000, 1e-3), 0.006884, 1e-3));
        assert!(close(clopper_pearson_upper(0, 7000, 1e-3), 0.000986, 1e-3));
        // The general formula agrees with the two-sided interval at twice the level.
        let one_sided = clopper_pearson_upper(600, 3000, 0.5e-5);
        assert!(close(one_sided, 0.23372485137574, 1e-9));
    }

    #[test]
    fn leak_detection_and_hit_free_run_lengths() {
        // A 1 % leak is seen within 459 requests with probability 0.99 (research notes §5.3).
        assert!(leak_detection_probability(0.01, 459) >= 0.99);
        assert!(leak_detection_probability(0.01, 458) < 0.99);
        assert!(close(leak_detection_probability(0.01, 500), 0.99343, 1e-4));
        assert_eq!(leak_detection_probability(0.0, 500), 0.0);
        // (1 - 0.05)^n <= 1e-4 first at n = 180.
        assert_eq!(hit_free_requests_for_bound(0.05, 1e-4), 180);
        assert!(clopper_pearson_upper(0, 180, 1e-4) <= 0.05);
        assert!(clopper_pearson_upper(0, 179, 1e-4) > 0.05);
    }
}
