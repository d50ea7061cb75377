//! The HTTP server: accept loop, TLS, HTTP/1.1 and HTTP/2 (h2c prior knowledge, and ALPN on
//! TLS), connection limits and deadlines, graceful shutdown.
//!
//! Hand-driven rather than `axum::serve` because that cannot set hyper's timers, HTTP/2
//! limits, a connection cap, TLS, or our idle/header deadlines ([`timed_io`]).

mod graceful;
mod timed_io;

use crate::front::{Answer, App};
use axum::response::Response;
use futures::future::Either;
use graceful::{ShutdownSignal, UntilShutdown};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::{Future, Ready};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use timed_io::{ConnActivity, InFlight, TimedIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Server tuning (from `Settings::http` and the TLS files).
#[derive(Clone)]
pub struct ServerConfig {
    /// TLS; `None` serves plain HTTP (HTTP/1.1 and h2c).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Idle keep-alive deadline.
    pub keep_alive: Duration,
    /// Header read deadline.
    pub header_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// HTTP/2 concurrent streams per connection.
    pub http2_max_streams: u32,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// From the settings (reads the TLS files if configured).
    pub fn from_settings(s: &sentinel_config::Settings) -> Result<Self, TlsError> {
        let tls = match (&s.tls_cert, &s.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(load_tls(cert, key)?)),
            _ => None,
        };
        Ok(Self {
            tls,
            keep_alive: Duration::from_secs(s.http.keep_alive_secs),
            header_timeout: Duration::from_secs(s.http.header_timeout_secs),
            max_connections: s.http.max_connections,
            http2_max_streams: s.http.http2_max_streams,
            shutdown_grace: Duration::from_secs(s.http.shutdown_grace_secs),
        })
    }
}

/// A TLS configuration problem.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

/// Reads a PEM certificate chain and private key; offers HTTP/2 and HTTP/1.1 by ALPN.
pub fn load_tls(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| TlsError(format!("reading {}: {e}", p.display())));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("parsing {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!("no certificate in {}", cert.display())));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError(format!("parsing {}: {e}", key.display())))?
        .ok_or_else(|| TlsError(format!("no private key in {}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The HTTP/1.1 and HTTP/2 connection settings, built once.
struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new(config: &ServerConfig) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .keep_alive(true)
            // Our TimedIo enforces header and idle deadlines (see timed_io); hyper's own timer
            // would cut idle keep-alive connections at the header deadline.
            .header_read_timeout(None)
            .max_buf_size(64 * 1024);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(config.http2_max_streams)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_header_list_size(64 * 1024);
        Self {
            http1: h1,
            http2: h2,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops accepting and lets
/// in-flight requests finish (at most `shutdown_grace`).
pub async fn serve(
    listener: TcpListener,
    app: App,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> io::Result<()> {
    // Shared by every connection and request.
    let app = Arc::new(app);
    let protocols = Arc::new(Protocols::new(&config));
    let acceptor = config.tls.clone().map(TlsAcceptor::from);
    let signal = ShutdownSignal::new();
    // At most u32::MAX, so that shutdown can wait for every slot with one `acquire_many`.
    let max_connections = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(max_connections as usize));
    info!(addr = %listener.local_addr()?, tls = acceptor.is_some(), "listening");
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            opened: tokio::time::Instant::now(),
            peer,
            app: app.clone(),
            protocols: protocols.clone(),
            signal: Arc::clone(&signal),
            config: config.clone(),
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            metrics::gauge!("active_connections").increment(1.0);
            let result = match acceptor {
                None => conn.serve_plain(stream).await,
                Some(acceptor) => conn.serve_tls(stream, acceptor).await,
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            metrics::gauge!("active_connections").decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    info!("shutting down: waiting for in-flight requests");
    signal.fire();
    // Every connection holds a slot until it has closed.
    if tokio::time::timeout(config.shutdown_grace, slots.acquire_many(max_connections))
        .await
        .is_err()
    {
        warn!("grace period over; closing remaining connections");
    }
    Ok(())
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("no request within the header deadline")]
    Silent,
    #[error("TLS handshake timed out")]
    TlsTimeout,
}

/// One accepted connection and what serving it needs.
struct Connection {
    /// When it was accepted: the first request's header deadline runs from here (through
    /// the protocol sniffing or the TLS handshake).
    opened: tokio::time::Instant,
    peer: SocketAddr,
    app: Arc<App>,
    protocols: Arc<Protocols>,
    signal: Arc<ShutdownSignal>,
    config: ServerConfig,
}

impl Connection {
    /// Plain TCP: HTTP/1.1, or HTTP/2 when the client opens with the HTTP/2 preface.
    async fn serve_plain(self, stream: TcpStream) -> Result<(), ConnError> {
        let sniffing = self.signal.watch(UntilShutdown::new(speaks_h2(&stream)));
        let h2 = match tokio::time::timeout(self.config.header_timeout, sniffing).await {
            Ok(Some(Ok(Some(h2)))) => h2,
            // Closed before sending a request, or still silent at shutdown.
            Ok(Some(Ok(None)) | None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(e.into()),
            Err(_) => return Err(ConnError::Silent),
        };
        self.serve(stream, h2).await
    }

    /// TLS: the protocol is the one agreed by ALPN (HTTP/1.1 when none was).
    async fn serve_tls(self, stream: TcpStream, acceptor: TlsAcceptor) -> Result<(), ConnError> {
        let tls = tokio::time::timeout(self.config.header_timeout, acceptor.accept(stream))
            .await
            .map_err(|_| ConnError::TlsTimeout)??;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        self.serve(tls, h2).await
    }

    async fn serve<T>(self, stream: T, h2: bool) -> Result<(), ConnError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = ConnActivity::new();
        let io = TokioIo::new(TimedIo::new(
            stream,
            Arc::clone(&activity),
            self.config.keep_alive,
            self.config.header_timeout,
            h2,
            self.opened,
        ));
        let service = Service {
            app: self.app,
            peer: self.peer,
            activity,
        };
        let served = if h2 {
            let conn = self.protocols.http2.serve_connection(io, service);
            self.signal.watch(conn).await
        } else {
            let conn = self.protocols.http1.serve_connection(io, service);
            self.signal.watch(conn).await
        };
        Ok(served?)
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain connection speaks HTTP/2 with prior knowledge (`None`: it closed before
/// sending a byte). Decided on the connection's first bytes, peeked rather than read so that
/// hyper reads them itself: hyper-util's `auto` builder reads them and then wraps the stream
/// in a replaying reader that every later read of the connection passes through.
///
/// The method `PRI` is reserved for the preface (RFC 9113 §3.4), so its three letters decide:
/// an HTTP/1 request differs from them at its first or second byte and is recognised in the
/// first peek. Only a client that has sent just `P` or `PR` makes this wait: peeking again
/// would return the same bytes at once, so it waits between peeks, longer each time, within
/// the caller's header deadline.
async fn speaks_h2(stream: &TcpStream) -> io::Result<Option<bool>> {
    const METHOD: usize = 3;
    let mut buf = [0u8; METHOD];
    let mut pause = Duration::from_millis(1);
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if !H2_PREFACE.starts_with(&buf[..n]) {
            return Ok(Some(false));
        }
        if n == METHOD {
            return Ok(Some(true));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The hyper service of one connection: the front's answer, and the connection's activity
/// for its deadlines.
struct Service {
    app: Arc<App>,
    peer: SocketAddr,
    activity: Arc<ConnActivity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, Later>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        match self.app.answer(req, Some(self.peer)) {
            Answer::Now(res) => {
                self.activity.request_answered();
                Either::Left(std::future::ready(Ok(res)))
            }
            Answer::Later(answer) => {
                self.activity.request_started();
                Either::Right(Later {
                    answer,
                    _in_flight: InFlight(Arc::clone(&self.activity)),
                })
            }
        }
    }
}

/// A request answered by a future, counted in flight on its connection until it is done
/// or dropped.
struct Later {
    answer: Pin<Box<dyn Future<Output = Response> + Send>>,
    _in_flight: InFlight,
}

impl Future for Later {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.answer.as_mut().poll(cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// What `speaks_h2` decides for a client that writes `parts` (pausing between them) and
    /// then waits.
    async fn sniffed(parts: &[&'static [u8]]) -> io::Result<Option<bool>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let parts = parts.to_vec();
        let parts_were_empty = parts.is_empty();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await?;
            for p in parts {
                s.write_all(p).await?;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            if !parts_were_empty {
                // Hold the connection open until the server has decided (or given up).
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            io::Result::Ok(())
        });
        let (server, _) = listener.accept().await?;
        let decided = tokio::time::timeout(Duration::from_secs(1), speaks_h2(&server))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "undecided"))?;
        client.abort();
        decided
    }

    #[tokio::test]
    async fn http1_requests_are_recognised_on_their_first_bytes() {
        for parts in [
            &[&b"GET / HTTP/1.1\r\n"[..]][..],
            &[b"POST"],
            &[b"PUT /x"],
            &[b"PATCH"],
            &[b"PRO"],
            &[b"P", b"OST /"],
            &[b"PR", b"OPFIND"],
        ] {
            assert_eq!(sniffed(parts).await.unwrap(), Some(false), "{parts:?}");
        }
    }

    #[tokio::test]
    async fn the_http2_preface_is_recognised_whole_or_in_pieces() {
        for parts in [
            &[H2_PREFACE][..],
            &[&H2_PREFACE[..1], &H2_PREFACE[1..2], &H2_PREFACE[2..]],
            &[&H2_PREFACE[..2], &H2_PREFACE[2..9]],
        ] {
            assert_eq!(sniffed(parts).await.unwrap(), Some(true), "{parts:?}");
        }
    }

    #[tokio::test]
    async fn a_connection_closed_before_its_first_byte_is_none() {
        assert_eq!(sniffed(&[]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_bare_prefix_of_the_preface_waits_for_more() {
        // The client sends `PR` and nothing more: undecided (the caller's deadline ends it).
        assert!(sniffed(&[b"PR"]).await.is_err());
    }
}
