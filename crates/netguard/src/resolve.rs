//! Name resolution behind a trait, and the [`Guard`] that checks every answer.
//!
//! A custom resolver alone is not an SSRF defence: URLs with literal addresses never reach
//! it, and a proxy would resolve names itself. [`Guard`] is one half of the defence (it
//! checks literal hosts and every resolved answer against the [`EgressPolicy`]); the
//! [`Client`](crate::Client) is the other (no proxy, manual redirects, each hop re-checked).

use crate::policy::{Denied, EgressPolicy};
use hickory_resolver::TokioResolver;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use url::{Host, Url};

/// A boxed future, as returned by [`Resolve::lookup`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a name could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name does not exist or has no address records.
    #[error("no address found for `{0}`")]
    NotFound(String),
    /// The lookup itself failed (no answer from the name servers, bad configuration).
    #[error("DNS lookup of `{host}` failed: {message}")]
    Failed {
        /// The name.
        host: String,
        /// What went wrong.
        message: String,
    },
}

/// Turns a host name into addresses. Implement it to plug in another resolver; tests use
/// [`StaticResolver`] so that no real DNS query is ever made.
pub trait Resolve: Send + Sync + fmt::Debug {
    /// Every address `host` resolves to (A and AAAA). `host` is never an IP literal.
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>>;
}

/// The production resolver: hickory with the system configuration (`/etc/resolv.conf`,
/// `/etc/hosts`), asynchronous and caching.
#[derive(Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HickoryResolver").finish_non_exhaustive()
    }
}

impl HickoryResolver {
    /// Builds a resolver from the operating system's configuration.
    pub fn from_system_conf() -> Result<Self, ResolveError> {
        let failed = |e: &dyn fmt::Display| ResolveError::Failed {
            host: String::from("(system configuration)"),
            message: e.to_string(),
        };
        let inner = TokioResolver::builder_tokio()
            .map_err(|e| failed(&e))?
            .build()
            .map_err(|e| failed(&e))?;
        Ok(Self { inner })
    }
}

impl Resolve for HickoryResolver {
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        Box::pin(async move {
            match self.inner.lookup_ip(host).await {
                Ok(answer) => {
                    let addrs: Vec<IpAddr> = answer.iter().collect();
                    if addrs.is_empty() {
                        Err(ResolveError::NotFound(host.to_owned()))
                    } else {
                        Ok(addrs)
                    }
                }
                Err(e) if e.is_no_records_found() => Err(ResolveError::NotFound(host.to_owned())),
                Err(e) => Err(ResolveError::Failed {
                    host: host.to_owned(),
                    message: e.to_string(),
                }),
            }
        })
    }
}

/// The C library's resolver (`getaddrinfo`, through tokio's blocking pool): honours
/// `nsswitch.conf` exactly as other programs on the machine do.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        Box::pin(async move {
            match tokio::net::lookup_host((host, 0)).await {
                Ok(addrs) => {
                    let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                    if ips.is_empty() {
                        Err(ResolveError::NotFound(host.to_owned()))
                    } else {
                        Ok(ips)
                    }
                }
                Err(e) => Err(ResolveError::Failed {
                    host: host.to_owned(),
                    message: e.to_string(),
                }),
            }
        })
    }
}

/// A fixed name → addresses table, for tests (fake DNS: rebinding, multi-answer names,
/// names pointing at metadata addresses) and for pinning names in configuration.
/// Unknown names are [`ResolveError::NotFound`].
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    table: Arc<Mutex<HashMap<String, Answers>>>,
}

/// Answers for one name; each lookup takes the next one and the last repeats, so a test
/// can model a name that changes between lookups (rebinding).
#[derive(Debug, Default)]
struct Answers {
    sequence: Vec<Vec<IpAddr>>,
    lookups: usize,
}

impl StaticResolver {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `host` to `addrs` on every lookup.
    #[must_use]
    pub fn with(self, host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.with_sequence(host, [addrs.into_iter().collect()])
    }

    /// Maps `host` to a different answer on each successive lookup (the last repeats).
    #[must_use]
    pub fn with_sequence(self, host: &str, answers: impl IntoIterator<Item = Vec<IpAddr>>) -> Self {
        if let Ok(mut table) = self.table.lock() {
            let sequence = answers.into_iter().collect();
            table.insert(
                host.to_ascii_lowercase(),
                Answers {
                    sequence,
                    lookups: 0,
                },
            );
        }
        self
    }

    /// How many times `host` was looked up.
    #[must_use]
    pub fn lookups(&self, host: &str) -> usize {
        self.table
            .lock()
            .ok()
            .and_then(|t| t.get(&host.to_ascii_lowercase()).map(|a| a.lookups))
            .unwrap_or(0)
    }
}

impl Resolve for StaticResolver {
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        let answer = self.table.lock().ok().and_then(|mut table| {
            let entry = table.get_mut(&host.to_ascii_lowercase())?;
            let pick = entry
                .sequence
                .get(entry.lookups)
                .or_else(|| entry.sequence.last())
                .cloned();
            entry.lookups += 1;
            pick
        });
        Box::pin(async move {
            match answer {
                Some(addrs) if !addrs.is_empty() => Ok(addrs),
                _ => Err(ResolveError::NotFound(host.to_owned())),
            }
        })
    }
}

/// Why a destination was refused before any connection was made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// The address (literal, or one of the name's answers) is refused by the policy.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// The name did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// Only `http` and `https` are fetched.
    #[error("the `{0}` scheme is not allowed (only http and https)")]
    UnsupportedScheme(String),
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
}

/// The egress policy together with the resolver it vets answers from. Cheap to clone.
///
/// This is the API other scanners reuse (the browser engine vets Chromium's requests with
/// [`Guard::check_url`] and [`Guard::resolve_checked`]); keep it stable.
#[derive(Clone, Debug)]
pub struct Guard {
    policy: Arc<EgressPolicy>,
    resolver: Arc<dyn Resolve>,
}

impl Guard {
    /// A guard over `policy` resolving with `resolver`.
    pub fn new(policy: EgressPolicy, resolver: Arc<dyn Resolve>) -> Self {
        Self {
            policy: Arc::new(policy),
            resolver,
        }
    }

    /// A guard over `policy` with the system's hickory resolver.
    pub fn with_system_resolver(policy: EgressPolicy) -> Result<Self, ResolveError> {
        Ok(Self::new(
            policy,
            Arc::new(HickoryResolver::from_system_conf()?),
        ))
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// Checks what can be checked without DNS: the scheme, and the host when it is a literal
    /// address (which never reaches a resolver, so it must be decided here).
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(EgressError::UnsupportedScheme(other.to_owned())),
        }
        match url.host() {
            None => Err(EgressError::NoHost),
            Some(Host::Domain(_)) => Ok(()),
            Some(Host::Ipv4(v4)) => Ok(self.policy.check_ip(IpAddr::V4(v4))?),
            Some(Host::Ipv6(v6)) => Ok(self.policy.check_ip(IpAddr::V6(v6))?),
        }
    }

    /// Resolves `host` (a name or a literal address, IPv6 with or without brackets) and
    /// returns the socket addresses to connect to, or an error if *any* answer is refused:
    /// a name that points into private space is suspect as a whole, and connecting to its
    /// remaining answers would let a rebinding attacker pick the winner.
    ///
    /// Connect only to the returned addresses (pinning): resolving again later could give a
    /// different, unvetted answer.
    pub async fn resolve_checked(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, EgressError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.policy.check_ip(ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let addrs = self.resolver.lookup(bare).await?;
        if addrs.is_empty() {
            return Err(ResolveError::NotFound(bare.to_owned()).into());
        }
        for ip in &addrs {
            if let Err(denied) = self.policy.check_ip(*ip) {
                tracing::debug!(host = bare, %denied, "refusing a name with a refused answer");
                return Err(denied.into());
            }
        }
        Ok(addrs
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }
}

/// The bridge into reqwest: every name reqwest connects to goes through
/// [`Guard::resolve_checked`], and reqwest connects to exactly the vetted answers, so the
/// address that was checked is the address that is dialled (no rebinding window).
#[derive(Debug)]
pub(crate) struct GuardedDns(pub(crate) Guard);

impl reqwest::dns::Resolve for GuardedDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = guard
                .resolve_checked(&host, 0)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(policy: EgressPolicy, r: StaticResolver) -> Guard {
        Guard::new(policy, Arc::new(r))
    }

    #[tokio::test]
    async fn literal_addresses_never_reach_the_resolver_but_are_checked() {
        let r = StaticResolver::new();
        let g = guard(EgressPolicy::new(), r.clone());
        for host in [
            "127.0.0.1",
            "[::1]",
            "::1",
            "169.254.169.254",
            "[::ffff:10.0.0.1]",
        ] {
            assert!(
                matches!(
                    g.resolve_checked(host, 80).await,
                    Err(EgressError::Denied(_))
                ),
                "{host}"
            );
        }
        assert_eq!(
            g.resolve_checked("8.8.8.8", 53).await.unwrap(),
            vec!["8.8.8.8:53".parse().unwrap()]
        );
    }

    #[tokio::test]
    async fn any_refused_answer_refuses_the_name() {
        let r = StaticResolver::new()
            .with(
                "multi.test",
                ["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()],
            )
            .with("meta.test", ["169.254.169.254".parse().unwrap()])
            .with("ok.test", ["8.8.4.4".parse().unwrap()]);
        let g = guard(EgressPolicy::new(), r);
        let err = g.resolve_checked("multi.test", 80).await.unwrap_err();
        assert!(
            matches!(err, EgressError::Denied(d) if d.addr == "10.0.0.1".parse::<IpAddr>().unwrap())
        );
        assert!(g.resolve_checked("meta.test", 80).await.is_err());
        assert_eq!(g.resolve_checked("ok.test", 443).await.unwrap().len(), 1);
        assert!(matches!(
            g.resolve_checked("missing.test", 80).await,
            Err(EgressError::Resolve(ResolveError::NotFound(_)))
        ));
    }

    #[tokio::test]
    async fn static_resolver_sequences_model_rebinding() {
        let r = StaticResolver::new().with_sequence(
            "rebind.test",
            [
                vec!["8.8.8.8".parse().unwrap()],
                vec!["127.0.0.1".parse().unwrap()],
            ],
        );
        let g = guard(EgressPolicy::new(), r.clone());
        assert!(g.resolve_checked("rebind.test", 80).await.is_ok());
        assert!(g.resolve_checked("rebind.test", 80).await.is_err());
        assert!(g.resolve_checked("rebind.test", 80).await.is_err());
        assert_eq!(r.lookups("rebind.test"), 3);
    }

    #[test]
    fn check_url_refuses_other_schemes_and_literal_hosts() {
        let g = guard(EgressPolicy::new(), StaticResolver::new());
        let check = |u: &str| g.check_url(&Url::parse(u).unwrap());
        assert!(
            matches!(check("file:///etc/passwd"), Err(EgressError::UnsupportedScheme(s)) if s == "file")
        );
        assert!(matches!(
            check("gopher://a.test/"),
            Err(EgressError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            check("http://0x7f.1/"),
            Err(EgressError::Denied(_))
        ));
        assert!(matches!(
            check("http://[fd00:ec2::254]/"),
            Err(EgressError::Denied(_))
        ));
        assert!(check("https://example.test/").is_ok());
        assert!(check("http://8.8.8.8/").is_ok());
    }
}
