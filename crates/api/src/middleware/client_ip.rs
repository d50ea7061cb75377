//! The client's IP address: the TCP peer, or — only when the peer is a trusted proxy — the
//! nearest untrusted address in `X-Forwarded-For`. Anyone can send that header; believing it
//! from an untrusted peer would let a client pick its own rate-limit bucket or claim an
//! allow-listed address.

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Parsed once: a `&str` name is parsed and validated again on every lookup.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client IP of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientIp(pub IpAddr);

/// Works out the client IP (see the module docs). `None` only when the connection's peer
/// address is unknown (requests not from our listener, e.g. in-process tests).
pub(crate) fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<ClientIp> {
    let peer = peer?.ip();
    let peer = canonical(peer);
    if trusted.is_empty() || !trusted.iter().any(|n| n.contains(&peer)) {
        return Some(ClientIp(peer));
    }
    // Walk X-Forwarded-For from the right (the hop nearest to us): the first address that is
    // not one of our proxies is the client.
    let mut client = peer;
    for value in headers.get_all(&X_FORWARDED_FOR) {
        let Ok(s) = value.to_str() else {
            return Some(ClientIp(peer));
        };
        for part in s.split(',').rev() {
            match part.trim().parse::<IpAddr>().map(canonical) {
                Ok(ip) if trusted.iter().any(|n| n.contains(&ip)) => client = ip,
                Ok(ip) => return Some(ClientIp(ip)),
                Err(_) => return Some(ClientIp(client)),
            }
        }
    }
    Some(ClientIp(client))
}

/// IPv4-mapped IPv6 peers (dual-stack sockets) are compared as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(peer: &str, xff: Option<&str>) -> (Option<SocketAddr>, HeaderMap) {
        let mut h = HeaderMap::new();
        if let Some(x) = xff {
            h.insert("x-forwarded-for", x.parse().unwrap());
        }
        (Some(peer.parse::<SocketAddr>().unwrap()), h)
    }

    #[test]
    fn forwarded_header_is_ignored_from_untrusted_peers() {
        let r = req("203.0.113.9:5000", Some("10.0.0.1"));
        assert_eq!(
            client_ip(r.0, &r.1, &[]),
            Some(ClientIp("203.0.113.9".parse().unwrap()))
        );
        let trusted: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        assert_eq!(
            client_ip(r.0, &r.1, &trusted),
            Some(ClientIp("203.0.113.9".parse().unwrap()))
        );
    }

    #[test]
    fn trusted_proxy_chain_yields_first_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        let r = req("192.0.2.1:5000", Some("10.9.9.9, 198.51.100.7, 192.0.2.5"));
        assert_eq!(
            client_ip(r.0, &r.1, &trusted),
            Some(ClientIp("198.51.100.7".parse().unwrap()))
        );
        let r = req("192.0.2.1:5000", None);
        assert_eq!(
            client_ip(r.0, &r.1, &trusted),
            Some(ClientIp("192.0.2.1".parse().unwrap()))
        );
        let r = req("[::ffff:192.0.2.1]:5000", Some("198.51.100.7"));
        assert_eq!(
            client_ip(r.0, &r.1, &trusted),
            Some(ClientIp("198.51.100.7".parse().unwrap()))
        );
    }
}
