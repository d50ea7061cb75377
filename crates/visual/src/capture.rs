//! One capture on one browser: a fresh context, a guarded page, a stabilised screenshot.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::browser::{
    SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::{
    SetDeviceMetricsOverrideParams, SetTouchEmulationEnabledParams,
};
use chromiumoxide::cdp::browser_protocol::fetch::{
    EnableParams as FetchEnable, RequestPattern, RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::EnableParams as NetworkEnable;
use chromiumoxide::cdp::browser_protocol::page::{
    AddScriptToEvaluateOnNewDocumentParams, CaptureScreenshotFormat, CaptureScreenshotParams,
    GetLayoutMetricsParams, NavigateParams, Viewport as Clip,
};
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams, EventTargetCrashed, TargetId,
};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::error::CdpError;
use chromiumoxide::listeners::EventStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{CaptureRequest, PoolConfig, Screen};
use crate::error::CaptureError;
use crate::instance::Live;
use crate::network::{BlockedRequest, Interceptor, NetworkTracker};
use crate::proxy::EgressProxy;
use crate::scripts;

/// A stabilised screenshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// The PNG (8-bit RGB(A), device scale factor 1).
    pub png: Bytes,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// For full-page captures, the whole page's height in this capture's pixels, before the
    /// cap (equal to `height` unless [`truncated`](Self::truncated)); a phone showing a page
    /// without `<meta name=viewport>` zoomed out draws it at that zoom.
    pub page_height: u32,
    /// The full page was taller than the height cap and was cut.
    pub truncated: bool,
    /// The HTTP status of the page, if it came over HTTP.
    pub status: Option<u16>,
    /// The network went idle before the capture (false: the page kept loading something, and
    /// the capture went ahead after the wait limit).
    pub network_idle: bool,
    /// Requests the egress policy refused (the first 50).
    pub blocked: Vec<BlockedRequest>,
    /// The instance that made it.
    pub browser: String,
    /// Wall time of the capture in the browser.
    pub duration: Duration,
}

/// Runs one capture on `live`. The caller bounds the whole call with the breaker's call
/// timeout; the page's own budget (`request.timeout`) is enforced here.
pub(crate) async fn capture(
    live: &Arc<Live>,
    browser_name: &Arc<str>,
    request: &CaptureRequest,
    config: &PoolConfig,
) -> Result<Capture, CaptureError> {
    let started = Instant::now();
    let deadline = started + request.timeout;
    let mut marks = Marks::new(started);
    let proxy = if live.proxied {
        let p = EgressProxy::start(Arc::clone(&config.egress))
            .await
            .map_err(|e| {
                CaptureError::Interception(format!("cannot start the egress proxy: {e}"))
            })?;
        Some(p)
    } else {
        None
    };
    let context = Context::create(live, proxy.as_ref())
        .await
        .map_err(|e| protocol(live, browser_name, &e))?;
    marks.mark("context");
    // A renderer crash ends the capture at once (its page would never answer again); it is
    // reported on the browser's session, so the page's target id is handed over when known.
    let crashes = live
        .browser
        .event_listener::<EventTargetCrashed>()
        .await
        .map_err(|e| protocol(live, browser_name, &e))?;
    let (target_tx, target_rx) = watch::channel(None);
    let work = run(
        live,
        browser_name,
        &context,
        proxy.as_ref(),
        &target_tx,
        request,
        config,
        (started, deadline),
        &mut marks,
    );
    let result = tokio::select! {
        r = work => r,
        () = page_crashed(crashes, target_rx) => Err(CaptureError::PageCrashed {
            url: request.url.to_string(),
        }),
    };
    let result = result.map(|mut shot| {
        if let Some(p) = &proxy {
            shot.blocked.extend(p.blocked());
            shot.blocked.truncate(crate::network::MAX_BLOCKED);
        }
        shot
    });
    context.dispose().await;
    marks.mark("dispose");
    tracing::debug!(
        browser = %browser_name,
        url = %request.url,
        phases = %marks,
        ok = result.is_ok(),
        "capture timing"
    );
    result
}

/// Time spent in each phase of a capture, for the debug log.
struct Marks {
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl Marks {
    fn new(start: Instant) -> Self {
        Self {
            last: start,
            phases: Vec::with_capacity(12),
        }
    }

    fn mark(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.phases.push((phase, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Marks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, d)) in self.phases.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={}ms", d.as_millis())?;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    live: &Arc<Live>,
    name: &Arc<str>,
    context: &Context,
    proxy: Option<&EgressProxy>,
    target: &watch::Sender<Option<TargetId>>,
    request: &CaptureRequest,
    config: &PoolConfig,
    (started, deadline): (Instant, Instant),
    marks: &mut Marks,
) -> Result<Capture, CaptureError> {
    let err = |e: CdpError| protocol(live, name, &e);
    let screen = Screen::from(request.viewport);
    let params = CreateTargetParams::builder()
        .url("about:blank")
        .browser_context_id(context.id.clone())
        .build()
        .map_err(CaptureError::Protocol)?;
    let page = live.browser.new_page(params).await.map_err(err)?;
    target.send_replace(Some(page.target_id().clone()));
    marks.mark("page");
    let on_page = OnPage {
        page: &page,
        live,
        name,
        request,
        config,
    };

    // Listeners first, then interception: no request can be paused before it has an answerer.
    let interceptor = Interceptor::start(&page, Arc::clone(&config.egress), Arc::clone(name))
        .await
        .map_err(err)?;
    let mut network = NetworkTracker::start(&page).await.map_err(err)?;
    enable_interception(&page, config.break_interception)
        .await
        .map_err(|e| {
            if live.is_dead() {
                lost(live, name)
            } else {
                CaptureError::Interception(e.to_string())
            }
        })?;

    // chromiumoxide enables the Network domain with Chromium's default buffers, which keep a
    // copy of every response body for `Network.getResponseBody`; nothing here reads them.
    page.execute(
        NetworkEnable::builder()
            .max_total_buffer_size(0)
            .max_resource_buffer_size(0)
            .max_post_data_size(0)
            .build(),
    )
    .await
    .map_err(err)?;

    let metrics = SetDeviceMetricsOverrideParams::builder()
        .width(i64::from(screen.width))
        .height(i64::from(screen.height))
        .device_scale_factor(1.0)
        .mobile(screen.mobile)
        .screen_width(i64::from(screen.width))
        .screen_height(i64::from(screen.height))
        .build()
        .map_err(CaptureError::Protocol)?;
    page.execute(metrics).await.map_err(err)?;
    if screen.mobile {
        page.execute(SetTouchEmulationEnabledParams::new(true))
            .await
            .map_err(err)?;
    }
    page.execute(AddScriptToEvaluateOnNewDocumentParams::new(
        scripts::ON_NEW_DOCUMENT,
    ))
    .await
    .map_err(err)?;

    marks.mark("setup");
    // Navigation: chromiumoxide answers `Page.navigate` once the page has fired `load`.
    let url = request.url.as_str();
    let remaining = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(remaining, page.execute(NavigateParams::new(url))).await {
        Err(_) => return Err(timed_out(live, name, request, config).await),
        Ok(Err(e)) => return Err(err(e)),
        Ok(Ok(resp)) => {
            if let Some(mut error) = resp.result.error_text {
                let status = network.document_status();
                let host_port = request
                    .url
                    .host_str()
                    .zip(request.url.port_or_known_default());
                if let Some(cause) = proxy
                    .zip(host_port)
                    .and_then(|(p, (h, port))| p.connect_error(&format!("{h}:{port}")))
                {
                    error = format!("{error} ({cause})");
                }
                return Err(navigation_error(url, status, error, &interceptor.blocked()));
            }
        }
    }

    // An error status with nothing to show is a failed navigation (as the full browser
    // reports it), not a blank screenshot to compare.
    if let Some(status) = network.document_status().filter(|s| *s >= 400)
        && on_page
            .evaluate(scripts::IS_EMPTY, &(), Duration::from_secs(5))
            .await?
            == serde_json::Value::Bool(true)
    {
        return Err(CaptureError::Navigation {
            url: url.to_owned(),
            status: Some(status),
            error: "the answer has no body".to_owned(),
        });
    }

    marks.mark("load");
    let budget = |cap: Duration| deadline.saturating_duration_since(Instant::now()).min(cap);
    let mut idle = network
        .wait_idle(config.network_quiet, budget(config.max_network_wait))
        .await;
    marks.mark("idle");

    if let Some(selector) = &request.wait_for {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Args<'a> {
            selector: &'a str,
            timeout_ms: u64,
        }
        let wait = budget(request.timeout);
        let args = Args {
            selector,
            timeout_ms: millis(wait),
        };
        let value = on_page
            .evaluate(scripts::WAIT_FOR, &args, wait + Duration::from_secs(2))
            .await?;
        match value {
            serde_json::Value::Bool(true) => {}
            serde_json::Value::Bool(false) => {
                return Err(CaptureError::WaitForTimeout {
                    selector: selector.clone(),
                    after: request.timeout,
                });
            }
            other => return Err(invalid_selector(&other, selector)),
        }
        idle = network
            .wait_idle(config.network_quiet, budget(config.max_network_wait))
            .await;
    }

    if request.full_page {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Args {
            step: u32,
            max_height: u32,
        }
        let args = Args {
            step: screen.height,
            max_height: config.max_full_page_height,
        };
        on_page
            .evaluate(scripts::SCROLL_THROUGH, &args, budget(request.timeout))
            .await?;
        idle = network
            .wait_idle(config.network_quiet, budget(config.max_network_wait))
            .await;
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct SettleArgs {
        full_page: bool,
        timeout_ms: u64,
    }
    let settle_budget = budget(Duration::from_secs(10));
    let settled = on_page
        .evaluate(
            scripts::SETTLE,
            &SettleArgs {
                full_page: request.full_page,
                timeout_ms: millis(settle_budget),
            },
            settle_budget + Duration::from_secs(2),
        )
        .await?;
    marks.mark("settle");
    if settled != "ok" {
        tracing::debug!(browser = %name, url, "fonts or images still loading at the settle limit");
    }

    if !request.delay.is_zero() {
        tokio::time::sleep(request.delay.min(budget(request.delay))).await;
    }

    #[derive(Serialize)]
    struct StabiliseArgs<'a> {
        hide: &'a [String],
        mask: &'a [String],
        color: &'a str,
    }
    let stabilised = on_page
        .evaluate(
            scripts::STABILISE,
            &StabiliseArgs {
                hide: &request.hide,
                mask: &request.mask,
                color: scripts::MASK_COLOR,
            },
            Duration::from_secs(10),
        )
        .await?;
    if stabilised.get("ok") != Some(&serde_json::Value::Bool(true)) {
        let selector = stabilised
            .get("selector")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        return Err(invalid_selector(&stabilised, &selector));
    }

    marks.mark("stabilise");
    let mut shot = CaptureScreenshotParams::builder()
        .format(CaptureScreenshotFormat::Png)
        .from_surface(true)
        // Only the PNG encoder's effort changes; the pixels are the same.
        .optimize_for_speed(true);
    let (mut page_height, mut truncated) = (screen.height, false);
    if request.full_page {
        let layout = page
            .execute(GetLayoutMetricsParams::default())
            .await
            .map_err(err)?
            .result;
        let size = layout.css_content_size;
        // A mobile page without `<meta name=viewport>` is laid out 980 px wide and shown
        // zoomed out. The full page is drawn at the zoom of the viewport capture, so that it
        // is as wide as the device (and looks like the viewport capture, extended down)
        // rather than as wide as the page's layout.
        let zoom = layout.css_visual_viewport.scale;
        let zoom = if zoom.is_finite() && zoom > 0.0 {
            zoom
        } else {
            1.0
        };
        let width = size.width.max(f64::from(screen.width) / zoom);
        page_height = css_px((size.height * zoom).round()).max(1);
        let height = page_height.min(config.max_full_page_height);
        truncated = height < page_height;
        shot = shot.capture_beyond_viewport(true).clip(Clip {
            x: 0.0,
            y: 0.0,
            width,
            height: f64::from(height) / zoom,
            scale: zoom,
        });
    }
    let data = page.execute(shot.build()).await.map_err(err)?.result.data;
    marks.mark("screenshot");
    let png = base64::engine::general_purpose::STANDARD
        .decode(AsRef::<[u8]>::as_ref(&data))
        .map_err(|e| CaptureError::Protocol(format!("screenshot is not base64: {e}")))?;
    let (width, height) = png_size(&png)?;
    if !request.full_page {
        page_height = height;
    }
    let status = network.document_status();
    let blocked = interceptor.blocked();
    drop(network);
    drop(interceptor);
    Ok(Capture {
        png: Bytes::from(png),
        width,
        height,
        page_height,
        truncated,
        status,
        network_idle: idle,
        blocked,
        browser: name.to_string(),
        duration: started.elapsed(),
    })
}

async fn enable_interception(page: &Page, broken: bool) -> Result<(), CdpError> {
    if broken {
        page.execute(BrokenFetchEnable {
            patterns: "not a list",
        })
        .await?;
        return Ok(());
    }
    let pattern = RequestPattern::builder()
        .url_pattern("*")
        .request_stage(RequestStage::Request)
        .build();
    page.execute(FetchEnable::builder().pattern(pattern).build())
        .await
        .map(drop)
}

/// `Fetch.enable` with parameters Chromium refuses: the test hook that proves a capture fails
/// closed when interception cannot be set up.
#[derive(Debug, Serialize)]
struct BrokenFetchEnable {
    patterns: &'static str,
}

impl chromiumoxide::types::Method for BrokenFetchEnable {
    fn identifier(&self) -> chromiumoxide::types::MethodId {
        "Fetch.enable".into()
    }
}

impl chromiumoxide::types::Command for BrokenFetchEnable {
    type Response = serde_json::Value;
}

/// Resolves when the target named in `target` crashes; never if the event stream ends (the
/// browser is gone, which the capture's own commands report).
async fn page_crashed(
    mut crashes: EventStream<EventTargetCrashed>,
    mut target: watch::Receiver<Option<TargetId>>,
) {
    while let Some(ev) = crashes.next().await {
        if target.borrow_and_update().as_ref() == Some(&ev.target_id) {
            return;
        }
    }
    std::future::pending().await
}

/// A browser context that is disposed when the capture ends, however it ends.
struct Context {
    live: Arc<Live>,
    id: BrowserContextId,
    disposed: bool,
}

impl Context {
    async fn create(live: &Arc<Live>, proxy: Option<&EgressProxy>) -> Result<Self, CdpError> {
        let mut params = CreateBrowserContextParams::builder().dispose_on_detach(true);
        if let Some(proxy) = proxy {
            // `<-loopback>` removes Chromium's implicit proxy bypass for localhost: loopback is
            // exactly what the policy must see.
            params = params
                .proxy_server(proxy.url())
                .proxy_bypass_list("<-loopback>");
        }
        let params = params.build();
        let id = live.browser.create_browser_context(params).await?;
        let context = Self {
            live: Arc::clone(live),
            id,
            disposed: false,
        };
        // A page that answers with a file must not write it to the disk.
        live.browser
            .execute(
                SetDownloadBehaviorParams::builder()
                    .behavior(SetDownloadBehaviorBehavior::Deny)
                    .browser_context_id(context.id.clone())
                    .build()
                    .map_err(CdpError::msg)?,
            )
            .await?;
        Ok(context)
    }

    async fn dispose(mut self) {
        self.disposed = true;
        if let Err(e) = self
            .live
            .browser
            .dispose_browser_context(self.id.clone())
            .await
        {
            tracing::debug!(error = %e, "could not dispose a browser context");
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if self.disposed || self.live.is_dead() {
            return;
        }
        // The capture was cancelled (timeout, caller gone): dispose in the background so
        // that the context's renderer does not outlive it.
        let live = Arc::clone(&self.live);
        let id = self.id.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    live.browser.dispose_browser_context(id),
                )
                .await;
            });
        }
    }
}

/// What a page evaluation needs to turn its failures into capture errors.
struct OnPage<'a> {
    page: &'a Page,
    live: &'a Live,
    name: &'a str,
    request: &'a CaptureRequest,
    config: &'a PoolConfig,
}

impl OnPage<'_> {
    /// Calls `function(args)` in the page and returns its (awaited) value.
    async fn evaluate<A: Serialize>(
        &self,
        function: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<serde_json::Value, CaptureError> {
        let expression = scripts::call(function, args)
            .map_err(|e| CaptureError::Protocol(format!("cannot encode script arguments: {e}")))?;
        let params = EvaluateParams::builder()
            .expression(expression)
            .await_promise(true)
            .return_by_value(true)
            .build()
            .map_err(CaptureError::Protocol)?;
        let resp = match tokio::time::timeout(timeout, self.page.execute(params)).await {
            Err(_) => return Err(timed_out(self.live, self.name, self.request, self.config).await),
            Ok(Err(e)) => return Err(protocol(self.live, self.name, &e)),
            Ok(Ok(resp)) => resp.result,
        };
        if let Some(ex) = resp.exception_details {
            let what = ex.exception.and_then(|e| e.description).unwrap_or(ex.text);
            return Err(CaptureError::Protocol(format!(
                "page script failed: {what}"
            )));
        }
        Ok(resp.result.value.unwrap_or(serde_json::Value::Null))
    }
}

/// A timeout while the page loaded: the page's fault if the browser still answers, the
/// browser's if it does not (then it is killed at once so that nothing else waits on it).
async fn timed_out(
    live: &Live,
    name: &str,
    request: &CaptureRequest,
    config: &PoolConfig,
) -> CaptureError {
    if live.ping(config.ping_timeout).await {
        CaptureError::NavigationTimeout {
            url: request.url.to_string(),
            after: request.timeout,
        }
    } else {
        live.kill_hung();
        CaptureError::BrowserHung {
            browser: name.to_owned(),
        }
    }
}

/// A CDP error: the browser's death if the connection is gone, a protocol error otherwise.
fn protocol(live: &Live, name: &str, e: &CdpError) -> CaptureError {
    if live.is_dead() {
        lost(live, name)
    } else {
        CaptureError::Protocol(e.to_string())
    }
}

/// The browser is gone: killed for hanging, or crashed.
fn lost(live: &Live, name: &str) -> CaptureError {
    let browser = name.to_owned();
    if live.was_hung() {
        CaptureError::BrowserHung { browser }
    } else {
        CaptureError::BrowserCrashed { browser }
    }
}

fn navigation_error(
    url: &str,
    status: Option<u16>,
    error: String,
    blocked: &[BlockedRequest],
) -> CaptureError {
    if error.contains("ERR_BLOCKED_BY_CLIENT")
        && let Some(b) = blocked.first()
    {
        return CaptureError::BlockedByPolicy {
            url: b.url.clone(),
            reason: b.reason.clone(),
        };
    }
    CaptureError::Navigation {
        url: url.to_owned(),
        status,
        error,
    }
}

fn invalid_selector(answer: &serde_json::Value, selector: &str) -> CaptureError {
    #[derive(Deserialize)]
    struct Answer {
        error: String,
    }
    let why = serde_json::from_value::<Answer>(answer.clone())
        .map_or_else(|_| "unexpected answer".to_owned(), |a| a.error);
    CaptureError::InvalidRequest(format!("invalid CSS selector `{selector}`: {why}"))
}

/// CSS pixels (DPR 1) from a layout size, rounded up and bounded.
fn css_px(v: f64) -> u32 {
    if v.is_finite() && v > 0.0 {
        // Bounded above by the cast's saturation; the height cap applies afterwards.
        v.ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Width and height from the PNG header (no pixel decoding).
fn png_size(png: &[u8]) -> Result<(u32, u32), CaptureError> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let reader = decoder
        .read_info()
        .map_err(|e| CaptureError::Protocol(format!("screenshot is not a PNG: {e}")))?;
    let info = reader.info();
    Ok((info.width, info.height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_pixels_round_up_and_reject_garbage() {
        assert_eq!(css_px(1080.2), 1081);
        assert_eq!(css_px(f64::NAN), 0);
        assert_eq!(css_px(-3.0), 0);
        assert_eq!(css_px(1e12), u32::MAX);
    }

    #[test]
    fn blocked_navigation_names_the_blocked_url() {
        let blocked = vec![BlockedRequest {
            url: "http://10.0.0.1/".into(),
            reason: "private".into(),
        }];
        let e = navigation_error(
            "http://127.0.0.1/r",
            None,
            "net::ERR_BLOCKED_BY_CLIENT".into(),
            &blocked,
        );
        assert!(
            matches!(e, CaptureError::BlockedByPolicy { ref url, .. } if url == "http://10.0.0.1/")
        );
        let e = navigation_error(
            "http://127.0.0.1/",
            None,
            "net::ERR_CONNECTION_REFUSED".into(),
            &[],
        );
        assert!(matches!(e, CaptureError::Navigation { .. }));
        let e = navigation_error(
            "http://x/",
            Some(404),
            "net::ERR_HTTP_RESPONSE_CODE_FAILURE".into(),
            &[],
        );
        assert_eq!(
            e.to_string(),
            "could not load `http://x/`: HTTP 404, net::ERR_HTTP_RESPONSE_CODE_FAILURE"
        );
    }
}
