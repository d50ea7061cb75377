//! qa-sentinel SSRF-safe HTTP client: egress policy on resolved addresses, pinned connections, re-checked redirects, size and time caps.
