//! The HTTP server: accept loop, TLS, HTTP/1.1 and HTTP/2 (h2c prior knowledge, and ALPN on
//! TLS), connection limits and deadlines, graceful shutdown.
//!
//! Hand-driven rather than `axum::serve` because that cannot set hyper's timers, HTTP/2
//! limits, a connection cap, TLS, or our idle/header deadlines ([`timed_io`]).

mod graceful;
mod timed_io;

use crate::front::{Answer, App};
use futures::future::Either;
use graceful::ShutdownSignal;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use timed_io::{ConnActivity, InFlight, TimedIo};
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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // Our TimedIo enforces header and idle deadlines (see timed_io); hyper's own timer
        // would cut idle keep-alive connections at the header deadline.
        .header_read_timeout(None)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_header_list_size(64 * 1024);
    let builder = Arc::new(builder);
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
        let conn_fut = connection(
            stream,
            peer,
            app.clone(),
            builder.clone(),
            acceptor.clone(),
            config.clone(),
        );
        let signal = Arc::clone(&signal);
        tokio::spawn(async move {
            metrics::gauge!("active_connections").increment(1.0);
            conn_fut(signal).await;
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

fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    acceptor: Option<TlsAcceptor>,
    config: ServerConfig,
) -> impl FnOnce(Arc<ShutdownSignal>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    move |signal| {
        Box::pin(async move {
            let activity = ConnActivity::new();
            let svc_activity = activity.clone();
            let service =
                hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    match app.answer(req, Some(peer)) {
                        Answer::Now(res) => {
                            svc_activity.request_answered();
                            Either::Left(std::future::ready(Ok(res)))
                        }
                        Answer::Later(fut) => {
                            svc_activity.request_started();
                            let guard = InFlight(svc_activity.clone());
                            Either::Right(async move {
                                let res = fut.await;
                                drop(guard);
                                Ok::<_, std::convert::Infallible>(res)
                            })
                        }
                    }
                });
            let result = match acceptor {
                None => {
                    let io =
                        TimedIo::new(stream, activity, config.keep_alive, config.header_timeout);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    signal.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(config.header_timeout, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let io = TimedIo::new(tls, activity, config.keep_alive, config.header_timeout);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    signal.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        })
    }
}
