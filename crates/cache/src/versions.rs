//! Per-site cache versions.

use async_trait::async_trait;
use dashmap::DashMap;
use sentinel_core::SiteId;

/// The current cache version of each site. Cached scan results are keyed with it, so that
/// bumping it drops all of a site's results at once without enumerating keys.
#[async_trait]
pub trait SiteVersions: Send + Sync + 'static {
    /// The site's current version.
    async fn current(&self, site: SiteId) -> u64;
    /// Moves the site to a new version (its cached results are no longer read).
    async fn bump(&self, site: SiteId) -> u64;
    /// Forgets any locally cached copy of the site's version (another process bumped it).
    fn forget(&self, _site: SiteId) {}
}

/// In-process versions (the embedded default).
#[derive(Debug, Default)]
pub struct LocalSiteVersions {
    versions: DashMap<SiteId, u64>,
}

#[async_trait]
impl SiteVersions for LocalSiteVersions {
    async fn current(&self, site: SiteId) -> u64 {
        self.versions.get(&site).map_or(0, |v| *v)
    }

    async fn bump(&self, site: SiteId) -> u64 {
        let mut v = self.versions.entry(site).or_insert(0);
        *v += 1;
        *v
    }
}
