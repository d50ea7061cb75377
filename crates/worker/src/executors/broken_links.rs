//! `broken-links`: the link engine of `sentinel-links`, run for one scan.

use crate::executor::{ExecError, JobContext, ScanExecutor, ScanOutcome};
use async_trait::async_trait;
use sentinel_core::CheckType;
use sentinel_links::{
    BrokenKind, CheckerConfig, EgressPolicy, ExternalCache, LinkChecker, NoProgress, RunError,
};

/// Runs broken-links scans with the service's egress policy and a cache of external results
/// shared by every scan of this worker process.
#[derive(Clone, Debug)]
pub struct BrokenLinksExecutor {
    egress: EgressPolicy,
    cache: ExternalCache,
    user_agent: String,
}

impl BrokenLinksExecutor {
    /// An executor whose checks may only reach what `egress` allows, sharing `cache`.
    #[must_use]
    pub fn new(egress: EgressPolicy, cache: ExternalCache, user_agent: String) -> Self {
        Self {
            egress,
            cache,
            user_agent,
        }
    }
}

/// Whether a broken start page is worth another attempt: the site may be down for a moment
/// (connection, DNS, timeout, 5xx), but a 404 or a refused address will not change.
fn start_page_retryable(kind: BrokenKind, status: Option<u16>) -> bool {
    match kind {
        BrokenKind::Connect
        | BrokenKind::Dns
        | BrokenKind::Timeout
        | BrokenKind::Tls
        | BrokenKind::Protocol => true,
        BrokenKind::Status => status.is_none_or(|s| s >= 500 || s == 429),
        _ => false,
    }
}

#[async_trait]
impl ScanExecutor for BrokenLinksExecutor {
    fn check_type(&self) -> CheckType {
        CheckType::BrokenLinks
    }

    async fn execute(&self, ctx: &JobContext) -> Result<ScanOutcome, ExecError> {
        let mut config = CheckerConfig::from_scan_options(&ctx.scan.options, self.egress.clone())
            .map_err(|e| ExecError::Permanent(format!("invalid options: {e}")))?
            .with_cache(self.cache.clone());
        config.user_agent.clone_from(&self.user_agent);
        let start = url::Url::parse(&ctx.scan.url)
            .map_err(|e| ExecError::Permanent(format!("invalid URL {}: {e}", ctx.scan.url)))?;
        let report = LinkChecker::new(config)
            .run(start, &NoProgress, ctx.cancel.clone())
            .await
            .map_err(|e| match e {
                RunError::StartPage { kind, status, .. } if start_page_retryable(kind, status) => {
                    ExecError::Retryable(e.to_string())
                }
                RunError::Resolver(_) | RunError::Client(_) | RunError::Cancelled => {
                    ExecError::Retryable(e.to_string())
                }
                other => ExecError::Permanent(other.to_string()),
            })?;
        let mut summary = serde_json::to_value(report.summary()).unwrap_or_default();
        if let (Some(obj), Ok(stats)) =
            (summary.as_object_mut(), serde_json::to_value(report.stats))
        {
            obj.insert("stats".into(), stats);
        }
        Ok(ScanOutcome {
            summary,
            findings: report.to_findings(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_start_failures_are_retried() {
        assert!(start_page_retryable(BrokenKind::Connect, None));
        assert!(start_page_retryable(BrokenKind::Status, Some(503)));
        assert!(!start_page_retryable(BrokenKind::Status, Some(404)));
        assert!(!start_page_retryable(BrokenKind::Blocked, None));
    }
}
