//! What a benchmark may conclude from paired rounds: the geometric mean of
//! per-round ratios (A measured beside B in the same round), its 95 %
//! percentile-bootstrap confidence interval, and a verdict on a goal that
//! says "at least" or "at most" 1.0×. A goal is *met* only when the whole
//! interval is on its side, *not met* when the whole interval is on the
//! other side, and otherwise *not shown*: the rounds cannot tell the two
//! apart from the machine's noise.
//!
//! Rounds are resampled whole (a round's ratio keeps its pairing), with a
//! fixed seed, so the same measurements always print the same interval.
//!
//! A tail percentile of a short round is at the mercy of one stall (a
//! round with one 85 ms stall gives a p99 ratio of 50×, which moves a
//! geometric mean over 60 rounds by 7 %), so [`median_interval`] gives
//! the median of the per-round ratios with a distribution-free interval
//! (order statistics, as the sign test), judged the same way.
//!
//! The interval answers for noise, not for bias: a target that always runs
//! in the same place of a round (say, right after the backend's own run)
//! can be favoured every round alike. [`round_order`] gives each round's
//! order from a balanced Latin square, so that over a full cycle every
//! target runs in every place, and after every other target, equally often.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Resamples drawn for an interval.
const RESAMPLES: usize = 10_000;
/// Fewest rounds whose interval is judged. A percentile bootstrap of a few
/// rounds is too narrow: 4 rounds of two identical HAProxies gave an
/// interval of 0.81–0.91× for their p99 (BENCHMARKS.md, issue 15).
pub const MIN_ROUNDS: usize = 10;
/// The seed of the resampling (reproducible output for the same rounds).
const SEED: u64 = 0x5741_5244_454e; // "WARDEN"

/// The centre of a set of per-round ratios and its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Geometric mean of the ratios ([`paired_interval`]), or their
    /// median ([`median_interval`]).
    pub mean: f64,
    /// Low end of the 95 % interval.
    pub low: f64,
    /// High end of the 95 % interval.
    pub high: f64,
    /// Rounds it was computed from.
    pub rounds: usize,
}

/// Which side of 1.0× a goal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// The ratio must be at least 1.0 (e.g. requests/s).
    AtLeastOne,
    /// The ratio must be at most 1.0 (e.g. a latency percentile).
    AtMostOne,
}

/// What the rounds show about a goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The whole interval is on the goal's side of 1.0.
    Met,
    /// The whole interval is on the other side.
    NotMet,
    /// The interval spans 1.0.
    NotShown,
    /// Fewer than [`MIN_ROUNDS`] rounds: not judged, whatever the interval.
    TooFewRounds,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Met => "met",
            Verdict::NotMet => "NOT met",
            Verdict::NotShown => "not shown (the interval spans 1.00)",
            Verdict::TooFewRounds => {
                return write!(
                    f,
                    "not judged (fewer than {MIN_ROUNDS} rounds: run with `ROUNDS={MIN_ROUNDS}` or more)"
                )
            }
        })
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3}× (95 % CI {:.3}–{:.3}, {} rounds)",
            self.mean, self.low, self.high, self.rounds
        )
    }
}

/// The geometric mean of `ratios` and its bootstrap interval. Ratios that
/// are not finite and positive (a failed round) are left out; `None` when
/// none is left.
pub fn paired_interval(ratios: &[f64]) -> Option<Interval> {
    let logs: Vec<f64> = ratios
        .iter()
        .copied()
        .filter(|r| r.is_finite() && *r > 0.0)
        .map(f64::ln)
        .collect();
    if logs.is_empty() {
        return None;
    }
    let n = logs.len();
    let mean_of = |v: &mut dyn Iterator<Item = f64>| v.sum::<f64>() / n as f64;
    let mean = mean_of(&mut logs.iter().copied());
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| mean_of(&mut (0..n).map(|_| logs[rng.random_range(0..n)])))
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((RESAMPLES - 1) as f64 * q).round() as usize];
    Some(Interval {
        mean: mean.exp(),
        low: at(0.025).exp(),
        high: at(0.975).exp(),
        rounds: n,
    })
}

/// The median of `ratios` and a distribution-free interval of at least
/// 95 % coverage: the k-th smallest and k-th largest ratio, for the largest
/// k with P(Binomial(n, ½) < k) ≤ 2.5 % (below 6 rounds there is none:
/// the whole range, which [`Interval::verdict`] does not judge anyway).
/// Ratios that are not finite and positive are left out; `None` when
/// none is left.
pub fn median_interval(ratios: &[f64]) -> Option<Interval> {
    let mut v: Vec<f64> = ratios
        .iter()
        .copied()
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] * v[n / 2]).sqrt()
    };
    // P(Binomial(n, ½) ≤ i), in logs so that large n do not overflow.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let (mut ln_choose, mut cdf, mut k) = (0.0f64, 0.0f64, 0usize);
    for i in 0..n {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        cdf += (ln_choose + ln_half_n).exp();
        if cdf > 0.025 {
            break;
        }
        k = i + 1;
    }
    let k = k.max(1).min(n.div_ceil(2));
    Some(Interval {
        mean: median,
        low: v[k - 1],
        high: v[n - k],
        rounds: n,
    })
}

impl Interval {
    /// What this interval shows about `goal`. Fewer than [`MIN_ROUNDS`]
    /// rounds show nothing.
    pub fn verdict(&self, goal: Goal) -> Verdict {
        if self.rounds < MIN_ROUNDS {
            return Verdict::TooFewRounds;
        }
        let (good, bad) = match goal {
            Goal::AtLeastOne => (self.low >= 1.0, self.high < 1.0),
            Goal::AtMostOne => (self.high <= 1.0, self.low > 1.0),
        };
        if good {
            Verdict::Met
        } else if bad {
            Verdict::NotMet
        } else {
            Verdict::NotShown
        }
    }
}

/// The order in which to run `n` targets in round `round` (counted from
/// 0): row `round` of a Williams design, a Latin square (every target once
/// in every place over `n` rounds) balanced for carry-over (every target
/// right after every other one once). For an odd `n` the design needs its
/// mirror too, so a full cycle is [`order_cycle`] rounds.
pub fn round_order(n: usize, round: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    // First row: 0, 1, n-1, 2, n-2, …; row r adds r (mod n).
    let first: Vec<usize> = (0..n)
        .map(|j| match j {
            0 => 0,
            j if j % 2 == 1 => j.div_ceil(2),
            j => n - j / 2,
        })
        .collect();
    let r = round % order_cycle(n);
    let mut row: Vec<usize> = first.iter().map(|t| (t + r) % n).collect();
    if r >= n {
        row.reverse();
    }
    row
}

/// Rounds in a full cycle of [`round_order`]: `n` for an even `n`, `2n`
/// for an odd one.
pub fn order_cycle(n: usize) -> usize {
    if n.is_multiple_of(2) {
        n.max(1)
    } else {
        2 * n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_interval_is_the_sign_tests() {
        // n = 20: P(Bin(20, ½) ≤ 5) = 2.07 %, ≤ 6 = 5.77 %: the 6th
        // smallest and the 6th largest.
        let v: Vec<f64> = (1..=20).map(|i| i as f64).collect();
        let i = median_interval(&v).unwrap();
        assert_eq!((i.low, i.high, i.rounds), (6.0, 15.0, 20));
        assert!((i.mean - (10.0f64 * 11.0).sqrt()).abs() < 1e-12);
        // n = 10: ≤ 1 is 1.07 %, ≤ 2 is 5.47 %: the 2nd and the 9th.
        let v: Vec<f64> = (1..=10).rev().map(|i| i as f64).collect();
        let i = median_interval(&v).unwrap();
        assert_eq!((i.low, i.high), (2.0, 9.0));
        // n = 60: ≤ 21 is 1.36 %, ≤ 22 is 2.62 %: the 22nd and the 39th.
        let v: Vec<f64> = (1..=60).map(|i| i as f64).collect();
        let i = median_interval(&v).unwrap();
        assert_eq!((i.low, i.high), (22.0, 39.0));
        // Odd n: the middle one; below 6 rounds the whole range.
        let i = median_interval(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((i.mean, i.low, i.high), (2.0, 1.0, 3.0));
        assert_eq!(median_interval(&[f64::NAN, 0.0, -1.0]), None);
    }

    #[test]
    fn a_few_wild_rounds_move_the_mean_but_not_the_median() {
        // Level in 54 of 60 rounds (0.97–1.03), and six stalls of 50× on
        // one side: the geometric mean says "behind", the median does not.
        let mut v: Vec<f64> = (0..54).map(|i| 0.97 + 0.06 * (i as f64) / 53.0).collect();
        v.extend([50.0; 6]);
        let mean = paired_interval(&v).unwrap();
        assert!(mean.mean > 1.4, "{mean}");
        let median = median_interval(&v).unwrap();
        assert_eq!(
            median.verdict(Goal::AtMostOne),
            Verdict::NotShown,
            "{median}"
        );
        assert!(median.low < 1.0 && median.high > 1.0, "{median}");
        // A clear lag in most rounds is shown by both.
        let lag: Vec<f64> = (0..30).map(|i| 1.2 + 0.01 * (i % 5) as f64).collect();
        assert_eq!(
            median_interval(&lag).unwrap().verdict(Goal::AtMostOne),
            Verdict::NotMet
        );
        assert_eq!(
            median_interval(&lag).unwrap().verdict(Goal::AtLeastOne),
            Verdict::Met
        );
    }

    #[test]
    fn over_a_cycle_every_target_runs_in_every_place_and_after_every_other() {
        for n in 1..=7 {
            let cycle = order_cycle(n);
            let rows: Vec<Vec<usize>> = (0..cycle).map(|r| round_order(n, r)).collect();
            let per = cycle / n;
            for row in &rows {
                let mut sorted = row.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "n={n}: {row:?}");
            }
            for place in 0..n {
                for t in 0..n {
                    let times = rows.iter().filter(|r| r[place] == t).count();
                    assert_eq!(times, per, "n={n}: target {t} in place {place}: {rows:?}");
                }
            }
            for a in 0..n {
                for b in (0..n).filter(|b| *b != a) {
                    let after = rows
                        .iter()
                        .filter(|r| r.windows(2).any(|w| w[0] == a && w[1] == b))
                        .count();
                    assert_eq!(after, per, "n={n}: {b} after {a}: {rows:?}");
                }
            }
            // The next cycle repeats the first.
            assert_eq!(round_order(n, cycle), rows[0]);
        }
        assert!(round_order(0, 3).is_empty());
    }

    #[test]
    fn a_clear_lead_is_met_and_a_clear_lag_is_not() {
        let ahead = [1.08, 1.11, 1.06, 1.09, 1.12, 1.07, 1.10, 1.09, 1.08, 1.10];
        let i = paired_interval(&ahead).unwrap();
        assert!(i.low > 1.05 && i.high < 1.12, "{i}");
        assert_eq!(i.verdict(Goal::AtLeastOne), Verdict::Met);
        assert_eq!(i.verdict(Goal::AtMostOne), Verdict::NotMet);
        let behind: Vec<f64> = ahead.iter().map(|r| 1.0 / r).collect();
        let j = paired_interval(&behind).unwrap();
        assert_eq!(j.verdict(Goal::AtLeastOne), Verdict::NotMet);
        assert_eq!(j.verdict(Goal::AtMostOne), Verdict::Met);
        // Symmetric: the interval of the inverses is the inverse interval.
        assert!((j.mean * i.mean - 1.0).abs() < 1e-9);
    }

    #[test]
    fn noise_around_parity_is_not_shown_either_way() {
        // Rounds as an A/A control gives them: both sides of 1.0, wide.
        let aa = [0.94, 1.26, 1.02, 0.88, 1.05, 0.97, 1.10, 0.91, 1.01, 0.95];
        let i = paired_interval(&aa).unwrap();
        assert!(i.low < 1.0 && i.high > 1.0, "{i}");
        assert_eq!(i.verdict(Goal::AtLeastOne), Verdict::NotShown);
        assert_eq!(i.verdict(Goal::AtMostOne), Verdict::NotShown);
        // The centre is the geometric mean, not the arithmetic one.
        let g = (aa.iter().map(|r: &f64| r.ln()).sum::<f64>() / aa.len() as f64).exp();
        assert!((i.mean - g).abs() < 1e-12);
        // The same rounds give the same interval (fixed seed).
        assert_eq!(paired_interval(&aa), Some(i));
    }

    #[test]
    fn too_few_or_broken_rounds_show_nothing() {
        assert_eq!(paired_interval(&[]), None);
        assert_eq!(paired_interval(&[f64::NAN, 0.0, -1.0, f64::INFINITY]), None);
        // A clear lead over too few rounds is not judged.
        let few = paired_interval(&[1.5, 1.6, 1.55, 1.52]).unwrap();
        assert!(few.low > 1.0, "{few}");
        assert_eq!(few.verdict(Goal::AtLeastOne), Verdict::TooFewRounds);
        assert!(few
            .verdict(Goal::AtLeastOne)
            .to_string()
            .contains("fewer than 10 rounds"));
        // A failed round (NaN) is left out, not counted as a round.
        let mut rounds = vec![1.2, 1.3, 1.25, 1.22, 1.28, 1.24, 1.26, 1.21, 1.27];
        rounds.push(f64::NAN);
        let i = paired_interval(&rounds).unwrap();
        assert_eq!(i.rounds, 9);
        assert_eq!(i.verdict(Goal::AtLeastOne), Verdict::TooFewRounds);
        rounds.push(1.23);
        let j = paired_interval(&rounds).unwrap();
        assert_eq!(j.rounds, 10);
        assert_eq!(j.verdict(Goal::AtLeastOne), Verdict::Met);
    }
}
