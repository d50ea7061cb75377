//! Per-page network watchers: the egress interceptor and the network-idle tracker.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EventRequestPaused, FailRequestParams,
};
use chromiumoxide::cdp::browser_protocol::network::{
    ErrorReason, EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent,
    EventResponseReceived, RequestId, ResourceType,
};
use chromiumoxide::cdp::browser_protocol::page::{
    EventJavascriptDialogOpening, HandleJavaScriptDialogParams,
};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use crate::egress::EgressCheck;

/// Most blocked requests remembered per capture (a hostile page could make thousands).
pub(crate) const MAX_BLOCKED: usize = 50;

/// A request the egress policy refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BlockedRequest {
    /// The URL Chromium wanted to fetch.
    pub url: String,
    /// Why it was refused.
    pub reason: String,
}

/// Answers every paused request of one page: continue if the egress policy allows its URL,
/// fail it (`BlockedByClient`) otherwise. Also dismisses JavaScript dialogs, which would
/// otherwise block the page (and the capture) until the timeout.
pub(crate) struct Interceptor {
    task: JoinHandle<()>,
    blocked: Arc<Mutex<Vec<BlockedRequest>>>,
}

impl Interceptor {
    /// Subscribes to the page's paused requests and dialogs. `Fetch.enable` is sent by the
    /// caller afterwards, so that no request can be paused before someone listens.
    pub(crate) async fn start(
        page: &Page,
        egress: Arc<dyn EgressCheck>,
        browser: Arc<str>,
    ) -> Result<Self, chromiumoxide::error::CdpError> {
        let mut paused = page.event_listener::<EventRequestPaused>().await?;
        let mut dialogs = page
            .event_listener::<EventJavascriptDialogOpening>()
            .await?;
        let blocked = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&blocked);
        let page = page.clone();
        let task = tokio::spawn(async move {
            let mut checks = futures::stream::FuturesUnordered::new();
            loop {
                tokio::select! {
                    ev = paused.next() => {
                        let Some(ev) = ev else { break };
                        // Each check may resolve a name; run them side by side so that one slow
                        // lookup does not hold up the page's other requests.
                        checks.push(answer(
                            page.clone(),
                            Arc::clone(&egress),
                            ev,
                            Arc::clone(&sink),
                            Arc::clone(&browser),
                        ));
                    }
                    ev = dialogs.next() => {
                        let Some(_) = ev else { break };
                        let _ = page.execute(HandleJavaScriptDialogParams::new(false)).await;
                    }
                    Some(()) = checks.next(), if !checks.is_empty() => {}
                }
            }
            while checks.next().await.is_some() {}
        });
        Ok(Self { task, blocked })
    }

    /// The requests refused so far.
    pub(crate) fn blocked(&self) -> Vec<BlockedRequest> {
        self.blocked.lock().clone()
    }
}

impl Drop for Interceptor {
    fn drop(&mut self) {
        // The page (and its context) goes away with the capture; paused requests die with it.
        self.task.abort();
    }
}

async fn answer(
    page: Page,
    egress: Arc<dyn EgressCheck>,
    ev: Arc<EventRequestPaused>,
    blocked: Arc<Mutex<Vec<BlockedRequest>>>,
    browser: Arc<str>,
) {
    let url = ev.request.url.as_str();
    let verdict = match Url::parse(url) {
        Ok(parsed) => egress.check(&parsed).await.map_err(|e| e.reason),
        Err(e) => Err(format!("unparsable URL: {e}")),
    };
    let sent = match verdict {
        Ok(()) => page
            .execute(ContinueRequestParams::new(ev.request_id.clone()))
            .await
            .map(drop),
        Err(reason) => {
            tracing::info!(
                browser = %browser,
                url,
                %reason,
                "request blocked by the egress policy"
            );
            {
                let mut list = blocked.lock();
                if list.len() < MAX_BLOCKED {
                    list.push(BlockedRequest {
                        url: url.to_owned(),
                        reason,
                    });
                }
            }
            page.execute(FailRequestParams::new(
                ev.request_id.clone(),
                ErrorReason::BlockedByClient,
            ))
            .await
            .map(drop)
        }
    };
    if let Err(e) = sent {
        // The page or its context is gone (capture finished or failed): nothing to answer.
        tracing::debug!(browser = %browser, url, error = %e, "could not answer a paused request");
    }
}

/// Counts the page's requests in flight, to wait for network idle, and remembers the main
/// document's HTTP status.
pub(crate) struct NetworkTracker {
    task: JoinHandle<()>,
    state: watch::Receiver<Activity>,
    status: Arc<Mutex<Option<u16>>>,
}

#[derive(Clone, Copy, Debug)]
struct Activity {
    in_flight: usize,
    since: Instant,
}

impl NetworkTracker {
    pub(crate) async fn start(page: &Page) -> Result<Self, chromiumoxide::error::CdpError> {
        let mut sent = page.event_listener::<EventRequestWillBeSent>().await?;
        let mut finished = page.event_listener::<EventLoadingFinished>().await?;
        let mut failed = page.event_listener::<EventLoadingFailed>().await?;
        let mut responses = page.event_listener::<EventResponseReceived>().await?;
        let (tx, state) = watch::channel(Activity {
            in_flight: 0,
            since: Instant::now(),
        });
        let status = Arc::new(Mutex::new(None));
        let status_sink = Arc::clone(&status);
        let task = tokio::spawn(async move {
            let mut in_flight: HashSet<RequestId> = HashSet::new();
            let publish = |set: &HashSet<RequestId>| {
                tx.send_replace(Activity {
                    in_flight: set.len(),
                    since: Instant::now(),
                });
            };
            loop {
                tokio::select! {
                    ev = sent.next() => {
                        let Some(ev) = ev else { break };
                        if in_flight.insert(ev.request_id.clone()) { publish(&in_flight); }
                    }
                    ev = finished.next() => {
                        let Some(ev) = ev else { break };
                        if in_flight.remove(&ev.request_id) { publish(&in_flight); }
                    }
                    ev = failed.next() => {
                        let Some(ev) = ev else { break };
                        if in_flight.remove(&ev.request_id) { publish(&in_flight); }
                    }
                    ev = responses.next() => {
                        let Some(ev) = ev else { break };
                        if ev.r#type == ResourceType::Document {
                            let mut s = status_sink.lock();
                            if s.is_none() {
                                *s = u16::try_from(ev.response.status).ok();
                            }
                        }
                    }
                }
            }
        });
        Ok(Self {
            task,
            state,
            status,
        })
    }

    /// The HTTP status of the first document response: the main page's, after redirects
    /// (a redirect has no response event of its own; iframes answer later).
    pub(crate) fn document_status(&self) -> Option<u16> {
        *self.status.lock()
    }

    /// Waits until no request has been in flight for `quiet`, or `max` has passed. Returns
    /// whether the network went idle.
    pub(crate) async fn wait_idle(&mut self, quiet: Duration, max: Duration) -> bool {
        let give_up = Instant::now() + max;
        loop {
            let Activity { in_flight, since } = *self.state.borrow_and_update();
            if in_flight == 0 {
                let idle_at = since + quiet;
                if Instant::now() >= idle_at {
                    return true;
                }
                if idle_at > give_up {
                    return false;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(idle_at) => {}
                    changed = self.state.changed() => if changed.is_err() { return true; },
                }
            } else {
                tokio::select! {
                    () = tokio::time::sleep_until(give_up) => return false,
                    changed = self.state.changed() => if changed.is_err() { return true; },
                }
            }
        }
    }
}

impl Drop for NetworkTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
