//! Statistical checks of weighted traffic splits, with stated guarantees.
//!
//! A gateway route splits traffic over destinations by weight; Envoy draws a destination for
//! every request independently, so the counts observed over `n` requests are multinomial with
//! shares `w_i / Σw`. The conformance suites we compare against judge such counts with fixed
//! tolerance bands and retries, whose false-alarm rate and power nobody knows. Every check here
//! instead declares three numbers in [`CheckSettings`] and keeps them:
//!
//! * `alpha`: the probability that a correct gateway is failed (derived from a per-run
//!   [`Budget`] shared by all checks of a run);
//! * `min_detectable_deviation` (δ) and `power`: a gateway whose share of any destination is off
//!   by δ or more is failed with probability at least `power`.
//!
//! Two ways to judge a split are offered:
//!
//! * **Fixed sample** ([`plan`] then [`judge`]): [`plan`] computes the number of requests for
//!   which a Pearson chi-square goodness-of-fit test at level `alpha` reaches `power` against the
//!   least favourable deviation of size δ; [`judge`] runs the test on the observed counts and
//!   reports simultaneous Clopper–Pearson intervals, zero-weight leaks and the minimum detectable
//!   deviation actually achieved at the observed `n`.
//! * **Sequential** ([`SequentialCheck`]): per-request anytime-valid confidence sequences (a
//!   Beta-mixture likelihood ratio per destination). It fails as soon as the expected share of some
//!   destination is excluded, passes as soon as every share is shown to lie within δ of its
//!   expected value, and gives up as *inconclusive* at a cap of [`Plan::cap_factor`] times the
//!   fixed-sample plan. Because the confidence sequences are valid at every stopping time, no retry
//!   loop is needed and no guarantee is lost to peeking.
//!
//! Zero-weight destinations (and destinations not in the split at all) must receive nothing: any
//! hit fails the check outright, which costs no false-alarm budget because a correct gateway never
//! produces one. A split with zero-weight destinations is never passed before enough requests to
//! catch a leak of [`CheckSettings::min_detectable_leak`] (1 %) with probability
//! [`CheckSettings::leak_power`] (1 - 1e-4): 917 requests. The verdict states that guarantee
//! ([`LeakGuarantee`]) and the upper confidence bound on the leak rate reached.
//!
//! A split check counts replies, not connections. [`ConnectionCheck`] adds what counting cannot
//! see: that the pick does not depend on the client connection (a gateway that picks once per
//! connection has the right shares over many connections). It is anytime-valid too, so it runs
//! alongside either split check on the same replies, with its own share of the run's budget.
//!
//! The module is pure: no IO, no async, no global state. Its guarantees are proved by seeded
//! simulation in the unit tests (`simulation_tests`).

mod budget;
mod confidence;
mod connection;
mod fixed;
mod gof;
mod intervals;
mod plan;
mod sequential;
mod spec;
mod units;
mod verdict;

#[cfg(test)]
mod simulation_tests;
#[cfg(test)]
mod units_power_tests;

pub use budget::{Budget, Correction};
pub use connection::{ConnectionCheck, ConnectionState, ConnectionVerdict};
pub use fixed::{FixedCheck, judge};
pub use intervals::{clopper_pearson, clopper_pearson_upper, leak_detection_probability};
pub use plan::{LeastFavourable, Plan, plan};
pub use sequential::{SequentialCheck, SequentialState};
pub use spec::{CheckSettings, SplitSpec, StatsError};
pub use units::{
    RoundRobinCheck, RoundRobinDestination, RoundRobinVerdict, StickinessCheck, StickinessVerdict,
    UnitReply, smooth_wrr_step, smooth_wrr_window_bound,
};
pub use verdict::{CheckMethod, DestinationResult, LeakGuarantee, Outcome, SplitVerdict};
