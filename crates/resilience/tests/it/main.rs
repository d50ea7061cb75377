//! Integration tests of the circuit breaker and the load balancer (one test binary).

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod balancer;
mod breaker;
