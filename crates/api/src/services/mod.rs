//! The domain layer behind the handlers: access control, scans, group commit.

pub(crate) mod access;
pub(crate) mod baselines;
pub(crate) mod group_commit;
pub(crate) mod scans;
