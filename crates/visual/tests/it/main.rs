//! Browser tests against the installed Chromium (`/usr/bin/chromium`), with pages served by
//! the tests on 127.0.0.1. One test binary; one shared runtime (see `support::RT`).

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod faults;
mod pool;
mod ssrf;
mod stable;
mod support;
