//! qa-sentinel worker runtime: leases scan jobs, runs them through ScanExecutors, heartbeats, retries.
