//! The worker runtime: a bounded pool that leases scan jobs from the store's queue and runs
//! each through the [`ScanExecutor`] registered for its check type.
//!
//! A job's life here: lease (the store marks the scan `running` and counts an attempt) →
//! heartbeat every `heartbeat` while the executor runs (a lost lease cancels the run: another
//! worker owns it now) → complete (findings and summary in one transaction), or fail with a
//! retry after an exponential, jittered delay, or fail for good after the last attempt or on
//! a permanent error. On shutdown the pool stops leasing, lets running scans finish within a
//! grace period, and returns the rest to the queue without counting the attempt. A worker
//! that is killed outright loses nothing either: its leases expire and the reaper (any
//! worker) returns those jobs to the queue.

mod backoff;
mod executor;
pub mod executors;
mod pool;

pub use backoff::retry_delay;
pub use executor::{ExecError, ExecutorRegistry, JobContext, ScanExecutor, ScanOutcome};
pub use pool::{WorkerConfig, WorkerPool, WorkerPoolStats};
