//! The Redis backends against real servers started by the tests: a standalone
//! `redis-server` and a three-master Redis Cluster on free loopback ports (both with `KEYS`
//! renamed away, so any use of it fails).

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod backends;
mod outage;
