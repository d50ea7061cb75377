//! qa-sentinel resilience primitives: a circuit breaker and a load balancer.
//!
//! * [`CircuitBreaker`] guards one dependency (a browser instance, the database, Redis):
//!   closed / open / half-open with a failure-rate window, bounded half-open probes, a call
//!   timeout that really cancels the call, and optional slow-call detection. Its state is
//!   exported as the `circuit_breaker_state{name}` gauge (0 closed, 1 open, 2 half-open) and
//!   readable with [`CircuitBreaker::snapshot`] for `/health/performance`.
//! * [`LoadBalancer`] spreads calls over several backends by round-robin, least-connections or
//!   a weighted-response-time strategy whose weights are learnt from latency and error rate.
//!
//! Both are runtime-agnostic apart from using `tokio::time` for the clock (so tests can pause
//! and advance it) and for the call timeout.

mod balancer;
mod breaker;

pub use balancer::{
    BackendStats, Lease, LoadBalancer, Outcome, Strategy, UnknownStrategy, WeightConfig,
};
pub use breaker::{
    BreakerConfig, BreakerConfigError, BreakerError, BreakerSnapshot, BreakerState, CircuitBreaker,
    Permit, Rejected, SlowCallRule, Transition, TransitionReason,
};
