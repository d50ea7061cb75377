//! `visual-regression`: capture the page with the browser pool, compare it with the page's
//! approved baseline, record what changed.
//!
//! - The first run of a page (per viewport and capture mode) has nothing to compare with:
//!   its capture becomes the baseline (`verdict: "baseline-created"`, no finding).
//! - Later runs compare with `sentinel-pixeldiff`, which decides on changed regions (colour,
//!   content, moved structure) and tolerates anti-aliasing and font-rendering noise. A
//!   difference becomes one `visual-change` finding with the mismatch ratio, the regions and
//!   links to the three images.
//! - Every run leaves `current.png` (and, when compared, `baseline.png` and `diff.png`) under
//!   the scan's artifacts, so the scan is self-contained and served with its permissions;
//!   `POST /api/sites/{id}/baselines` approves a run's capture as the new baseline.

use crate::executor::{ExecError, JobContext, ScanExecutor, ScanOutcome};
use async_trait::async_trait;
use bytes::Bytes;
use sentinel_core::{CheckType, FindingKind, NewFinding, ScanId, Severity, now_millis};
use sentinel_pixeldiff::{DiffOptions, DiffResult, compare_png};
use sentinel_store::artifacts::{
    ArtifactError, ArtifactStore, baseline_artifact_key, scan_artifact_key,
};
use sentinel_store::{Baseline, Store, StoreError};
use sentinel_visual::{
    BrowserPool, Capture, CaptureErrorKind, CaptureRequest, PoolConfig, PoolStats,
};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Runs visual-regression scans. The browser pool starts on the first scan, so a process that
/// never runs one (or a machine without Chromium running link checks) pays nothing for it.
pub struct VisualExecutor {
    config: PoolConfig,
    pool: OnceCell<Arc<BrowserPool>>,
    store: Arc<dyn Store>,
    artifacts: Arc<dyn ArtifactStore>,
}

impl std::fmt::Debug for VisualExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisualExecutor")
            .field("started", &self.pool.initialized())
            .finish_non_exhaustive()
    }
}

impl VisualExecutor {
    /// An executor that will start a browser pool with `config` when first needed.
    #[must_use]
    pub fn new(
        config: PoolConfig,
        store: Arc<dyn Store>,
        artifacts: Arc<dyn ArtifactStore>,
    ) -> Self {
        Self {
            config,
            pool: OnceCell::new(),
            store,
            artifacts,
        }
    }

    /// The pool's gauges, once it has started.
    #[must_use]
    pub fn stats(&self) -> Option<PoolStats> {
        self.pool.get().map(|p| p.stats())
    }

    /// Stops the browsers (no Chromium process is left behind).
    pub async fn shutdown(&self) {
        if let Some(pool) = self.pool.get() {
            pool.shutdown().await;
        }
    }

    async fn pool(&self) -> Result<&Arc<BrowserPool>, ExecError> {
        self.pool
            .get_or_try_init(|| async {
                BrowserPool::start(self.config.clone())
                    .await
                    .map(Arc::new)
                    .map_err(|e| {
                        // Not cached: the next scan tries again (Chromium may have been installed,
                        // or a remote browser may be back).
                        ExecError::Retryable(format!(
                            "the browser pool could not start: {e} (is Chromium installed at {}?)",
                            self.config.executable.display()
                        ))
                    })
            })
            .await
    }
}

fn artifact_url(scan: ScanId, name: &str) -> String {
    format!("/api/scans/{scan}/artifacts/{name}")
}

fn store_error(what: &str, e: &StoreError) -> ExecError {
    ExecError::Retryable(format!("{what}: {e}"))
}

fn artifact_error(what: &str, e: &ArtifactError) -> ExecError {
    ExecError::Retryable(format!("{what}: {e}"))
}

/// Whether a capture failure may go away on another attempt.
fn capture_error(kind: CaptureErrorKind, message: String) -> ExecError {
    match kind {
        CaptureErrorKind::InvalidRequest
        | CaptureErrorKind::BlockedByPolicy
        | CaptureErrorKind::WaitForTimeout => ExecError::Permanent(message),
        _ => ExecError::Retryable(message),
    }
}

#[async_trait]
impl ScanExecutor for VisualExecutor {
    fn check_type(&self) -> CheckType {
        CheckType::VisualRegression
    }

    async fn execute(&self, ctx: &JobContext) -> Result<ScanOutcome, ExecError> {
        let scan = &ctx.scan;
        let options = &scan.options;
        let visual = options.visual.clone().unwrap_or_default();
        let url = url::Url::parse(&scan.url)
            .map_err(|e| ExecError::Permanent(format!("invalid URL {}: {e}", scan.url)))?;
        let request = CaptureRequest::from_scan(url, options);
        let pool = self.pool().await?;
        let capture: Capture = tokio::select! {
            r = pool.capture(&request) => r.map_err(|e| capture_error(e.kind(), e.to_string()))?,
            () = ctx.cancel.cancelled() => return Err(ExecError::Retryable("cancelled".into())),
        };
        let current_key = scan_artifact_key(scan.id, "current.png");
        self.artifacts
            .put(&current_key, capture.png.clone(), "image/png")
            .await
            .map_err(|e| artifact_error("storing the capture", &e))?;

        let mut summary = json!({
            "page": scan.url,
            "viewport": options.viewport.as_str(),
            "fullPage": visual.full_page,
            "width": capture.width,
            "height": capture.height,
            "truncated": capture.truncated,
            "httpStatus": capture.status,
            "networkIdle": capture.network_idle,
            "blockedRequests": capture.blocked.len(),
            "artifacts": {"current": artifact_url(scan.id, "current.png")},
        });
        let baseline = self
            .store
            .get_baseline(scan.site_id, &scan.url, options.viewport, visual.full_page)
            .await
            .map_err(|e| store_error("reading the baseline", &e))?;
        let Some(baseline) = baseline else {
            let key = baseline_artifact_key(scan.site_id, scan.id);
            self.artifacts
                .copy(&current_key, &key)
                .await
                .map_err(|e| artifact_error("creating the baseline", &e))?;
            self.store
                .put_baseline(&Baseline {
                    site_id: scan.site_id,
                    page_url: scan.url.clone(),
                    viewport: options.viewport,
                    full_page: visual.full_page,
                    artifact_key: key,
                    width: capture.width,
                    height: capture.height,
                    scan_id: scan.id,
                    approved_by: None,
                    updated_at: now_millis(),
                })
                .await
                .map_err(|e| store_error("recording the baseline", &e))?;
            summary["verdict"] = json!("baseline-created");
            return Ok(ScanOutcome {
                summary,
                findings: Vec::new(),
            });
        };

        let baseline_png = self
            .artifacts
            .get(&baseline.artifact_key)
            .await
            .map_err(|e| artifact_error("reading the baseline image", &e))?;
        self.artifacts
            .put(
                &scan_artifact_key(scan.id, "baseline.png"),
                baseline_png.clone(),
                "image/png",
            )
            .await
            .map_err(|e| artifact_error("storing the baseline copy", &e))?;
        let diff_options = DiffOptions::default().with_threshold(visual.threshold);
        let current_png = capture.png.clone();
        let result: DiffResult = tokio::task::spawn_blocking(move || {
            compare_png(&baseline_png, &current_png, &diff_options)
        })
        .await
        .map_err(|e| ExecError::Retryable(format!("the comparison failed: {e}")))?
        .map_err(|e| ExecError::Permanent(format!("the images cannot be compared: {e}")))?;
        summary["artifacts"]["baseline"] = json!(artifact_url(scan.id, "baseline.png"));
        summary["baselineScanId"] = json!(baseline.scan_id.to_string());
        summary["verdict"] = json!(if result.is_match() { "match" } else { "differ" });
        summary["differentPixels"] = json!(result.different_pixels);
        summary["exactDifferentPixels"] = json!(result.exact_different_pixels);
        summary["ratio"] = json!(result.ratio);
        summary["changedRegions"] = json!(result.changes().count());

        let mut findings = Vec::new();
        if result.exact_different_pixels > 0 {
            match tokio::task::spawn_blocking({
                let result = result.clone();
                move || result.diff_image()
            })
            .await
            {
                Ok(Ok(png)) => {
                    self.artifacts
                        .put(
                            &scan_artifact_key(scan.id, "diff.png"),
                            Bytes::from(png),
                            "image/png",
                        )
                        .await
                        .map_err(|e| artifact_error("storing the diff image", &e))?;
                    summary["artifacts"]["diff"] = json!(artifact_url(scan.id, "diff.png"));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "diff image not written"),
                Err(e) => tracing::warn!(error = %e, "diff image not written"),
            }
        }
        if !result.is_match() {
            let regions: Vec<Value> = result
                .changes()
                .map(|r| {
                    json!({"x": r.x, "y": r.y, "width": r.width, "height": r.height, "kind": r.kind.as_str(),
                           "differentPixels": r.different_pixels, "exactDifferentPixels": r.exact_different_pixels})
                })
                .collect();
            findings.push(NewFinding {
                kind: FindingKind::VisualChange,
                severity: Severity::Error,
                url: scan.url.clone(),
                message: format!(
                    "{} of {} pixels changed ({:.3}%) in {} region(s) at {}",
                    result.different_pixels.max(result.exact_different_pixels),
                    result.total_pixels,
                    result.ratio * 100.0,
                    regions.len(),
                    options.viewport.as_str()
                ),
                detail: json!({
                    "mismatchRatio": result.ratio,
                    "differentPixels": result.different_pixels,
                    "exactDifferentPixels": result.exact_different_pixels,
                    "regions": regions,
                    "reasons": result.reasons,
                    "baselineScanId": baseline.scan_id.to_string(),
                    "baseline": artifact_url(scan.id, "baseline.png"),
                    "current": artifact_url(scan.id, "current.png"),
                    "diff": artifact_url(scan.id, "diff.png"),
                }),
            });
        }
        Ok(ScanOutcome { summary, findings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_errors_are_classified() {
        assert!(matches!(
            capture_error(CaptureErrorKind::BlockedByPolicy, "x".into()),
            ExecError::Permanent(_)
        ));
        assert!(matches!(
            capture_error(CaptureErrorKind::BrowserCrashed, "x".into()),
            ExecError::Retryable(_)
        ));
        assert!(matches!(
            capture_error(CaptureErrorKind::NavigationTimeout, "x".into()),
            ExecError::Retryable(_)
        ));
    }
}
