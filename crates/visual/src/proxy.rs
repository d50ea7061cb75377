//! The per-capture SOCKS5 egress proxy (see [`crate::egress`] for why it exists).
//!
//! Written by hand because what is needed is small and exact: the no-authentication
//! `CONNECT` subset of RFC 1928 that Chromium speaks, with the destination vetted by the
//! egress policy *and pinned* (the proxy dials the very address it checked). General SOCKS
//! crates bring client code, authentication and UDP that would only widen the surface.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::egress::EgressCheck;
use crate::network::{BlockedRequest, MAX_BLOCKED};

/// Time allowed for the SOCKS handshake and for connecting to the destination.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A SOCKS5 proxy on 127.0.0.1 that lives as long as one capture.
pub(crate) struct EgressProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
    blocked: Arc<Mutex<Vec<BlockedRequest>>>,
    unreachable: Arc<Mutex<Vec<(String, String)>>>,
}

impl EgressProxy {
    pub(crate) async fn start(egress: Arc<dyn EgressCheck>) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let blocked = Arc::new(Mutex::new(Vec::new()));
        let unreachable = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&blocked);
        let failures = Arc::clone(&unreachable);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let egress = Arc::clone(&egress);
                        let sink = Arc::clone(&sink);
                        let failures = Arc::clone(&failures);
                        connections.spawn(async move {
                            if let Err(e) = serve(stream, egress.as_ref(), &sink, &failures).await {
                                tracing::debug!(error = %e, "egress proxy connection ended");
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self {
            addr,
            task,
            blocked,
            unreachable,
        })
    }

    /// The proxy URL for `Target.createBrowserContext`.
    pub(crate) fn url(&self) -> String {
        format!("socks5://{}", self.addr)
    }

    /// Connections refused so far.
    pub(crate) fn blocked(&self) -> Vec<BlockedRequest> {
        self.blocked.lock().clone()
    }

    /// Why the proxy could not connect to `host:port` (allowed but unreachable), if it tried.
    /// Chromium only learns "SOCKS connection failed"; this is the real cause.
    pub(crate) fn connect_error(&self, host_port: &str) -> Option<String> {
        self.unreachable
            .lock()
            .iter()
            .find(|(hp, _)| hp == host_port)
            .map(|(_, e)| e.clone())
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its `JoinSet`, which aborts every tunnel.
        self.task.abort();
    }
}

#[derive(Debug, thiserror::Error)]
enum ProxyError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake timed out")]
    Timeout,
    #[error("not SOCKS5 or unsupported request: {0}")]
    Protocol(&'static str),
}

// RFC 1928 reply codes.
const REPLY_OK: u8 = 0x00;
const REPLY_NOT_ALLOWED: u8 = 0x02;
const REPLY_HOST_UNREACHABLE: u8 = 0x04;
const REPLY_COMMAND_NOT_SUPPORTED: u8 = 0x07;
const REPLY_ADDRESS_NOT_SUPPORTED: u8 = 0x08;

async fn serve(
    mut client: TcpStream,
    egress: &dyn EgressCheck,
    blocked: &Mutex<Vec<BlockedRequest>>,
    unreachable: &Mutex<Vec<(String, String)>>,
) -> Result<(), ProxyError> {
    let target = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut client))
        .await
        .map_err(|_| ProxyError::Timeout)??;
    let Some((host, port)) = target else {
        return Ok(());
    };
    let addrs = match egress.resolve(&host, port).await {
        Ok(addrs) => addrs,
        Err(denied) => {
            tracing::info!(host, port, reason = %denied, "connection blocked by the egress policy");
            {
                let mut list = blocked.lock();
                if list.len() < MAX_BLOCKED {
                    list.push(BlockedRequest {
                        url: format!("{}:{port}", bracket(&host)),
                        reason: denied.reason,
                    });
                }
            }
            reply(&mut client, REPLY_NOT_ALLOWED).await?;
            return Ok(());
        }
    };
    let mut upstream = None;
    let mut last_error = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                upstream = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = "connection timed out".to_owned(),
        }
    }
    let Some(mut upstream) = upstream else {
        {
            let mut list = unreachable.lock();
            if list.len() < MAX_BLOCKED {
                list.push((format!("{}:{port}", bracket(&host)), last_error));
            }
        }
        reply(&mut client, REPLY_HOST_UNREACHABLE).await?;
        return Ok(());
    };
    reply(&mut client, REPLY_OK).await?;
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Method negotiation and the CONNECT request; `None` when the request was answered with an
/// error already.
async fn handshake(client: &mut TcpStream) -> Result<Option<(String, u16)>, ProxyError> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    if head[0] != 5 {
        return Err(ProxyError::Protocol("not SOCKS5"));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        client.write_all(&[5, 0xff]).await?;
        return Err(ProxyError::Protocol("no acceptable authentication method"));
    }
    client.write_all(&[5, 0]).await?;

    let mut req = [0u8; 4];
    client.read_exact(&mut req).await?;
    if req[0] != 5 {
        return Err(ProxyError::Protocol("bad request version"));
    }
    let host = match req[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            IpAddr::V4(Ipv4Addr::from(ip)).to_string()
        }
        3 => {
            let len = client.read_u8().await?;
            let mut name = vec![0u8; usize::from(len)];
            client.read_exact(&mut name).await?;
            match String::from_utf8(name) {
                Ok(n) => n,
                Err(_) => {
                    reply(client, REPLY_ADDRESS_NOT_SUPPORTED).await?;
                    return Ok(None);
                }
            }
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            IpAddr::V6(Ipv6Addr::from(ip)).to_string()
        }
        _ => {
            reply(client, REPLY_ADDRESS_NOT_SUPPORTED).await?;
            return Ok(None);
        }
    };
    let port = client.read_u16().await?;
    if req[1] != 1 {
        // Only CONNECT: no BIND, no UDP ASSOCIATE.
        reply(client, REPLY_COMMAND_NOT_SUPPORTED).await?;
        return Ok(None);
    }
    Ok(Some((host, port)))
}

async fn reply(client: &mut TcpStream, code: u8) -> std::io::Result<()> {
    client.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_netguard::{EgressPolicy, Guard, StaticResolver};

    async fn proxy() -> EgressProxy {
        let guard = Guard::new(
            EgressPolicy::new().allow("127.0.0.1/32".parse().unwrap()),
            Arc::new(StaticResolver::new().with("ok.test", ["127.0.0.1".parse().unwrap()])),
        );
        EgressProxy::start(Arc::new(guard)).await.unwrap()
    }

    /// A SOCKS5 CONNECT by hand; returns the reply code.
    async fn connect(p: &EgressProxy, atyp: u8, addr: &[u8], port: u16) -> (u8, TcpStream) {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(&[5, 1, 0]).await.unwrap();
        let mut m = [0u8; 2];
        s.read_exact(&mut m).await.unwrap();
        assert_eq!(m, [5, 0]);
        let mut req = vec![5, 1, 0, atyp];
        req.extend_from_slice(addr);
        req.extend_from_slice(&port.to_be_bytes());
        s.write_all(&req).await.unwrap();
        let mut r = [0u8; 10];
        s.read_exact(&mut r).await.unwrap();
        (r[1], s)
    }

    #[tokio::test]
    async fn tunnels_to_allowed_and_refuses_other_destinations() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(&buf).await;
                    }
                });
            }
        });
        let p = proxy().await;

        let (code, mut s) = connect(&p, 1, &[127, 0, 0, 1], port).await;
        assert_eq!(code, REPLY_OK);
        s.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping");

        let name = b"ok.test";
        let mut dom = vec![name.len() as u8];
        dom.extend_from_slice(name);
        assert_eq!(connect(&p, 3, &dom, port).await.0, REPLY_OK);

        // 127.0.0.2 is loopback but outside the policy: refused before any connection.
        assert_eq!(
            connect(&p, 1, &[127, 0, 0, 2], port).await.0,
            REPLY_NOT_ALLOWED
        );
        assert_eq!(
            connect(&p, 4, &Ipv6Addr::LOCALHOST.octets(), port).await.0,
            REPLY_NOT_ALLOWED
        );
        let unknown = b"\x0cunknown.test";
        assert_eq!(connect(&p, 3, unknown, port).await.0, REPLY_NOT_ALLOWED);
        let blocked = p.blocked();
        assert_eq!(blocked.len(), 3);
        assert_eq!(blocked[0].url, format!("127.0.0.2:{port}"));
        assert_eq!(blocked[1].url, format!("[::1]:{port}"));
    }
}
