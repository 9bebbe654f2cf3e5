//! Exact operating characteristics of a sequential check whose decisions rest on one binomial
//! count: the probabilities of pass, fail and inconclusive, and the mean number of requests, for
//! a gateway with given true shares.
//!
//! With at most one deciding destination (two positive-weight destinations, or one plus
//! zero-weight ones) the check's state after `n` requests is the deciding destination's count
//! `s` (the other shares follow), as long as no forbidden destination answered. Dynamic
//! programming over `s` carries the probability of every undecided state from `n` to `n + 1` and
//! removes what the boundaries absorb. Only the band between the fail boundaries is alive, so a
//! step costs the band's width, not `n`. No simulation, no approximation beyond floating point.

use serde::Serialize;

use super::confidence::Bounds;

/// What a simulated gateway does with each request, for the computation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    /// Probability that a request goes to the deciding destination.
    pub tested: f64,
    /// Probability that it goes to a destination that must get nothing (zero weight or not in
    /// the split): the check fails at once.
    pub forbidden: f64,
}

impl Truth {
    /// A gateway without leaks whose deciding destination gets `share`.
    pub fn share(share: f64) -> Self {
        Self {
            tested: share,
            forbidden: 0.0,
        }
    }
}

/// The operating characteristics of a check with a given cap, for one [`Truth`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OperatingPoint {
    /// Probability of a pass.
    pub pass: f64,
    /// Probability of a fail.
    pub fail: f64,
    /// Probability of reaching the cap undecided.
    pub inconclusive: f64,
    /// Mean number of requests until the verdict (the cap when inconclusive).
    pub mean_requests: f64,
}

/// The dynamic programme for one truth, advanced one request at a time.
#[derive(Debug, Clone)]
pub(crate) struct Walk {
    truth: Truth,
    /// Requests seen.
    n: u64,
    /// Smallest count still alive.
    low: i64,
    /// `alive[i]`: probability of being undecided with count `low + i`.
    alive: Vec<f64>,
    next: Vec<f64>,
    fail: f64,
    pass: f64,
    /// `Σ n · P(decided at n)`.
    decided_n: f64,
}

impl Walk {
    pub(crate) fn new(truth: Truth) -> Self {
        Self {
            truth,
            n: 0,
            low: 0,
            alive: vec![1.0],
            next: Vec::new(),
            fail: 0.0,
            pass: 0.0,
            decided_n: 0.0,
        }
    }

    /// Requests seen so far.
    pub(crate) fn n(&self) -> u64 {
        self.n
    }

    /// Adds one request and applies the boundaries of the new `n`; a pass is allowed only from
    /// `pass_after` requests on.
    pub(crate) fn step(&mut self, bounds: Bounds, pass_after: u64) {
        self.n += 1;
        let n = self.n;
        let Truth { tested, forbidden } = self.truth;
        let other = (1.0 - tested - forbidden).max(0.0);
        // Carry: count unchanged (another allowed destination) or up by one (the deciding one).
        self.next.clear();
        self.next.resize(self.alive.len() + 1, 0.0);
        let mut total = 0.0;
        for (i, &mass) in self.alive.iter().enumerate() {
            self.next[i] += mass * other;
            self.next[i + 1] += mass * tested;
            total += mass;
        }
        let leaked = total * forbidden;
        self.fail += leaked;
        self.decided_n += leaked * n as f64;
        // Absorb.
        let passing = n >= pass_after;
        let (mut fail, mut pass) = (0.0, 0.0);
        let (mut first, mut last) = (None, None);
        for (i, mass) in self.next.iter_mut().enumerate() {
            let s = self.low + i as i64;
            if s <= bounds.fail_low || s >= bounds.fail_high {
                fail += *mass;
                *mass = 0.0;
            } else if passing && bounds.pass_low <= s && s <= bounds.pass_high {
                pass += *mass;
                *mass = 0.0;
            } else if *mass > 0.0 {
                first.get_or_insert(i);
                last = Some(i);
            }
        }
        self.fail += fail;
        self.pass += pass;
        self.decided_n += (fail + pass) * n as f64;
        // Keep only the band that still holds probability.
        std::mem::swap(&mut self.alive, &mut self.next);
        match (first, last) {
            (Some(first), Some(last)) => {
                self.alive.truncate(last + 1);
                self.alive.drain(..first);
                self.low += first as i64;
            }
            _ => {
                self.alive.clear();
                self.alive.push(0.0);
            }
        }
    }

    /// Probability of being undecided after the requests seen.
    pub(crate) fn undecided(&self) -> f64 {
        (1.0 - self.fail - self.pass).max(0.0)
    }

    /// Probability of a fail so far.
    pub(crate) fn failed(&self) -> f64 {
        self.fail
    }

    /// The operating characteristics if the cap were the requests seen so far.
    pub(crate) fn at_cap(&self) -> OperatingPoint {
        let inconclusive = self.undecided();
        OperatingPoint {
            pass: self.pass,
            fail: self.fail,
            inconclusive,
            mean_requests: self.decided_n + inconclusive * self.n as f64,
        }
    }
}

/// Runs a walk to `cap` with the given boundaries (index `n`, from 0).
pub(crate) fn operating_point(
    bounds: &[Bounds],
    pass_after: u64,
    cap: u64,
    truth: Truth,
) -> OperatingPoint {
    let mut walk = Walk::new(truth);
    while walk.n() < cap {
        let n = walk.n() + 1;
        walk.step(bounds[n as usize], pass_after);
    }
    walk.at_cap()
}

/// The boundaries of a check without a deciding destination: the count plays no part.
pub(crate) fn no_test_bounds(n: u64) -> Bounds {
    Bounds {
        fail_low: -1,
        fail_high: n as i64 + 1,
        pass_low: 0,
        pass_high: n as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A brute-force enumeration of every path of `n` requests, for small `n`.
    fn enumerate(bounds: &[Bounds], pass_after: u64, cap: u64, truth: Truth) -> OperatingPoint {
        // Outcomes per request: 0 = other, 1 = tested, 2 = forbidden.
        let (mut pass, mut fail, mut mean) = (0.0, 0.0, 0.0);
        let paths = 3u64.pow(cap as u32);
        for code in 0..paths {
            let (mut s, mut prob, mut c) = (0i64, 1.0, code);
            let mut decided = None;
            for n in 1..=cap {
                let outcome = c % 3;
                c /= 3;
                prob *= match outcome {
                    0 => 1.0 - truth.tested - truth.forbidden,
                    1 => truth.tested,
                    _ => truth.forbidden,
                };
                if decided.is_some() {
                    continue;
                }
                if outcome == 2 {
                    decided = Some((n, false));
                    continue;
                }
                s += i64::from(outcome == 1);
                let b = bounds[n as usize];
                if s <= b.fail_low || s >= b.fail_high {
                    decided = Some((n, false));
                } else if n >= pass_after && b.pass_low <= s && s <= b.pass_high {
                    decided = Some((n, true));
                }
            }
            match decided {
                Some((n, true)) => {
                    pass += prob;
                    mean += prob * n as f64;
                }
                Some((n, false)) => {
                    fail += prob;
                    mean += prob * n as f64;
                }
                None => mean += prob * cap as f64,
            }
        }
        OperatingPoint {
            pass,
            fail,
            inconclusive: 1.0 - pass - fail,
            mean_requests: mean,
        }
    }

    #[test]
    fn the_walk_equals_the_enumeration_of_every_path() {
        // Arbitrary but non-trivial boundaries: fail low at n >= 3 with s == 0, fail high when
        // s >= n - 0 at n >= 4, pass in the middle from n = 5.
        let bounds: Vec<Bounds> = (0..=9u64)
            .map(|n| Bounds {
                fail_low: if n >= 3 { 0 } else { -1 },
                fail_high: if n >= 4 { n as i64 } else { n as i64 + 1 },
                pass_low: (n as i64) / 3,
                pass_high: (2 * n as i64) / 3,
            })
            .collect();
        for truth in [
            Truth::share(0.5),
            Truth::share(0.8),
            Truth {
                tested: 0.3,
                forbidden: 0.05,
            },
        ] {
            let exact = operating_point(&bounds, 5, 9, truth);
            let brute = enumerate(&bounds, 5, 9, truth);
            for (a, b) in [
                (exact.pass, brute.pass),
                (exact.fail, brute.fail),
                (exact.inconclusive, brute.inconclusive),
                (exact.mean_requests, brute.mean_requests),
            ] {
                assert!((a - b).abs() < 1e-12, "{exact:?} vs {brute:?}");
            }
        }
    }

    #[test]
    fn without_a_deciding_destination_only_leaks_matter() {
        let bounds: Vec<Bounds> = (0..=917).map(no_test_bounds).collect();
        let clean = operating_point(&bounds, 917, 917, Truth::share(0.0));
        assert_eq!(clean.pass, 1.0);
        assert_eq!(clean.mean_requests, 917.0);
        let leaky = operating_point(
            &bounds,
            917,
            917,
            Truth {
                tested: 0.0,
                forbidden: 0.01,
            },
        );
        // Caught unless 917 requests in a row avoid a 1 % leak.
        assert!((leaky.pass - 0.99f64.powi(917)).abs() < 1e-12);
        assert!(leaky.fail >= 1.0 - 1e-4);
    }
}
