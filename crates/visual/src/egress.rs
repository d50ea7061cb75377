//! The egress decision for Chromium's own connections.
//!
//! Chromium resolves names and connects by itself, so the SSRF-safe HTTP client protects
//! nothing here. Two layers enforce the same policy:
//!
//! 1. **Request interception** (CDP `Fetch.requestPaused`): every HTTP(S) request the page
//!    makes (document, sub-resources, iframes, XHR/fetch, workers, redirects, beacons) is
//!    paused and continued only if [`EgressCheck::check`] allows its URL. It sees URLs, so it
//!    gives precise errors and the list of what was blocked.
//! 2. **A SOCKS5 proxy per capture** ([`crate::proxy`]): the capture's browser context sends
//!    every connection through it, loopback included, and the proxy connects only to addresses
//!    [`EgressCheck::resolve`] vetted. This covers what interception cannot see — WebSocket
//!    handshakes, preconnects — and closes the DNS-rebinding window, because the address that
//!    was checked is the address that is dialled (Chromium never resolves a name itself).
//!
//! The production check is [`sentinel_netguard::Guard`], the policy the link checker uses.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use url::Url;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a destination may not be reached by the browser.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct EgressDenied {
    /// Human-readable reason (which address, which rule).
    pub reason: String,
}

impl EgressDenied {
    fn new(reason: impl fmt::Display) -> Self {
        Self {
            reason: reason.to_string(),
        }
    }
}

/// Decides where Chromium may connect.
pub trait EgressCheck: Send + Sync + fmt::Debug + 'static {
    /// The addresses to connect to for `host:port` (`host` a name or an IP literal, IPv6 with
    /// or without brackets), or a refusal if *any* answer is refused.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<Vec<SocketAddr>, EgressDenied>>;

    /// `Ok` when `url` may be fetched: http(s) or ws(s), and every address of its host allowed.
    fn check<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<(), EgressDenied>> {
        Box::pin(async move {
            if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
                return Err(EgressDenied::new(format_args!(
                    "the `{}` scheme is not allowed (only http and https)",
                    url.scheme()
                )));
            }
            let host = url
                .host_str()
                .ok_or_else(|| EgressDenied::new("the URL has no host"))?;
            let port = url.port_or_known_default().unwrap_or(80);
            self.resolve(host, port).await.map(drop)
        })
    }
}

impl EgressCheck for sentinel_netguard::Guard {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<Vec<SocketAddr>, EgressDenied>> {
        Box::pin(async move {
            self.resolve_checked(host, port)
                .await
                .map_err(EgressDenied::new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_netguard::{EgressPolicy, Guard, StaticResolver};
    use std::net::IpAddr;
    use std::sync::Arc;

    fn guard() -> Guard {
        let resolver = StaticResolver::new()
            .with("site.test", ["127.0.0.1".parse::<IpAddr>().unwrap()])
            .with("internal.test", ["10.1.2.3".parse::<IpAddr>().unwrap()])
            .with(
                "mixed.test",
                [
                    "127.0.0.1".parse::<IpAddr>().unwrap(),
                    "169.254.169.254".parse().unwrap(),
                ],
            );
        let policy = EgressPolicy::new().allow("127.0.0.0/8".parse().unwrap());
        Guard::new(policy, Arc::new(resolver))
    }

    async fn check(url: &str) -> Result<(), EgressDenied> {
        guard().check(&url.parse().unwrap()).await
    }

    #[tokio::test]
    async fn allowed_and_refused_urls() {
        assert!(check("http://127.0.0.1:8080/a.png").await.is_ok());
        assert!(check("http://site.test/").await.is_ok());
        assert!(check("ws://site.test/socket").await.is_ok());
        for bad in [
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:10.0.0.1]/",
            "http://[::1]/",
            "http://internal.test/",
            "http://mixed.test/",
            "wss://internal.test/",
            "file:///etc/passwd",
            "ftp://127.0.0.1/",
            "http://unknown.test/",
        ] {
            assert!(check(bad).await.is_err(), "{bad} must be refused");
        }
    }

    #[tokio::test]
    async fn resolve_pins_vetted_addresses() {
        let g = guard();
        assert_eq!(
            g.resolve("site.test", 8080).await.unwrap(),
            vec!["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(
            g.resolve("[127.0.0.5]", 1).await.unwrap(),
            vec!["127.0.0.5:1".parse().unwrap()]
        );
        assert!(g.resolve("mixed.test", 80).await.is_err());
        assert!(g.resolve("10.0.0.1", 80).await.is_err());
    }
}
