//! The route table: every endpoint of the contract, matched with `matchit` (the matcher
//! axum uses) and dispatched to plain async handler functions.
//!
//! Why not axum's `Router`: the profile of `GET /health/live` (callgrind, steady state)
//! showed axum's per-request machinery — cloning the route's boxed service, the boxed
//! futures of each layer, the extensions map for matched paths and parameters — at about
//! 10,000 instructions, more than hyper's whole HTTP/1 parse and encode. A table of ~15 routes
//! and explicit arguments costs a lookup and a `match`, and the handlers read as what they
//! are: functions of the state and the request.

use crate::error::ApiError;
use crate::extract::Ctx;
use crate::routes::{health, openapi, scans, sites, users};
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Users,
    Sites,
    Site,
    SiteMember,
    SiteScans,
    SiteCache,
    SiteBaselines,
    Scan,
    ScanById,
    ScanFindings,
    ScanArtifact,
    HealthLive,
    HealthReady,
    HealthPerformance,
    Metrics,
    OpenApi,
}

impl Route {
    /// How many routes there are.
    pub(crate) const COUNT: usize = Self::ALL.len();

    const ALL: [Self; 16] = [
        Self::Users,
        Self::Sites,
        Self::Site,
        Self::SiteMember,
        Self::SiteScans,
        Self::SiteCache,
        Self::SiteBaselines,
        Self::Scan,
        Self::ScanById,
        Self::ScanFindings,
        Self::ScanArtifact,
        Self::HealthLive,
        Self::HealthReady,
        Self::HealthPerformance,
        Self::Metrics,
        Self::OpenApi,
    ];

    /// Its position in [`Route::ALL`] (`0..COUNT`), for per-route tables.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The path template (also the metrics label).
    pub(crate) const fn template(self) -> &'static str {
        match self {
            Self::Users => "/api/users",
            Self::Sites => "/api/sites",
            Self::Site => "/api/sites/{id}",
            Self::SiteMember => "/api/sites/{id}/members/{userId}",
            Self::SiteScans => "/api/sites/{id}/scans",
            Self::SiteCache => "/api/sites/{id}/cache",
            Self::SiteBaselines => "/api/sites/{id}/baselines",
            Self::Scan => "/api/scan",
            Self::ScanById => "/api/scans/{id}",
            Self::ScanFindings => "/api/scans/{id}/findings",
            Self::ScanArtifact => "/api/scans/{id}/artifacts/{name}",
            Self::HealthLive => "/health/live",
            Self::HealthReady => "/health/ready",
            Self::HealthPerformance => "/health/performance",
            Self::Metrics => "/metrics",
            Self::OpenApi => "/openapi.json",
        }
    }

    /// The methods it answers (HEAD is served wherever GET is).
    const fn allow(self) -> &'static str {
        match self {
            Self::Users | Self::Scan | Self::SiteBaselines => "POST",
            Self::Sites => "GET, HEAD, POST",
            Self::SiteMember => "PUT",
            Self::SiteCache => "DELETE",
            _ => "GET, HEAD",
        }
    }
}

/// Path parameters of a matched route (at most two, all short).
#[derive(Debug, Default)]
pub(crate) struct Params {
    /// `{id}`.
    pub id: String,
    /// `{userId}` or `{name}`.
    pub second: String,
}

/// The compiled table.
pub(crate) struct Routes {
    tree: matchit::Router<Route>,
    /// The routes without parameters, matched by string comparison before the tree.
    fixed: Vec<Route>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        let mut table = matchit::Router::new();
        for route in Route::ALL {
            // The templates are constants with distinct shapes: insertion cannot fail.
            if let Err(e) = table.insert(route.template(), route) {
                tracing::error!(route = route.template(), error = %e, "route table");
            }
        }
        let fixed = Route::ALL
            .into_iter()
            .filter(|r| !r.template().contains('{'))
            .collect();
        Self { tree: table, fixed }
    }

    pub(crate) fn at(&self, path: &str) -> Option<(Route, Params)> {
        // Paths without parameters are compared as strings first: mostly length comparisons
        // instead of the tree walk (callgrind, W0: ~200 instructions fewer per request).
        if let Some(route) = self.fixed.iter().find(|r| r.template() == path) {
            return Some((*route, Params::default()));
        }
        let m = self.tree.at(path).ok()?;
        let mut params = Params::default();
        for (k, v) in m.params.iter() {
            match k {
                "id" => v.clone_into(&mut params.id),
                _ => v.clone_into(&mut params.second),
            }
        }
        Some((*m.value, params))
    }
}

fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "No such endpoint").into_response()
}

/// The answer when it needs neither the request's body nor any IO: unknown paths, liveness,
/// the OpenAPI document. `None`: the route's handler has to run ([`dispatch`]).
///
/// The front answers these without a request future at all ([`crate::front::App::answer`]).
pub(crate) fn answer_now(route: Option<Route>, method: &Method) -> Option<Response> {
    let get = matches!(*method, Method::GET | Method::HEAD);
    match route {
        None => Some(not_found()),
        Some(Route::HealthLive) if get => Some(health::live()),
        Some(Route::OpenApi) if get => Some(openapi::openapi_json()),
        Some(_) => None,
    }
}

fn method_not_allowed(route: Route) -> Response {
    let mut res = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "Method not allowed on this endpoint",
    )
    .into_response();
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(route.allow()));
    res
}

fn respond<T: IntoResponse>(r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => v.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Runs the handler of a matched route (`None`: no route matched the path).
///
/// Each handler's future is boxed where it is awaited: inline, this function's future (and
/// the front's around it) would be as large as the largest handler's — kilobytes, copied into
/// the request's allocation on every request, `GET /health/live` included (`perf`, W0: that
/// copy was 1.5 % of the server's time). Boxed, a request allocates only what its own handler
/// needs.
pub(crate) async fn dispatch(
    state: &AppState,
    ctx: &Ctx,
    matched: Option<(Route, Params)>,
    req: Request<Body>,
) -> Response {
    if let Some(res) = answer_now(matched.as_ref().map(|(r, _)| *r), req.method()) {
        return res;
    }
    let Some((route, params)) = matched else {
        return not_found();
    };
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    match (route, req.method().clone()) {
        (Route::HealthReady, _) if get => Box::pin(health::ready(state)).await,
        (Route::HealthPerformance, _) if get => Box::pin(health::performance(state)).await,
        (Route::Metrics, _) if get => respond(health::metrics(state, ctx, &req)),
        (Route::Scan, Method::POST) => respond(Box::pin(scans::submit(state, ctx, req)).await),
        (Route::ScanById, _) if get => {
            respond(Box::pin(scans::get(state, ctx, req, &params.id)).await)
        }
        (Route::ScanFindings, _) if get => {
            respond(Box::pin(scans::findings(state, ctx, req, &params.id)).await)
        }
        (Route::ScanArtifact, _) if get => {
            respond(Box::pin(scans::artifact(state, ctx, req, &params.id, &params.second)).await)
        }
        (Route::Users, Method::POST) => respond(Box::pin(users::create(state, ctx, req)).await),
        (Route::Sites, Method::POST) => respond(Box::pin(sites::create(state, ctx, req)).await),
        (Route::Sites, _) if get => respond(Box::pin(sites::list(state, ctx, req)).await),
        (Route::Site, _) if get => respond(Box::pin(sites::get(state, ctx, req, &params.id)).await),
        (Route::SiteMember, Method::PUT) => respond(
            Box::pin(sites::set_member(
                state,
                ctx,
                req,
                &params.id,
                &params.second,
            ))
            .await,
        ),
        (Route::SiteScans, _) if get => {
            respond(Box::pin(sites::scans(state, ctx, req, &params.id)).await)
        }
        (Route::SiteCache, Method::DELETE) => {
            respond(Box::pin(sites::drop_cache(state, ctx, req, &params.id)).await)
        }
        (Route::SiteBaselines, Method::POST) => {
            respond(Box::pin(sites::approve_baseline(state, ctx, req, &params.id)).await)
        }
        _ => method_not_allowed(route),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_matches_its_template_and_params() {
        let routes = Routes::new();
        let (r, p) = routes.at("/api/sites/abc/members/def").unwrap();
        assert_eq!(r, Route::SiteMember);
        assert_eq!((p.id.as_str(), p.second.as_str()), ("abc", "def"));
        let (r, p) = routes.at("/api/scans/x/artifacts/diff.png").unwrap();
        assert_eq!(r, Route::ScanArtifact);
        assert_eq!((p.id.as_str(), p.second.as_str()), ("x", "diff.png"));
        assert_eq!(routes.at("/health/live").unwrap().0, Route::HealthLive);
        assert!(routes.at("/api/scans").is_none());
        assert!(routes.at("/nope").is_none());
        for (i, route) in Route::ALL.into_iter().enumerate() {
            assert_eq!(route.index(), i, "{route:?}: index is its place in ALL");
            let concrete = route
                .template()
                .replace("{id}", "a")
                .replace("{userId}", "b")
                .replace("{name}", "c");
            assert_eq!(routes.at(&concrete).unwrap().0, route, "{concrete}");
            // The string fast path knows every template without parameters, and only those.
            let fixed = !route.template().contains('{');
            assert_eq!(routes.fixed.contains(&route), fixed, "{route:?}");
        }
    }
}
