//! The SSRF-safe HTTP client.
//!
//! reqwest does the HTTP; this module makes it safe to point at URLs that strangers wrote:
//!
//! * names resolve through [`Guard::resolve_checked`] (installed as reqwest's resolver), so the
//!   vetted answers are exactly the addresses dialled;
//! * literal-address hosts, which never reach a resolver, are checked before each hop;
//! * no proxy, ever (`no_proxy`): a proxy resolves names itself and would bypass the policy;
//! * redirects are followed here, not by reqwest: every hop is checked again (scheme, literal
//!   host, and its name through the resolver), the chain is capped and reported, loops are
//!   detected, and the caller's headers (cookies, credentials) are dropped once a hop leaves
//!   the original origin;
//! * one deadline covers the whole fetch (every hop and the body), and the body is capped
//!   after decompression, so a gzip bomb stops at the cap.

use crate::resolve::{EgressError, GuardedDns};
use crate::{Denied, Guard};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use http::{Method, StatusCode};
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// Caps on one fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most redirects followed before giving up (default 10).
    pub max_redirects: usize,
    /// Most body bytes read, counted after decompression (default 10 MiB).
    pub max_body_bytes: u64,
    /// Deadline for the whole fetch: every redirect hop and the body (default 30 s). A
    /// [`Request`] can shorten or lengthen it.
    pub timeout: Duration,
    /// Deadline for establishing one connection (default 10 s).
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_redirects: 10,
            max_body_bytes: 10 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// How to build a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Caps on every fetch.
    pub limits: Limits,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Idle connections kept per host for reuse.
    pub max_idle_per_host: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            user_agent: format!("qa-sentinel/{}", env!("CARGO_PKG_VERSION")),
            max_idle_per_host: 64,
        }
    }
}

/// What went wrong, in the words a link report uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The destination address is refused by the egress policy.
    Blocked,
    /// The name did not resolve.
    Dns,
    /// The connection could not be made or was cut (refused, reset, unreachable).
    Connect,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The deadline passed.
    Timeout,
    /// More redirects than [`Limits::max_redirects`].
    TooManyRedirects,
    /// A redirect came back to a URL already in the chain.
    RedirectLoop,
    /// A redirect without a usable `Location`.
    InvalidRedirect,
    /// A scheme other than http/https (at the start or in a redirect).
    UnsupportedScheme,
    /// The body exceeded [`Limits::max_body_bytes`].
    BodyTooLarge,
    /// The server broke the HTTP protocol, or the body could not be read or decoded.
    Protocol,
}

impl ErrorKind {
    /// The kebab-case name used in reports.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::Dns => "dns",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::TooManyRedirects => "too-many-redirects",
            Self::RedirectLoop => "redirect-loop",
            Self::InvalidRedirect => "invalid-redirect",
            Self::UnsupportedScheme => "unsupported-scheme",
            Self::BodyTooLarge => "body-too-large",
            Self::Protocol => "protocol",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One redirect that was followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The URL that answered with a redirect.
    pub url: Url,
    /// Its status (301, 302, 303, 307, 308).
    pub status: StatusCode,
}

/// A failed fetch.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {detail}")]
pub struct FetchError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The URL of the hop that failed.
    pub url: Url,
    /// The redirects followed before the failure.
    pub redirects: Vec<Hop>,
    /// The refused address, for [`ErrorKind::Blocked`].
    pub denied: Option<Denied>,
    detail: String,
}

impl FetchError {
    fn new(kind: ErrorKind, url: &Url, detail: impl Into<String>) -> Self {
        Self {
            kind,
            url: url.clone(),
            redirects: Vec::new(),
            denied: None,
            detail: detail.into(),
        }
    }

    fn from_egress(e: &EgressError, url: &Url) -> Self {
        let kind = match e {
            EgressError::Denied(_) => ErrorKind::Blocked,
            EgressError::Resolve(_) => ErrorKind::Dns,
            EgressError::UnsupportedScheme(_) | EgressError::NoHost => ErrorKind::UnsupportedScheme,
        };
        let mut err = Self::new(kind, url, e.to_string());
        if let EgressError::Denied(d) = e {
            err.denied = Some(*d);
        }
        err
    }

    fn from_reqwest(e: &reqwest::Error, url: &Url) -> Self {
        if let Some(eg) = find_in_chain::<EgressError>(e) {
            return Self::from_egress(eg, url);
        }
        let kind = classify(e);
        Self::new(kind, url, describe(e))
    }

    /// A human-readable cause without the URL.
    #[must_use]
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// Walks an error's cause chain, looking inside `io::Error`s too (their `source()` skips the
/// wrapped error itself, which is where rustls and resolver errors hide).
fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&cur: &&'a (dyn StdError + 'static)| {
        match cur
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => cur.source(),
        }
    })
}

fn find_in_chain<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    chain(e).find_map(|c| c.downcast_ref::<T>())
}

/// Sorts a transport error into an [`ErrorKind`].
pub(crate) fn classify(e: &(dyn StdError + 'static)) -> ErrorKind {
    use std::io::ErrorKind as Io;
    for cause in chain(e) {
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                Io::TimedOut => return ErrorKind::Timeout,
                Io::ConnectionRefused
                | Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::NotConnected
                | Io::AddrNotAvailable
                | Io::HostUnreachable
                | Io::NetworkUnreachable
                | Io::BrokenPipe => return ErrorKind::Connect,
                _ => {}
            }
        }
    }
    if let Some(r) = e.downcast_ref::<reqwest::Error>() {
        if r.is_timeout() {
            return ErrorKind::Timeout;
        }
        if r.is_connect() {
            return ErrorKind::Connect;
        }
    }
    ErrorKind::Protocol
}

/// The innermost useful message of a cause chain ("connection refused", not "error sending
/// request").
fn describe(e: &(dyn StdError + 'static)) -> String {
    let messages: Vec<String> = chain(e).map(ToString::to_string).collect();
    messages.join(": ")
}

/// One request: method, URL, headers that belong to the URL's origin, and an optional
/// deadline replacing [`Limits::timeout`].
#[derive(Clone, Debug)]
pub struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    timeout: Option<Duration>,
}

impl Request {
    /// A request with any method.
    #[must_use]
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            timeout: None,
        }
    }

    /// A GET.
    #[must_use]
    pub fn get(url: Url) -> Self {
        Self::new(Method::GET, url)
    }

    /// A HEAD.
    #[must_use]
    pub fn head(url: Url) -> Self {
        Self::new(Method::HEAD, url)
    }

    /// Adds a header. Every header given here is bound to the request's origin: it is sent
    /// on redirect hops within that origin and dropped from the first hop that leaves it.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Adds several origin-bound headers (see [`Request::header`]).
    #[must_use]
    pub fn headers(mut self, headers: &HeaderMap) -> Self {
        for (name, value) in headers {
            self.headers.append(name.clone(), value.clone());
        }
        self
    }

    /// Replaces the client's overall deadline for this fetch.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The URL.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// A response after every redirect was followed. The body is read with [`Response::chunk`]
/// (streaming) or [`Response::bytes`], both under the fetch's deadline and body cap.
#[derive(Debug)]
pub struct Response {
    inner: reqwest::Response,
    url: Url,
    redirects: Vec<Hop>,
    deadline: Instant,
    max_body: u64,
    read: u64,
}

impl Response {
    /// The final status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The final response's headers.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The URL that gave this response (after redirects).
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The redirects followed to get here, in order.
    #[must_use]
    pub fn redirects(&self) -> &[Hop] {
        &self.redirects
    }

    /// The next piece of the (decompressed) body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, FetchError> {
        let next = match tokio::time::timeout_at(self.deadline, self.inner.chunk()).await {
            Err(_) => return Err(self.error(ErrorKind::Timeout, "the body did not arrive in time")),
            Ok(Err(e)) => return Err(self.with_chain(FetchError::from_reqwest(&e, &self.url))),
            Ok(Ok(next)) => next,
        };
        if let Some(bytes) = &next {
            self.read += bytes.len() as u64;
            if self.read > self.max_body {
                let limit = self.max_body;
                return Err(self.error(
                    ErrorKind::BodyTooLarge,
                    format!("the body is larger than {limit} bytes"),
                ));
            }
        }
        Ok(next)
    }

    /// The whole body, under the cap and the deadline.
    pub async fn bytes(mut self) -> Result<Bytes, FetchError> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Reads and drops up to `budget` bytes of body so that the connection can be reused
    /// (a connection with an unread body is closed), then drops the rest.
    pub async fn discard(mut self, budget: u64) {
        let mut left = budget;
        while left > 0 {
            match self.chunk().await {
                Ok(Some(chunk)) => left = left.saturating_sub(chunk.len() as u64),
                Ok(None) | Err(_) => break,
            }
        }
    }

    fn error(&self, kind: ErrorKind, detail: impl Into<String>) -> FetchError {
        self.with_chain(FetchError::new(kind, &self.url, detail))
    }

    fn with_chain(&self, mut e: FetchError) -> FetchError {
        e.redirects = self.redirects.clone();
        e
    }
}

/// Why a [`Client`] could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct BuildError(#[source] reqwest::Error);

/// The SSRF-safe HTTP client. Cheap to clone (connection pool shared).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    guard: Guard,
    limits: Arc<Limits>,
}

impl Client {
    /// Builds a client whose every connection is vetted by `guard`.
    pub fn new(guard: Guard, config: ClientConfig) -> Result<Self, BuildError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedDns(guard.clone())))
            .connect_timeout(config.limits.connect_timeout)
            .pool_max_idle_per_host(config.max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(config.user_agent)
            .referer(false)
            .build()
            .map_err(BuildError)?;
        Ok(Self {
            http,
            guard,
            limits: Arc::new(config.limits),
        })
    }

    /// The guard (policy and resolver) this client connects through.
    #[must_use]
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The caps applied to every fetch.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Fetches `request`, following redirects (each hop vetted again), and returns the
    /// final response with its body still unread.
    pub async fn fetch(&self, request: Request) -> Result<Response, FetchError> {
        let deadline = Instant::now() + request.timeout.unwrap_or(self.limits.timeout);
        let origin = request.url.origin();
        let mut method = request.method;
        let mut url = request.url;
        url.set_fragment(None);
        let mut redirects: Vec<Hop> = Vec::new();
        let mut same_origin = true;
        let fail = |e: FetchError, redirects: &[Hop]| FetchError {
            redirects: redirects.to_vec(),
            ..e
        };
        loop {
            if let Err(e) = self.guard.check_url(&url) {
                return Err(fail(FetchError::from_egress(&e, &url), &redirects));
            }
            let mut builder = self.http.request(method.clone(), url.clone());
            if same_origin {
                builder = builder.headers(request.headers.clone());
            }
            let response = match tokio::time::timeout_at(deadline, builder.send()).await {
                Err(_) => {
                    let e = FetchError::new(ErrorKind::Timeout, &url, "no response in time");
                    return Err(fail(e, &redirects));
                }
                Ok(Err(e)) => return Err(fail(FetchError::from_reqwest(&e, &url), &redirects)),
                Ok(Ok(r)) => r,
            };
            let status = response.status();
            let location = is_followed_redirect(status)
                .then(|| response.headers().get(LOCATION).cloned())
                .flatten();
            let Some(location) = location else {
                return Ok(Response {
                    inner: response,
                    url,
                    redirects,
                    deadline,
                    max_body: self.limits.max_body_bytes,
                    read: 0,
                });
            };
            let next = match location.to_str().ok().and_then(|l| url.join(l.trim()).ok()) {
                Some(mut next) => {
                    next.set_fragment(None);
                    next
                }
                None => {
                    let e = FetchError::new(
                        ErrorKind::InvalidRedirect,
                        &url,
                        format!("{status} with an unusable Location header"),
                    );
                    return Err(fail(e, &redirects));
                }
            };
            // Keep the connection reusable: redirect bodies are small.
            drain_quietly(response, deadline).await;
            redirects.push(Hop {
                url: url.clone(),
                status,
            });
            if next == url || redirects.iter().any(|h| h.url == next) {
                let e = FetchError::new(
                    ErrorKind::RedirectLoop,
                    &next,
                    "the redirect chain comes back to a URL it already visited",
                );
                return Err(fail(e, &redirects));
            }
            if redirects.len() > self.limits.max_redirects {
                let max = self.limits.max_redirects;
                let e = FetchError::new(
                    ErrorKind::TooManyRedirects,
                    &next,
                    format!("more than {max} redirects"),
                );
                return Err(fail(e, &redirects));
            }
            if next.origin() != origin {
                same_origin = false;
            }
            if status == StatusCode::SEE_OTHER && method != Method::HEAD {
                method = Method::GET;
            }
            url = next;
        }
    }
}

fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

async fn drain_quietly(mut response: reqwest::Response, deadline: Instant) {
    let mut left: usize = 16 * 1024;
    while left > 0 {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => left = left.saturating_sub(chunk.len()),
            _ => break,
        }
    }
}

/// reqwest is built without a default crypto provider (the default, aws-lc-rs, needs cmake);
/// ring is installed as the process default the first time a client is built. If the
/// application installed a provider already, that one stays.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race against another thread installing one is fine: a provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn io_wrapped_causes_are_found() {
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert_eq!(classify(&tls), ErrorKind::Tls);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&refused), ErrorKind::Connect);
        let timed = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(classify(&timed), ErrorKind::Timeout);
        let other = io::Error::other("boom");
        assert_eq!(classify(&other), ErrorKind::Protocol);
        let denied = io::Error::other(EgressError::NoHost);
        assert!(find_in_chain::<EgressError>(&denied).is_some());
    }

    #[test]
    fn only_real_redirects_are_followed() {
        for code in [301, 302, 303, 307, 308] {
            assert!(is_followed_redirect(StatusCode::from_u16(code).unwrap()));
        }
        for code in [200, 300, 304, 305, 404] {
            assert!(!is_followed_redirect(StatusCode::from_u16(code).unwrap()));
        }
    }
}
