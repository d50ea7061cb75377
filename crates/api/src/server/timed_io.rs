//! Connection deadlines: a keep-alive connection may sit idle for `idle` (65 s) between
//! requests, but once a request has started arriving its headers must be complete within
//! `header` (10 s).
//!
//! hyper has one knob, `header_read_timeout`, whose timer starts when the connection becomes
//! idle, so it is both the idle and the header deadline: 65 s lets a slow-loris client hold a
//! connection for 65 s per request, 10 s cuts idle keep-alive connections after 10 s. This
//! wrapper tells the two phases apart: bytes that arrive while no request is in flight start
//! the header phase; the service marks when a request has been dispatched and answered.
//! For HTTP/2 only the idle rule applies: control frames such as PING arrive between requests
//! and are not request headers.

use futures::task::AtomicWaker;
use sentinel_cache::coarse_now_ms;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Shared between a connection's IO and its service: requests started, in flight, and when
/// the last one finished.
#[derive(Debug)]
pub(crate) struct ConnActivity {
    started: AtomicU64,
    in_flight: AtomicU32,
    /// Milliseconds since `epoch` when the last request finished, on the coarse clock.
    last_done_ms: AtomicU64,
    epoch: Instant,
    /// `epoch` on the coarse clock ([`coarse_now_ms`]).
    epoch_coarse_ms: u64,
    /// The reader parked while a request was in flight: woken when it finishes, so that the
    /// idle deadline gets armed (otherwise nothing would poll the read side again until the
    /// client sends something).
    reader: AtomicWaker,
}

impl ConnActivity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            started: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            last_done_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            epoch_coarse_ms: coarse_now_ms(),
            reader: AtomicWaker::new(),
        })
    }

    /// A request's headers were parsed and it was handed to the application.
    pub(crate) fn request_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// A request was answered as soon as it was dispatched (no request future).
    pub(crate) fn request_answered(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.stamp_done();
    }

    /// A request was answered.
    pub(crate) fn request_finished(&self) {
        self.stamp_done();
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.reader.wake();
        }
    }

    /// Notes when the last request finished. The time is read from the coarse clock (a tick or
    /// so late at worst), which costs a memory read instead of a clock-source read per request:
    /// the idle deadline it starts is a minute long.
    fn stamp_done(&self) {
        let ms = coarse_now_ms().saturating_sub(self.epoch_coarse_ms);
        self.last_done_ms.store(ms, Ordering::Relaxed);
    }

    fn last_done(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_done_ms.load(Ordering::Relaxed))
    }
}

/// Decrements the in-flight count when dropped (also when a request future is cancelled).
pub(crate) struct InFlight(pub Arc<ConnActivity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// An IO stream with the deadlines described in the module docs.
pub(crate) struct TimedIo<T> {
    inner: T,
    sleep: Pin<Box<Sleep>>,
    activity: Arc<ConnActivity>,
    idle: Duration,
    header: Duration,
    head_started: Option<Instant>,
    /// Bytes of a new head arrived and `head_started` is not set yet: it is read from the
    /// clock only if the head is still incomplete when the socket runs dry, which a request
    /// that arrives in one read never is.
    head_pending: bool,
    seen_started: u64,
    /// The waker `sleep` was last polled with, cleared when it is re-armed: while the task's
    /// waker stays the same, the armed timer will wake it and need not be polled again
    /// (callgrind, W0: ~100 instructions per request).
    sleep_waker: Option<Waker>,
    h2: bool,
}

impl<T> TimedIo<T> {
    pub(crate) fn new(
        inner: T,
        activity: Arc<ConnActivity>,
        idle: Duration,
        header: Duration,
        h2: bool,
        opened: Instant,
    ) -> Self {
        Self {
            inner,
            // Until the first request, the client has `header` to send one (HTTP/2: `idle`).
            sleep: Box::pin(tokio::time::sleep_until(
                opened + if h2 { idle } else { header },
            )),
            activity,
            idle,
            header,
            head_started: (!h2).then_some(opened),
            head_pending: false,
            seen_started: 0,
            sleep_waker: None,
            h2,
        }
    }

    /// A request was dispatched since the last look: its head is complete.
    fn note_dispatched(&mut self) {
        let started = self.activity.started.load(Ordering::Relaxed);
        if started != self.seen_started {
            self.seen_started = started;
            self.head_started = None;
            self.head_pending = false;
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("connection {what} timeout"),
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if !got.is_empty() {
                    this.note_dispatched();
                    if !this.h2
                        && this.head_started.is_none()
                        && this.activity.in_flight.load(Ordering::Acquire) == 0
                    {
                        this.head_pending = true;
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                this.note_dispatched();
                if this.activity.in_flight.load(Ordering::Acquire) > 0 {
                    // A handler is working; reading more is not the client's obligation now.
                    this.activity.reader.register(cx.waker());
                    if this.activity.in_flight.load(Ordering::Acquire) > 0 {
                        return Poll::Pending;
                    }
                }
                if std::mem::take(&mut this.head_pending) {
                    this.head_started = Some(Instant::now());
                }
                // The idle clock starts when the last request finished (at first: when the
                // connection opened).
                let (deadline, phase) = match this.head_started {
                    Some(t) => (t + this.header, "header read"),
                    None => (this.activity.last_done() + this.idle, "idle"),
                };
                // Re-arm only when the deadline moved earlier, or when the armed timer has
                // fired: no timer work and no clock read on the per-request path. A deadline
                // already past fires at once when armed and is checked below.
                if deadline < this.sleep.deadline() || this.sleep.is_elapsed() {
                    this.sleep.as_mut().reset(deadline);
                    this.sleep_waker = None;
                } else if this
                    .sleep_waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    return Poll::Pending;
                }
                this.sleep_waker = Some(cx.waker().clone());
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        if Instant::now() >= deadline {
                            Poll::Ready(Err(timed_out(phase)))
                        } else {
                            this.sleep.as_mut().reset(deadline);
                            let _ = this.sleep.as_mut().poll(cx);
                            Poll::Pending
                        }
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
