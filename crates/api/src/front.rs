//! The front of the application: everything that happens to every request before and after
//! its route handler, in one place and in this order:
//!
//! 1. request id (the client's `X-Request-ID` when sane, else a new one) and timing;
//! 2. CORS with an exact origin allow-list (preflights are answered here; every answer —
//!    a 429 too — carries the CORS headers a browser needs to read it);
//! 3. rate limiting per client, allow-listed networks exempt;
//! 4. routing ([`crate::router`]), the handler, and compression when the client asks for it;
//! 5. `X-Request-ID`, `X-Response-Time`, rate-limit headers, metrics by route template, and the
//!    JSON access log (outside production mode).
//!
//! Why by hand instead of a stack of tower layers: axum clones a route's layered service on
//! every request, and the profile of the first version (callgrind, `GET /api/scans/{id}`)
//! showed tower-http's CORS layer (cloned with its origin list, plus `Vary` built per
//! answer), the metrics macros (label lookup per call) and three boxed middleware futures
//! costing more instructions than the route itself. Here the policy is built once, headers
//! are static values, and the front runs as a plain async function from the server.

use crate::error::{ApiError, PendingError};
use crate::extract::{Ctx, bearer_token};
use crate::middleware::{client_ip, new_request_id, response_time};
use crate::router::{self, Params, Route, Routes, dispatch};
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tower::{Layer, Service};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{And, NotForContentType, Predicate, SizeAbove};

/// What compression applies to: bodies of `compression_min_bytes` and more, never images,
/// gRPC or event streams.
type CompressWhen =
    And<And<And<SizeAbove, NotForContentType>, NotForContentType>, NotForContentType>;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_RESPONSE_TIME: HeaderName = HeaderName::from_static("x-response-time");
static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
static VARY_VALUE: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);
static ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET,POST,PUT,DELETE");
static ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("content-type,authorization,x-request-id");
static EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static(
    "x-request-id,x-response-time,retry-after,x-ratelimit-limit,x-ratelimit-remaining,x-ratelimit-reset",
);
static MAX_AGE: HeaderValue = HeaderValue::from_static("600");
static TRUE: HeaderValue = HeaderValue::from_static("true");

/// A response head with `X-Request-ID` and `X-Response-Time` already in it (empty, filled
/// in by the front for each answer), for answers built from a template: see [`stamp`].
pub(crate) fn head_with_stamp_slots(content_type: HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(4);
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(X_REQUEST_ID.clone(), HeaderValue::from_static(""));
    h.insert(X_RESPONSE_TIME.clone(), HeaderValue::from_static(""));
    h
}

/// Sets the answer's `X-Request-ID` and `X-Response-Time`: in place where the head already
/// has them (a head cloned from [`head_with_stamp_slots`]), else inserted.
///
/// In place costs a walk over the few headers with a byte comparison of names; an insert
/// hashes the name byte by byte (FNV) and probes the map. Under callgrind
/// (`bench/api/instructions.sh`, `GET /health/live`) the liveness answer's three inserts
/// (its content type and these two, the first allocating the map) were ~860 instructions of
/// 9,630 per request; with its head cloned from a template and stamped in place the request
/// took 9,478.
fn stamp(h: &mut HeaderMap, id: HeaderValue, time: HeaderValue) {
    let (mut id, mut time) = (Some(id), Some(time));
    for (name, value) in h.iter_mut() {
        let slot = if *name == X_REQUEST_ID {
            &mut id
        } else if *name == X_RESPONSE_TIME {
            &mut time
        } else {
            continue;
        };
        if let Some(v) = slot.take() {
            *value = v;
        }
    }
    if let Some(id) = id {
        h.insert(X_REQUEST_ID.clone(), id);
    }
    if let Some(time) = time {
        h.insert(X_RESPONSE_TIME.clone(), time);
    }
}

/// The application as the server runs it: the front around the router.
pub struct App {
    state: AppState,
    routes: Arc<Routes>,
    compression: CompressionLayer<CompressWhen>,
    /// Requests being handled, for load shedding.
    in_flight: AtomicUsize,
    /// Exact allowed origins (`scheme://host[:port]`), compared byte for byte: the guide's
    /// `origin.includes(domain)` let `https://yourdomain.com.attacker.io` through.
    origins: std::sync::Arc<[HeaderValue]>,
}

impl App {
    /// The application over `state`.
    #[must_use]
    pub fn new(state: AppState) -> Self {
        let origins = state
            .settings()
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect::<Vec<_>>()
            .into();
        let min = state.settings().http.compression_min_bytes;
        let compression = CompressionLayer::new()
            .gzip(true)
            .deflate(true)
            .br(true)
            // Brotli's default level costs milliseconds on dynamic JSON.
            .quality(CompressionLevel::Fastest)
            .compress_when(
                SizeAbove::new(min)
                    .and(NotForContentType::IMAGES)
                    .and(NotForContentType::GRPC)
                    .and(NotForContentType::SSE),
            );
        Self {
            state,
            routes: Arc::new(Routes::new()),
            compression,
            in_flight: AtomicUsize::new(0),
            origins,
        }
    }

    /// The state.
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Answers one request (see the module docs): at once when nothing has to be waited for,
    /// else with a future.
    ///
    /// At once: shed requests, CORS preflights, and — for clients the rate limiter does not
    /// count and that ask for no compression — the answers [`router::answer_now`] gives
    /// (liveness, unknown paths, the OpenAPI document). They cost no request future: under
    /// callgrind (`bench/api/instructions.sh`) the boxed future of every request was ~500
    /// instructions of `GET /health/live`'s 13,100 (a 1.7 KB allocation on mimalloc's generic
    /// path, its copy and its free).
    pub fn answer<B>(self: &Arc<Self>, req: Request<B>, peer: Option<SocketAddr>) -> Answer
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let front = self.begin(&req, peer);
        let count = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let headers = req.headers();
        let limit = self.limit_of(peer, headers);
        let now = if count > self.state.settings().http.max_in_flight {
            // Shed at once: queueing more work than can be done only makes every answer late.
            metrics::counter!("http_shed_total").increment(1);
            Some(
                ApiError::unavailable("OVERLOADED", "Service busy, try again later", 1)
                    .into_response(),
            )
        } else if front.method == Method::OPTIONS
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            // Answered here whatever the path: the browser only needs to know what it may send.
            Some(self.preflight(front.cors_origin.is_some()))
        } else if matches!(limit, Limit::Exempt) && !headers.contains_key(header::ACCEPT_ENCODING) {
            router::answer_now(front.route, &front.method)
        } else {
            None
        };
        if let Some(res) = now {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Answer::Now(self.finish(front, res, None));
        }
        let admitted = Admitted(Arc::clone(self));
        Answer::Later(Box::pin(async move {
            let app = &admitted.0;
            let mut front = front;
            let (res, limit_headers) = app
                .respond(&mut front, limit, req.map(Body::new), peer)
                .await;
            let res = app.finish(front, res, limit_headers);
            drop(admitted);
            res
        }))
    }

    /// What every request needs before it is answered.
    fn begin<B>(&self, req: &Request<B>, peer: Option<SocketAddr>) -> Front {
        let started = Instant::now();
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(v) if acceptable_id(v) => v.clone(),
            _ => new_request_id(),
        };
        let log = self
            .state
            .settings()
            .request_logs()
            .then(|| AccessLog::of(req.uri(), req.headers(), peer, &self.state));
        let (route, params) = match self.routes.at(req.uri().path()) {
            Some((route, params)) => (Some(route), params),
            None => (None, Params::default()),
        };
        Front {
            started,
            id,
            method: req.method().clone(),
            cors_origin: self.allowed_origin(req.headers()),
            log,
            route,
            params,
        }
    }

    /// The answer of a request that goes through the rate limiter and its route's handler.
    async fn respond(
        &self,
        front: &mut Front,
        limit: Limit,
        req: Request<Body>,
        peer: Option<SocketAddr>,
    ) -> (Response, Option<LimitHeaders>) {
        let mut ctx = Ctx {
            peer,
            principal: None,
        };
        let limit_headers = match self.rate_limit(&mut ctx, limit, req.headers()).await {
            Err(res) => return (res, None),
            Ok(headers) => headers,
        };
        let matched = front
            .route
            .map(|route| (route, std::mem::take(&mut front.params)));
        let res = if req.headers().contains_key(header::ACCEPT_ENCODING) {
            // Boxed: the compression machinery's future is twice the size of the rest of
            // this one, and most API clients never ask for it.
            Box::pin(self.dispatch_compressed(ctx, matched, req)).await
        } else {
            dispatch(&self.state, &ctx, matched, req).await
        };
        (res, limit_headers)
    }

    /// What every answer gets: the rendered error body, CORS, rate-limit, request-id and
    /// timing headers, metrics and the access log.
    fn finish(
        &self,
        front: Front,
        mut res: Response,
        limit_headers: Option<LimitHeaders>,
    ) -> Response {
        if let Some(pending) = res.extensions_mut().remove::<PendingError>() {
            *res.body_mut() = Body::from(pending.render(front.id.to_str().ok()));
        }
        let elapsed = front.started.elapsed();
        let status = res.status().as_u16();
        let h = res.headers_mut();
        if !self.origins.is_empty() {
            h.append(header::VARY, VARY_VALUE.clone());
        }
        if let Some(origin) = front.cors_origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                EXPOSE_HEADERS.clone(),
            );
        }
        if let Some((limit, remaining, reset)) = limit_headers {
            h.insert(LIMIT.clone(), HeaderValue::from(limit));
            h.insert(REMAINING.clone(), HeaderValue::from(remaining));
            h.insert(RESET.clone(), HeaderValue::from(reset));
        }
        stamp(h, front.id.clone(), response_time(elapsed));
        self.state
            .metrics()
            .observe_request(&front.method, front.route, status, elapsed);
        if let Some(log) = front.log {
            log.write(&front.method, status, elapsed, &front.id);
        }
        res
    }

    fn preflight(&self, allowed: bool) -> Response {
        let mut res = StatusCode::NO_CONTENT.into_response();
        if allowed {
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS.clone());
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS.clone());
            h.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE.clone());
        }
        res
    }

    /// The handler behind tower-http's compression, for clients that accept an encoding
    /// (the others skip the compression machinery altogether).
    async fn dispatch_compressed(
        &self,
        ctx: Ctx,
        matched: Option<(Route, Params)>,
        req: Request<Body>,
    ) -> Response {
        let state = self.state.clone();
        let mut once = Some((ctx, matched));
        let inner = tower::service_fn(move |req: Request<Body>| {
            let state = state.clone();
            let (ctx, matched) = once.take().unwrap_or_default();
            async move { Ok::<_, std::convert::Infallible>(dispatch(&state, &ctx, matched, req).await) }
        });
        let mut svc = self.compression.clone().layer(inner);
        match svc.call(req).await {
            Ok(res) => res.map(Body::new),
            Err(never) => match never {},
        }
    }

    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        if self.origins.is_empty() {
            return None;
        }
        let origin = headers.get(header::ORIGIN)?;
        self.origins
            .iter()
            .any(|o| o == origin)
            .then(|| origin.clone())
    }

    /// Whether the rate limiter counts this client (decided without IO).
    fn limit_of(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Limit {
        if self.state.limiter().is_none() {
            return Limit::Exempt;
        }
        let settings = self.state.settings();
        let ip = client_ip(peer, headers, &settings.trusted_proxies).map(|c| c.0);
        match ip {
            Some(ip)
                if settings
                    .rate_limit_allowlist
                    .iter()
                    .any(|net| net.contains(&ip)) =>
            {
                Limit::Exempt
            }
            ip => Limit::Counted(ip),
        }
    }

    /// `Ok(headers)`: go on (with the rate-limit headers, if the client was counted);
    /// `Err(429)`: refused.
    async fn rate_limit(
        &self,
        ctx: &mut Ctx,
        limit: Limit,
        headers: &HeaderMap,
    ) -> Result<Option<LimitHeaders>, Response> {
        let (Limit::Counted(ip), Some(limiter)) = (limit, self.state.limiter()) else {
            return Ok(None);
        };
        // Keyed by the user of a *valid* key: keying by whatever token a request carries
        // would give an attacker a fresh budget per made-up key.
        let mut key = None;
        if let Some(token) = bearer_token(headers)
            && let Ok(Some(principal)) = self.state.access().authenticate(token).await
        {
            key = Some(format!("u:{}", principal.user_id));
            ctx.principal = Some(principal);
        }
        let key = key.unwrap_or_else(|| match ip {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".to_owned(),
        });
        let d = limiter.check(&key).await;
        let reset = d.reset_after.as_secs() + u64::from(d.reset_after.subsec_nanos() > 0);
        if d.allowed {
            return Ok(Some((d.limit, d.remaining, reset)));
        }
        metrics::counter!("http_rate_limited_total").increment(1);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("Too many requests: limit is {} per minute", d.limit),
        );
        e.retry_after = Some(reset.max(1));
        let mut res = e.into_response();
        let h = res.headers_mut();
        h.insert(LIMIT.clone(), HeaderValue::from(d.limit));
        h.insert(REMAINING.clone(), HeaderValue::from(0u32));
        h.insert(RESET.clone(), HeaderValue::from(reset));
        Err(res)
    }
}

/// How the server gets the answer to a request.
pub enum Answer {
    /// Ready: nothing had to be waited for.
    Now(Response),
    /// To be awaited.
    Later(Pin<Box<dyn Future<Output = Response> + Send>>),
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` of a counted request.
type LimitHeaders = (u32, u32, u64);

/// Whether the rate limiter counts a request's client.
#[derive(Clone, Copy, Debug)]
enum Limit {
    /// No limiter, or an allow-listed address.
    Exempt,
    /// Counted, by user when the key is valid, else by this address.
    Counted(Option<IpAddr>),
}

/// A request the front is working on, and what it learned before answering.
struct Front {
    started: Instant,
    id: HeaderValue,
    method: Method,
    cors_origin: Option<HeaderValue>,
    log: Option<AccessLog>,
    /// The matched route (`None`: no route matches the path) and its path parameters.
    route: Option<Route>,
    params: Params,
}

/// A request counted as in flight (for load shedding) until dropped — also when its future
/// is dropped unfinished because the client went away. Holds the application for the future.
struct Admitted(Arc<App>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client-supplied id is kept when it is 1–128 visible ASCII characters without spaces;
/// anything else (empty, huge, control characters) is replaced, so logs stay clean.
pub(crate) fn acceptable_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic)
}

/// What the access log needs from the request (captured before the request is consumed).
struct AccessLog {
    uri: String,
    user_agent: String,
    remote: String,
}

impl AccessLog {
    fn of(uri: &Uri, headers: &HeaderMap, peer: Option<SocketAddr>, state: &AppState) -> Self {
        Self {
            uri: uri.to_string(),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            remote: client_ip(peer, headers, &state.settings().trusted_proxies)
                .map(|c| c.0.to_string())
                .unwrap_or_default(),
        }
    }

    fn write(self, method: &Method, status: u16, elapsed: std::time::Duration, id: &HeaderValue) {
        tracing::info!(
            target: "access",
            method = %method,
            url = %self.uri,
            remote_addr = %self.remote,
            user_agent = %self.user_agent,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = id.to_str().unwrap_or(""),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request that is not answered at once allocates and copies its future: handlers'
    /// futures are boxed where they are awaited so that it does not grow to the largest
    /// handler's size.
    #[test]
    fn the_request_future_stays_small() {
        fn size_of_future<'a, F, Fut>(_: F) -> usize
        where
            F: FnOnce(&'a App, &'a mut Front, Limit, Request<Body>, Option<SocketAddr>) -> Fut,
            Fut: Future,
        {
            std::mem::size_of::<Fut>()
        }
        let size = size_of_future(App::respond);
        // 2,872 bytes before the handlers', the compression path's and the key lookup's
        // slow-path futures were boxed.
        assert!(size <= 2048, "App::respond's future is {size} bytes");
    }

    #[test]
    fn stamps_fill_their_slots_or_are_inserted() {
        let id = HeaderValue::from_static("abc-1");
        let time = HeaderValue::from_static("0.05ms");
        // A head with slots: filled in place, nothing added or duplicated.
        let mut slotted = head_with_stamp_slots(HeaderValue::from_static("application/json"));
        stamp(&mut slotted, id.clone(), time.clone());
        // A head without them (a handler's answer): inserted beside what it has.
        let mut plain = HeaderMap::new();
        plain.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        stamp(&mut plain, id.clone(), time.clone());
        for h in [&slotted, &plain] {
            assert_eq!(h.len(), 3, "{h:?}");
            assert_eq!(h.get_all(&X_REQUEST_ID).iter().collect::<Vec<_>>(), [&id]);
            assert_eq!(
                h.get_all(&X_RESPONSE_TIME).iter().collect::<Vec<_>>(),
                [&time]
            );
        }
        assert_eq!(slotted[header::CONTENT_TYPE], "application/json");
        assert_eq!(plain[header::CONTENT_TYPE], "text/plain");
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(!acceptable_id(&HeaderValue::from_static("")));
        assert!(!acceptable_id(&HeaderValue::from_static("has space")));
        assert!(acceptable_id(&HeaderValue::from_static("client-id-123")));
        assert!(!acceptable_id(
            &HeaderValue::from_str(&"x".repeat(129)).unwrap()
        ));
        let a = new_request_id();
        assert!(acceptable_id(&a));
        assert_ne!(a, new_request_id());
    }
}
