//! qa-sentinel resilience primitives: circuit breaker, load balancer, retry backoff.
