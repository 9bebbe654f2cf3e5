//! Statistical checks of weighted traffic splits, with stated guarantees.
//!
//! A gateway route splits traffic over destinations by weight; Envoy draws a destination for
//! every request independently, so the counts observed over `n` requests are multinomial with
//! shares `w_i / Σw`. The conformance suites we compare against judge such counts with fixed
//! tolerance bands and retries, whose false-alarm rate and power nobody knows. Every check here
//! instead declares its numbers in [`CheckSettings`] and keeps them:
//!
//! * `alpha` (α): the probability that a correct gateway is failed (the check's share of a
//!   per-run [`Budget`]). **A fail spends α.**
//! * `min_detectable_deviation` (δ) and `power`: a gateway whose share of any destination is off
//!   by δ or more passes with probability at most β = 1 - power, the miss rate. **A pass spends
//!   β**, and is an equivalence claim: every share lies within δ of its weight.
//!
//! Two ways to judge a split are offered:
//!
//! * **Fixed sample** ([`plan`] then [`judge`]): exact binomial tests only (`exact`): an
//!   equal-tailed test per deciding destination at `α / m` to fail, two one-sided tests at β
//!   (TOST) to pass, inconclusive in between. [`plan`] picks the `n` at which a gateway on an
//!   edge `p ± δ` fails with the declared power and a correct gateway lands in the pass region
//!   with probability at least 1 - α, both computed exactly.
//! * **Sequential** ([`SequentialCheck`], the default): per-request anytime-valid confidence
//!   sequences (Beta mixtures) to fail, sequential probability ratio tests against `p ± δ` to
//!   pass, and a cap. A correct 80/20 split passes after about 900 requests on average at the
//!   walkthrough's α (1.25e-5), δ = 5 points and β = 0.01; 50/50 after about 1,400.
//!
//! With one deciding destination (two positive weights, or one plus zero weights) the check's
//! state is one binomial count, so its operating characteristics (probabilities of pass, fail and
//! inconclusive, and the mean number of requests, for any true share) are computed exactly by
//! dynamic programming ([`oc`], [`SequentialCheck::operating_point`]); the plan sizes the cap on
//! them and reports what a correct gateway gets ([`CorrectGateway`]), inconclusive counted as a
//! red gate. With three or more deciding destinations the plan uses exact binomial bounds and the
//! tests add seeded simulation.
//!
//! Two figures are never confused: [`SplitVerdict::unexcluded_deviation`] is the largest
//! deviation the data leaves open at the miss rate (what a pass claims is at most δ), and
//! [`SplitVerdict::detectable_deviation`] (fixed samples only) is the deviation the sample size
//! fails with the declared power.
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
//! The module is pure: no IO, no async, no global state. Its guarantees are computed exactly in
//! the unit tests where one count decides (`operating_tests`, `exact`) and proved by seeded
//! simulation otherwise (`simulation_tests`).

mod budget;
mod confidence;
mod connection;
mod exact;
mod fixed;
mod intervals;
pub mod oc;
mod plan;
mod sequential;
mod spec;
mod units;
mod verdict;

#[cfg(test)]
mod operating_tests;
#[cfg(test)]
mod simulation_tests;
#[cfg(test)]
mod units_power_tests;

pub use budget::{Budget, Correction};
pub use connection::{ConnectionCheck, ConnectionState, ConnectionVerdict};
pub use fixed::{FixedCheck, judge};
pub use intervals::{clopper_pearson, clopper_pearson_upper, leak_detection_probability};
pub use oc::{OperatingPoint, Truth};
pub use plan::{CorrectGateway, LeastFavourable, Plan, plan};
pub use sequential::{SequentialCheck, SequentialState};
pub use spec::{CheckSettings, SplitSpec, StatsError};
pub use units::{
    RoundRobinCheck, RoundRobinDestination, RoundRobinVerdict, StickinessCheck, StickinessVerdict,
    UnitReply, smooth_wrr_step, smooth_wrr_window_bound,
};
pub use verdict::{CheckMethod, DestinationResult, LeakGuarantee, Outcome, SplitVerdict};
