//! Who is calling, and what they may do: API-key authentication and site permissions, both
//! behind the multi-level cache (the guide's `perm:{userId}:{siteId}`, 300 s), with explicit
//! invalidation when a grant changes so that a revoked grant stops working at once in this
//! process (and, with a shared L2, everywhere after the L1 lifetime at most).

use crate::error::{ApiError, ApiResult};
use sentinel_cache::{CacheKey, Invalidation, InvalidationBus, RemoteCache, Tiered, TtlCache};
use sentinel_config::CacheSettings;
use sentinel_core::auth::Access;
use sentinel_core::{ApiKeyHash, Principal, Role, Site, SiteId, SiteRole, UserId};
use sentinel_store::Store;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct KeyHashKey(pub ApiKeyHash);
impl CacheKey for KeyHashKey {
    fn remote_key(&self) -> String {
        format!("key:{}", self.0.to_hex())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PermKey(pub UserId, pub SiteId);
impl CacheKey for PermKey {
    fn remote_key(&self) -> String {
        // The hash tag keeps a site's keys in one Redis Cluster slot.
        format!("perm:{}:{{{}}}", self.0, self.1)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SiteKey(pub SiteId);
impl CacheKey for SiteKey {
    fn remote_key(&self) -> String {
        format!("site:{{{}}}", self.0)
    }
}

/// A presented token as an L1 key, held inline: comparing it is a look at the cache entry
/// itself, not at a string somewhere else on the heap (a third memory load per lookup). Our
/// keys are 52 bytes; a token longer than [`TokenKey::MAX`] is not remembered (it takes the
/// digest path every time, and no key of ours is that long).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    len: u8,
    bytes: [u8; TokenKey::MAX],
}

impl TokenKey {
    const MAX: usize = 63;

    fn of(token: &str) -> Option<Self> {
        let len = u8::try_from(token.len())
            .ok()
            .filter(|&n| usize::from(n) <= Self::MAX)?;
        let mut bytes = [0; Self::MAX];
        bytes[..token.len()].copy_from_slice(token.as_bytes());
        Some(Self { len, bytes })
    }
}

/// Authentication and authorisation with caches.
pub(crate) struct AccessService {
    store: Arc<dyn Store>,
    /// Presented token → principal: the hot path, no hashing (see `authenticate`).
    tokens: TtlCache<TokenKey, Option<Arc<Principal>>>,
    principals: Tiered<KeyHashKey, Option<Principal>>,
    perms: Tiered<PermKey, Option<SiteRole>>,
    /// Behind an `Arc`: a hit is a reference-count increment, not two string copies.
    sites: Tiered<SiteKey, Option<Arc<Site>>>,
    principal_ttl: Duration,
    perm_ttl: Duration,
    bus: Arc<dyn InvalidationBus>,
}

/// Unknown keys and missing sites are cached briefly only: long enough to absorb a flood of
/// bad keys, short enough that a just-created key or site is usable at once.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

impl AccessService {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        cache: &CacheSettings,
        remote: Option<Arc<dyn RemoteCache>>,
        bus: Arc<dyn InvalidationBus>,
    ) -> Self {
        let idle = Duration::from_secs(cache.l1_ttl_secs);
        Self {
            store,
            tokens: TtlCache::new(cache.l1_capacity, Some(idle)),
            principals: Tiered::new("principal", cache.l1_capacity, idle, remote.clone()),
            perms: Tiered::new("permission", cache.l1_capacity, idle, remote.clone()),
            sites: Tiered::new("site", cache.l1_capacity, idle, remote),
            principal_ttl: Duration::from_secs(cache.principal_ttl_secs),
            perm_ttl: Duration::from_secs(cache.permission_ttl_secs),
            bus,
        }
    }

    /// The principal behind an API key, `None` if the key is unknown.
    ///
    /// Known tokens are remembered by their text for a short while, so a repeat request costs
    /// one hash-map lookup instead of a SHA-256; the store (and the shared cache) are keyed
    /// by the digest, never by the key itself.
    pub(crate) async fn authenticate(&self, token: &str) -> ApiResult<Option<Arc<Principal>>> {
        let key = TokenKey::of(token);
        if let Some(p) = key.as_ref().and_then(|k| self.tokens.get(k)) {
            return Ok(p);
        }
        // Boxed: the load path is most of this future's size (568 of it in a test build), and
        // a known key never takes it; every request's future stays small without a box per
        // request.
        Box::pin(self.load_principal(token, key)).await
    }

    /// [`AccessService::authenticate`] on a token this process does not remember.
    async fn load_principal(
        &self,
        token: &str,
        token_key: Option<TokenKey>,
    ) -> ApiResult<Option<Arc<Principal>>> {
        let key = KeyHashKey(ApiKeyHash::of(token.as_bytes()));
        let store = &self.store;
        let principal = self
            .principals
            .get_or_load(&key, self.principal_ttl, || async move {
                store.principal_by_key(&key.0).await
            })
            .await?;
        let ttl = if principal.is_some() {
            self.principal_ttl
        } else {
            // Shorten the negative entry's life (get_or_load stored it with the full TTL).
            self.principals.insert_local(key, None, NEGATIVE_TTL);
            NEGATIVE_TTL
        };
        let principal = principal.map(Arc::new);
        if let Some(k) = token_key {
            self.tokens.insert(k, principal.clone(), ttl);
        }
        Ok(principal)
    }

    /// A site, through the cache.
    pub(crate) async fn site(&self, id: SiteId) -> ApiResult<Option<Arc<Site>>> {
        let key = SiteKey(id);
        if let Some(s) = self.sites.get_local(&key) {
            return Ok(s);
        }
        let store = &self.store;
        let site = self
            .sites
            .get_or_load(&key, self.perm_ttl, || async move {
                Ok::<_, ApiError>(store.get_site(id).await?.map(Arc::new))
            })
            .await?;
        if site.is_none() {
            self.sites.insert_local(key, None, NEGATIVE_TTL);
        }
        Ok(site)
    }

    /// A user's grant on a site, through the cache.
    pub(crate) async fn grant(&self, user: UserId, site: SiteId) -> ApiResult<Option<SiteRole>> {
        let key = PermKey(user, site);
        if let Some(g) = self.perms.get_local(&key) {
            return Ok(g);
        }
        let store = &self.store;
        Ok(self
            .perms
            .get_or_load(&key, self.perm_ttl, || async move {
                store.grant(user, site).await
            })
            .await?)
    }

    /// The site, if the caller may do `access` on it. A member without the grant gets 403
    /// whether or not the site exists (no existence oracle across tenants); an admin gets 404
    /// for a site that does not exist.
    pub(crate) async fn authorize(
        &self,
        p: &Principal,
        site_id: SiteId,
        access: Access,
    ) -> ApiResult<Arc<Site>> {
        if p.role == Role::Admin {
            return self
                .site(site_id)
                .await?
                .ok_or_else(|| ApiError::not_found("Site"));
        }
        let grant = self.grant(p.user_id, site_id).await?;
        if !p.may(grant, access) {
            return Err(ApiError::forbidden());
        }
        self.site(site_id).await?.ok_or_else(ApiError::forbidden)
    }

    /// Whether the caller may do `access` on the site, for callers that do not need the site
    /// itself (reads of a scan, its findings): the same answers as [`Self::authorize`], with
    /// one cache lookup less for a member. A grant names an existing site (a foreign key, and
    /// sites are never deleted), so a member's grant is all there is to check; an admin has no
    /// grant, so the site's existence is looked up.
    pub(crate) async fn check(
        &self,
        p: &Principal,
        site_id: SiteId,
        access: Access,
    ) -> ApiResult<()> {
        if p.role == Role::Admin {
            return self.authorize(p, site_id, access).await.map(drop);
        }
        let grant = self.grant(p.user_id, site_id).await?;
        if p.may(grant, access) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Forgets a cached grant after it changed, here, in the shared cache and (through the
    /// bus) in every other process's L1.
    pub(crate) async fn invalidate_grant(&self, user: UserId, site: SiteId) {
        self.perms.invalidate(&PermKey(user, site)).await;
        self.bus.publish(Invalidation::Grant { user, site }).await;
    }

    /// Applies another process's invalidation to this process's L1.
    pub(crate) fn forget_grant(&self, user: UserId, site: SiteId) {
        self.perms.invalidate_local(&PermKey(user, site));
    }

    /// Remembers a site just created (saves the first lookup).
    pub(crate) async fn remember_site(&self, site: Site) {
        self.sites
            .insert(&SiteKey(site.id), Some(Arc::new(site)), self.perm_ttl)
            .await;
    }

    /// The caches, for metrics.
    pub(crate) fn cache_stats(&self) -> [(&'static str, sentinel_cache::CacheStatsSnapshot); 3] {
        [
            (self.principals.name(), self.principals.stats().snapshot()),
            (self.perms.name(), self.perms.stats().snapshot()),
            (self.sites.name(), self.sites.stats().snapshot()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::TokenKey;

    #[test]
    fn token_keys_are_exact_and_bounded() {
        let key = sentinel_core::ApiKey::generate();
        let a = TokenKey::of(key.expose()).expect("our keys fit inline");
        assert!(a == TokenKey::of(key.expose()).expect("fits"));
        // A shorter token that is a prefix, or one that differs in its last byte, is another key.
        let s = key.expose();
        assert!(TokenKey::of(&s[..s.len() - 1]).is_some_and(|b| b != a));
        let mut last = s.to_owned();
        last.pop();
        last.push('x');
        assert!(TokenKey::of(&last).is_some_and(|b| b != a));
        assert!(TokenKey::of(&"k".repeat(TokenKey::MAX)).is_some());
        assert!(
            TokenKey::of(&"k".repeat(TokenKey::MAX + 1)).is_none(),
            "not remembered"
        );
        assert!(TokenKey::of("").is_some_and(|e| e != a));
    }
}
