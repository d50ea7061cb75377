//! qa-sentinel caches and shared limits: multi-level cache (in-process L1, Redis L2), permission and scan-result caches, rate limiter, distributed lock.
