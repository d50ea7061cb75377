//! Integration tests of the HTTP API: the real `qa-sentinel` binary on a random port,
//! against SQLite and against PostgreSQL (every test runs on both backends).

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod helpers;

mod contract;
mod durability;
mod errors;
mod http;
mod visual;
