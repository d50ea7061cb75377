//! Approving a visual-regression scan's capture as the new baseline of its page.

use crate::error::{ApiError, ApiResult};
use crate::services::access::AccessService;
use crate::services::scans::ScanService;
use sentinel_core::auth::Access;
use sentinel_core::{CheckType, Principal, ScanId, ScanStatus, SiteId, now_millis};
use sentinel_store::artifacts::{
    ArtifactError, ArtifactStore, baseline_artifact_key, scan_artifact_key,
};
use sentinel_store::{Baseline, Store};
use std::sync::Arc;

/// Approves the capture of `scan` as the baseline of its page, viewport and capture mode,
/// and drops the site's cached scan results so that the next scan compares against it.
pub(crate) async fn approve(
    store: &Arc<dyn Store>,
    artifacts: &Arc<dyn ArtifactStore>,
    access: &AccessService,
    scans: &ScanService,
    p: &Principal,
    site_id: SiteId,
    scan_id: ScanId,
) -> ApiResult<()> {
    access.check(p, site_id, Access::Write).await?;
    let scan = store
        .get_scan(scan_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Scan"))?;
    if scan.site_id != site_id {
        return Err(ApiError::field("scanId", "belongs to another site"));
    }
    let Some(visual) = scan
        .options
        .visual
        .as_ref()
        .filter(|_| scan.check_type() == CheckType::VisualRegression)
    else {
        return Err(ApiError::field("scanId", "is not a visual-regression scan"));
    };
    if scan.status != ScanStatus::Completed {
        return Err(ApiError::field(
            "scanId",
            format!("has not completed (it is {})", scan.status.as_str()),
        ));
    }
    let dimension = |k: &str| {
        scan.summary
            .as_ref()
            .and_then(|s| s.get(k))
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let (Some(width), Some(height)) = (dimension("width"), dimension("height")) else {
        return Err(ApiError::field("scanId", "has no capture to approve"));
    };
    let key = baseline_artifact_key(site_id, scan_id);
    match artifacts
        .copy(&scan_artifact_key(scan_id, "current.png"), &key)
        .await
    {
        Ok(()) => {}
        Err(ArtifactError::NotFound(_)) => {
            return Err(ApiError::field("scanId", "has no capture to approve"));
        }
        Err(e) => {
            tracing::error!(error = %e, "copying the capture failed");
            return Err(ApiError::internal());
        }
    }
    store
        .put_baseline(&Baseline {
            site_id,
            page_url: scan.url.clone(),
            viewport: scan.options.viewport,
            full_page: visual.full_page,
            artifact_key: key,
            width,
            height,
            scan_id,
            approved_by: Some(p.user_id),
            updated_at: now_millis(),
        })
        .await?;
    scans.invalidate_site(site_id).await;
    Ok(())
}
