//! A load balancer over a fixed set of backends (browser instances, …), with the guide's three
//! strategies.
//!
//! The guide's `weighted-response-time` mode computes weights and then never uses them. Here
//! the weights decide every pick: each backend's weight is `(1 - error_rate)² / latency`, both
//! tracked as exponentially weighted moving averages of the outcomes its leases report, and
//! picks follow nginx's *smooth weighted round-robin*, so the distribution is exact and
//! deterministic (no random numbers, reproducible tests) and picks of one backend are spread out
//! rather than bunched. Every backend keeps at least `min_share` of the best backend's weight so
//! that a backend that was slow or failing still gets the occasional request and its averages
//! can recover once it is healthy again.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// How a [`LoadBalancer`] chooses a backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Each backend in turn.
    RoundRobin,
    /// The backend with the fewest leases in flight (ties in turn).
    #[default]
    LeastConnections,
    /// In proportion to weights learnt from latency and error rate.
    WeightedResponseTime,
}

impl Strategy {
    /// The configuration name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::LeastConnections => "least-connections",
            Self::WeightedResponseTime => "weighted-response-time",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown strategy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown load-balancing strategy `{0}` \
     (expected round-robin, least-connections or weighted-response-time)"
)]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, UnknownStrategy> {
        match s {
            "round-robin" => Ok(Self::RoundRobin),
            "least-connections" => Ok(Self::LeastConnections),
            "weighted-response-time" | "weighted" => Ok(Self::WeightedResponseTime),
            other => Err(UnknownStrategy(other.to_owned())),
        }
    }
}

/// Tuning of the weighted-response-time strategy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightConfig {
    /// EWMA smoothing factor in (0, 1]: the weight of the newest sample.
    pub alpha: f64,
    /// Floor of every backend's weight, as a share of the best backend's weight, so that a
    /// backend that went bad keeps being sampled and can win its traffic back.
    pub min_share: f64,
}

impl Default for WeightConfig {
    fn default() -> Self {
        Self {
            alpha: 0.2,
            min_share: 0.05,
        }
    }
}

/// How a lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The backend did its job.
    Success,
    /// The backend failed.
    Failure,
}

/// One backend's numbers at one moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendStats {
    /// Position in the balancer.
    pub index: usize,
    /// Leases in flight.
    pub in_flight: u32,
    /// Leases handed out since creation.
    pub picks: u64,
    /// Latency EWMA of successful leases, in ms (`None` before the first).
    pub latency_ms: Option<f64>,
    /// Error-rate EWMA (0..=1).
    pub error_rate: f64,
    /// The weight the weighted strategy uses now, normalised so that the weights sum to 1.
    pub weight: f64,
}

struct Slot<T> {
    value: T,
    in_flight: AtomicU32,
    picks: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Learnt {
    latency_ms: Option<f64>,
    error_rate: f64,
    /// Smooth weighted round-robin's running credit.
    credit: f64,
}

/// Spreads calls over a fixed set of backends. `T` is whatever identifies a backend; the
/// balancer only hands out [`Lease`]s on it.
pub struct LoadBalancer<T> {
    slots: Box<[Slot<T>]>,
    strategy: Strategy,
    weights: WeightConfig,
    cursor: AtomicUsize,
    learnt: Mutex<Box<[Learnt]>>,
}

impl<T: fmt::Debug> fmt::Debug for LoadBalancer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadBalancer")
            .field("strategy", &self.strategy)
            .field(
                "backends",
                &self.slots.iter().map(|s| &s.value).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<T> LoadBalancer<T> {
    /// A balancer over `backends` with `strategy` and default weight tuning.
    #[must_use]
    pub fn new(backends: impl IntoIterator<Item = T>, strategy: Strategy) -> Self {
        let slots: Box<[Slot<T>]> = backends
            .into_iter()
            .map(|value| Slot {
                value,
                in_flight: AtomicU32::new(0),
                picks: AtomicU64::new(0),
            })
            .collect();
        let learnt = vec![Learnt::default(); slots.len()].into_boxed_slice();
        Self {
            slots,
            strategy,
            weights: WeightConfig::default(),
            cursor: AtomicUsize::new(0),
            learnt: Mutex::new(learnt),
        }
    }

    /// Replaces the weight tuning (values are clamped into their valid ranges).
    #[must_use]
    pub fn with_weight_config(mut self, config: WeightConfig) -> Self {
        self.weights = WeightConfig {
            alpha: config.alpha.clamp(0.01, 1.0),
            min_share: config.min_share.clamp(0.0, 1.0),
        };
        self
    }

    /// The strategy.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Number of backends.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no backends.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The backend at `index`.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<&T> {
        self.slots.get(index).map(|s| &s.value)
    }

    /// Every backend, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|s| &s.value)
    }

    /// Leases in flight on backend `index`.
    #[must_use]
    pub fn in_flight(&self, index: usize) -> u32 {
        self.slots
            .get(index)
            .map_or(0, |s| s.in_flight.load(Ordering::Relaxed))
    }

    /// Picks a backend by the strategy.
    #[must_use]
    pub fn pick(&self) -> Option<Lease<'_, T>> {
        self.pick_where(|_| true)
    }

    /// Picks a backend by the strategy among those for which `eligible` is true (e.g. whose
    /// circuit breaker would admit a call). `None` when there is none.
    #[must_use]
    pub fn pick_where(&self, eligible: impl Fn(&T) -> bool) -> Option<Lease<'_, T>> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let index = match self.strategy {
            Strategy::RoundRobin => loop {
                // The turn passes to the next eligible backend after the last one picked, so
                // an ineligible backend's turns are shared out rather than all given to its
                // successor.
                let start = self.cursor.load(Ordering::Relaxed);
                let chosen = (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&i| eligible(&self.slots[i].value))?;
                if self
                    .cursor
                    .compare_exchange(start, chosen + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    break Some(chosen);
                }
            },
            Strategy::LeastConnections => {
                // Start the scan at a rotating offset so that idle backends share ties evenly.
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| (start + i) % n)
                    .filter(|&i| eligible(&self.slots[i].value))
                    .min_by_key(|&i| self.slots[i].in_flight.load(Ordering::Relaxed))
            }
            Strategy::WeightedResponseTime => self.pick_weighted(&eligible),
        }?;
        let slot = &self.slots[index];
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        slot.picks.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            balancer: self,
            index,
            started: Instant::now(),
            done: false,
        })
    }

    fn pick_weighted(&self, eligible: &impl Fn(&T) -> bool) -> Option<usize> {
        let mut learnt = self.learnt.lock();
        let weights = effective_weights(&learnt, self.weights.min_share);
        let eligible_sum: f64 = self
            .slots
            .iter()
            .zip(&weights)
            .filter(|(slot, _)| eligible(&slot.value))
            .map(|(_, w)| w)
            .sum();
        if eligible_sum <= 0.0 {
            return None;
        }
        // Credits are kept in shares (weights normalised to sum to 1) so that a change of the
        // weights' scale, e.g. when the first latency sample arrives, does not leave a backend
        // with a debt in the old unit.
        let mut best: Option<usize> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            if !eligible(&slot.value) {
                continue;
            }
            learnt[i].credit += weights[i] / eligible_sum;
            if best.is_none_or(|b| learnt[i].credit > learnt[b].credit) {
                best = Some(i);
            }
        }
        let chosen = best?;
        learnt[chosen].credit -= 1.0;
        Some(chosen)
    }

    fn record(&self, index: usize, outcome: Outcome, latency: Duration) {
        let alpha = self.weights.alpha;
        let mut learnt = self.learnt.lock();
        let l = &mut learnt[index];
        let err = if outcome == Outcome::Failure {
            1.0
        } else {
            0.0
        };
        l.error_rate += alpha * (err - l.error_rate);
        // Only successes teach latency: failures are often fast (refused, reset), and a
        // failing backend must not look like a quick one.
        if outcome == Outcome::Success {
            let ms = latency.as_secs_f64() * 1000.0;
            l.latency_ms = Some(match l.latency_ms {
                Some(avg) => avg + alpha * (ms - avg),
                None => ms,
            });
        }
    }

    /// Every backend's numbers now.
    #[must_use]
    pub fn snapshot(&self) -> Vec<BackendStats> {
        let learnt = self.learnt.lock();
        let weights = effective_weights(&learnt, self.weights.min_share);
        let sum: f64 = weights.iter().sum();
        self.slots
            .iter()
            .enumerate()
            .map(|(index, slot)| BackendStats {
                index,
                in_flight: slot.in_flight.load(Ordering::Relaxed),
                picks: slot.picks.load(Ordering::Relaxed),
                latency_ms: learnt[index].latency_ms,
                error_rate: learnt[index].error_rate,
                weight: if sum > 0.0 { weights[index] / sum } else { 0.0 },
            })
            .collect()
    }
}

/// Lower bound of the latency used in weights, so that a sub-millisecond backend does not get
/// an unbounded weight.
const LATENCY_FLOOR_MS: f64 = 0.1;

/// `(1 - error_rate)² / latency`, floored at `min_share` of the best; a backend without a
/// latency sample yet is assumed to be as fast as the average of the others (or 1 ms).
fn effective_weights(learnt: &[Learnt], min_share: f64) -> Vec<f64> {
    let known: Vec<f64> = learnt.iter().filter_map(|l| l.latency_ms).collect();
    let mean = if known.is_empty() {
        1.0
    } else {
        known.iter().sum::<f64>() / known.len() as f64
    };
    let raw: Vec<f64> = learnt
        .iter()
        .map(|l| {
            let latency = l.latency_ms.unwrap_or(mean).max(LATENCY_FLOOR_MS);
            let health = (1.0 - l.error_rate).clamp(0.0, 1.0);
            health * health / latency
        })
        .collect();
    let best = raw.iter().copied().fold(0.0_f64, f64::max);
    let floor = if best > 0.0 { best * min_share } else { 1.0 };
    raw.into_iter().map(|w| w.max(floor)).collect()
}

/// One use of a backend. Counts as in flight until dropped; report how it went with
/// [`success`](Self::success) / [`failure`](Self::failure) (latency measured from the pick) or
/// [`finish`](Self::finish). A lease dropped without a report was cancelled by the caller and
/// teaches the weights nothing.
#[must_use = "a lease reports nothing unless finished"]
pub struct Lease<'a, T> {
    balancer: &'a LoadBalancer<T>,
    index: usize,
    started: Instant,
    done: bool,
}

impl<T: fmt::Debug> fmt::Debug for Lease<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("index", &self.index)
            .field("backend", &**self)
            .finish_non_exhaustive()
    }
}

impl<T> Lease<'_, T> {
    /// Position of the chosen backend.
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }

    /// The backend worked; latency is the time since the pick.
    pub fn success(self) {
        let latency = self.started.elapsed();
        self.finish(Outcome::Success, latency);
    }

    /// The backend failed.
    pub fn failure(self) {
        let latency = self.started.elapsed();
        self.finish(Outcome::Failure, latency);
    }

    /// Reports an outcome with an explicitly measured latency.
    pub fn finish(mut self, outcome: Outcome, latency: Duration) {
        self.done = true;
        self.balancer.record(self.index, outcome, latency);
    }
}

impl<T> Deref for Lease<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.balancer.slots[self.index].value
    }
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        self.balancer.slots[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_from_their_names() {
        for s in [
            Strategy::RoundRobin,
            Strategy::LeastConnections,
            Strategy::WeightedResponseTime,
        ] {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
        }
        assert!("random".parse::<Strategy>().is_err());
    }

    #[test]
    fn weights_follow_latency_and_errors() {
        let learnt = [
            Learnt {
                latency_ms: Some(10.0),
                error_rate: 0.0,
                credit: 0.0,
            },
            Learnt {
                latency_ms: Some(20.0),
                error_rate: 0.0,
                credit: 0.0,
            },
            Learnt {
                latency_ms: Some(10.0),
                error_rate: 0.5,
                credit: 0.0,
            },
            Learnt {
                latency_ms: None,
                error_rate: 0.0,
                credit: 0.0,
            },
        ];
        let w = effective_weights(&learnt, 0.0);
        assert!((w[0] - 0.1).abs() < 1e-12);
        assert!((w[1] - 0.05).abs() < 1e-12);
        assert!((w[2] - 0.025).abs() < 1e-12);
        // Unknown latency: the mean of the known ones (40/3 ms).
        assert!((w[3] - 3.0 / 40.0).abs() < 1e-12);
        let floored = effective_weights(
            &[
                Learnt {
                    latency_ms: Some(1.0),
                    error_rate: 0.0,
                    credit: 0.0,
                },
                Learnt {
                    latency_ms: Some(1.0),
                    error_rate: 1.0,
                    credit: 0.0,
                },
            ],
            0.05,
        );
        assert!((floored[1] - 0.05).abs() < 1e-12);
    }
}
