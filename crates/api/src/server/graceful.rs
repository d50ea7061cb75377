//! Graceful shutdown of open connections: when the signal fires, every connection is told to
//! finish the request it is serving and close (HTTP/1: no further keep-alive request;
//! HTTP/2: GOAWAY).
//!
//! By hand rather than hyper-util's `GracefulShutdown` because that one polls a
//! `tokio::sync::watch` receiver every time the connection is polled, which locks the watch's
//! notifier to re-register the task's waker: ~360 instructions per request under callgrind
//! (`bench/api/instructions.sh`, `GET /health/live`), about a twentieth of a bare hyper
//! server's whole request. Here a connection registers its waker once (again only if its task's
//! waker changes) and otherwise pays one atomic load per poll.

use hyper_util::server::graceful::GracefulConnection;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// A connection that can be told to finish what it is serving and close.
pub(crate) trait Graceful: Future {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<C: GracefulConnection> Graceful for C {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        GracefulConnection::graceful_shutdown(self);
    }
}

/// The shutdown signal, shared by the accept loop and every connection.
#[derive(Debug, Default)]
pub(crate) struct ShutdownSignal {
    fired: AtomicBool,
    next_key: AtomicU64,
    /// The wakers of the connections' tasks, by connection.
    wakers: Mutex<HashMap<u64, Waker>>,
}

impl ShutdownSignal {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Tells every connection (open now or accepted later) to finish and close.
    pub(crate) fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        let wakers =
            std::mem::take(&mut *self.wakers.lock().unwrap_or_else(PoisonError::into_inner));
        for waker in wakers.into_values() {
            waker.wake();
        }
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Drives `conn`, shutting it down gracefully once the signal fires.
    pub(crate) fn watch<C: Graceful>(self: &Arc<Self>, conn: C) -> Watched<C> {
        Watched {
            conn,
            registration: Registration {
                signal: Arc::clone(self),
                key: self.next_key.fetch_add(1, Ordering::Relaxed),
                waker: None,
            },
            shutting_down: false,
        }
    }
}

/// A connection's entry in the signal's waker table, removed when the connection ends.
struct Registration {
    signal: Arc<ShutdownSignal>,
    key: u64,
    /// The waker last stored in the table (to skip storing an equal one again).
    waker: Option<Waker>,
}

impl Registration {
    /// Makes sure the signal wakes `waker`'s task; `true` when the signal has fired.
    fn register(&mut self, waker: &Waker) -> bool {
        if self.signal.fired() {
            return true;
        }
        if self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return false;
        }
        self.signal
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.key, waker.clone());
        self.waker = Some(waker.clone());
        // Fired between the check above and the insert: `fire` may have taken the table
        // before this waker was in it.
        self.signal.fired()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.waker.is_some() {
            self.signal
                .wakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&self.key);
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection watched by a [`ShutdownSignal`].
    pub(crate) struct Watched<C> {
        #[pin]
        conn: C,
        registration: Registration,
        shutting_down: bool,
    }
}

impl<C: Graceful> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.shutting_down && this.registration.register(cx.waker()) {
            *this.shutting_down = true;
            this.conn.as_mut().graceful_shutdown();
        }
        this.conn.poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// Work that serves no request yet, such as waiting for a connection's first bytes:
    /// watched by the signal, it is abandoned at shutdown (and yields `None`).
    pub(crate) struct UntilShutdown<F> {
        #[pin]
        fut: F,
        stopped: bool,
    }
}

impl<F> UntilShutdown<F> {
    pub(crate) fn new(fut: F) -> Self {
        Self {
            fut,
            stopped: false,
        }
    }
}

impl<F: Future> Future for UntilShutdown<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if *this.stopped {
            return Poll::Ready(None);
        }
        this.fut.poll(cx).map(Some)
    }
}

impl<F: Future> Graceful for UntilShutdown<F> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        *self.project().stopped = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in connection: pending until told to shut down, then done.
    struct Conn {
        shut: Arc<AtomicBool>,
    }

    impl Future for Conn {
        type Output = Result<(), std::io::Error>;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
            if self.shut.load(Ordering::SeqCst) {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }
    }

    impl Graceful for Conn {
        fn graceful_shutdown(self: Pin<&mut Self>) {
            self.shut.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn firing_wakes_and_shuts_down_every_watched_connection() {
        let signal = ShutdownSignal::new();
        let shut: Vec<_> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
        let tasks: Vec<_> = shut
            .iter()
            .map(|s| tokio::spawn(signal.watch(Conn { shut: s.clone() })))
            .collect();
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(shut.iter().all(|s| !s.load(Ordering::SeqCst)));
        signal.fire();
        for t in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(5), t)
                .await
                .expect("woken by the signal")
                .expect("task")
                .expect("conn");
        }
        assert!(shut.iter().all(|s| s.load(Ordering::SeqCst)));
        assert!(signal.wakers.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_connection_watched_after_the_signal_shuts_down_at_once() {
        let signal = ShutdownSignal::new();
        signal.fire();
        let shut = Arc::new(AtomicBool::new(false));
        signal
            .watch(Conn { shut: shut.clone() })
            .await
            .expect("conn");
        assert!(shut.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn work_until_shutdown_is_abandoned_when_the_signal_fires() {
        let signal = ShutdownSignal::new();
        let waiting = tokio::spawn(signal.watch(UntilShutdown::new(std::future::pending::<()>())));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        signal.fire();
        let out = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken by the signal")
            .expect("task");
        assert_eq!(out, None);
        // Work that finishes first gives its output.
        let done = ShutdownSignal::new()
            .watch(UntilShutdown::new(async { 7 }))
            .await;
        assert_eq!(done, Some(7));
    }

    #[tokio::test]
    async fn finished_connections_leave_the_table() {
        let signal = ShutdownSignal::new();
        let shut = Arc::new(AtomicBool::new(false));
        let mut watched = Box::pin(signal.watch(Conn { shut: shut.clone() }));
        let polled = futures::poll!(watched.as_mut());
        assert!(polled.is_pending());
        assert_eq!(signal.wakers.lock().unwrap().len(), 1);
        drop(watched);
        assert!(signal.wakers.lock().unwrap().is_empty());
    }
}
