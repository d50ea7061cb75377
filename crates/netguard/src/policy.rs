//! The egress policy: which destination addresses a scanner may connect to.
//!
//! The decision is a pure function of the *parsed or resolved* [`IpAddr`]. Deciding on the
//! text of a URL is the classic SSRF mistake: the WHATWG URL parser already turns `0x7f.1`,
//! `2130706433`, `0177.0.0.1`, `127.1` and full-width Unicode digits into `127.0.0.1`, and a
//! host name can resolve to anything. So every caller hands us the address it is about to
//! connect to, after parsing and after DNS, and nothing else.
//!
//! By default every special-purpose address is refused: loopback, RFC 1918 and unique-local
//! private ranges, link-local, shared (CGNAT) space, cloud metadata endpoints, multicast,
//! broadcast, unspecified, documentation and benchmarking ranges, the other IANA
//! special-purpose blocks, and IPv6 outside global unicast (`2000::/3`). IPv6 forms that embed
//! an IPv4 address (IPv4-mapped, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo) are decided
//! on the embedded address; deprecated IPv4-compatible addresses (`::a.b.c.d`) are refused.
//!
//! An allow-list of CIDRs opens specific ranges (the service sets it from
//! `SENTINEL_SCAN_ALLOW`, the CLI's `--allow-private` adds the private and loopback ranges).
//! Cloud metadata addresses are the exception: they stay refused even inside an allowed
//! range (`--allow-private` opens `fc00::/7`, which holds AWS's `fd00:ec2::254`) and open only
//! when the allow-list names the exact address (`169.254.169.254/32`).

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why an address is refused: which kind of special-purpose address it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `0.0.0.0/8`, `::`: "this host/network", never a real destination.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// IPv6 unique-local addresses, `fc00::/7`.
    UniqueLocal,
    /// Shared address space (carrier-grade NAT), `100.64.0.0/10`.
    SharedAddressSpace,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// A cloud provider's instance metadata endpoint (AWS, GCP, Azure, Oracle, Alibaba, ECS/EKS).
    CloudMetadata,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Any other IANA special-purpose or reserved block (`240.0.0.0/4`, `192.0.0.0/24`,
    /// `2001::/23`, site-local, IPv4-compatible IPv6, IPv6 outside `2000::/3`, …).
    Reserved,
}

impl Reason {
    /// A short description for messages (`"a loopback address"`).
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private (RFC 1918) address",
            Self::UniqueLocal => "a unique-local (private) IPv6 address",
            Self::SharedAddressSpace => "a shared (carrier-grade NAT) address",
            Self::LinkLocal => "a link-local address",
            Self::CloudMetadata => "a cloud metadata endpoint",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Reserved => "a reserved special-purpose address",
        }
    }
}

/// An address the policy refuses, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Denied {
    /// The address that was going to be connected to.
    pub addr: IpAddr,
    /// What kind of special address it is (or embeds).
    pub reason: Reason,
    /// The IPv4 address embedded in an IPv6 form, when that is what was refused.
    pub embedded: Option<Ipv4Addr>,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some(v4) => write!(
                f,
                "{} embeds {v4}, {}, which the egress policy refuses",
                self.addr,
                self.reason.describe()
            ),
            None => write!(
                f,
                "{} is {}, which the egress policy refuses",
                self.addr,
                self.reason.describe()
            ),
        }
    }
}

/// Metadata endpoints, refused even inside an allowed range (see the module docs).
const METADATA_V4: [Ipv4Addr; 5] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, DigitalOcean, OpenStack
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata
    Ipv4Addr::new(169, 254, 170, 23),  // AWS EKS pod identity
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud
];
const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254), // AWS IMDS over IPv6
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023), // AWS EKS pod identity over IPv6
];

/// The special-purpose kind of an IPv4 address, `None` for ordinary global unicast.
#[must_use]
pub fn classify_v4(ip: Ipv4Addr) -> Option<Reason> {
    if METADATA_V4.contains(&ip) {
        return Some(Reason::CloudMetadata);
    }
    let reason = match ip.octets() {
        [0, ..] => Reason::Unspecified,
        [10, ..] | [192, 168, ..] => Reason::Private,
        [172, b, ..] if (16..=31).contains(&b) => Reason::Private,
        [100, b, ..] if (64..=127).contains(&b) => Reason::SharedAddressSpace,
        [127, ..] => Reason::Loopback,
        [169, 254, ..] => Reason::LinkLocal,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Reason::Documentation,
        [198, 18 | 19, ..] => Reason::Benchmarking,
        // IETF protocol assignments (192.0.0.0/24) and the deprecated 6to4 relay anycast.
        [192, 0, 0, _] | [192, 88, 99, _] => Reason::Reserved,
        [255, 255, 255, 255] => Reason::Broadcast,
        [224..=239, ..] => Reason::Multicast,
        [240..=255, ..] => Reason::Reserved,
        _ => return None,
    };
    Some(reason)
}

/// How an IPv6 address relates to the policy before any allow-list is consulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V6Class {
    /// Ordinary global unicast.
    Global,
    /// Special in itself.
    Special(Reason),
    /// Decided by the IPv4 address(es) it embeds (Teredo carries two: server and client).
    Embedded(Ipv4Addr, Option<Ipv4Addr>),
    /// Deprecated IPv4-compatible form `::a.b.c.d`: refused whatever it embeds.
    Compatible(Ipv4Addr),
}

fn v4_of(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

fn classify_v6(ip: Ipv6Addr) -> V6Class {
    if METADATA_V6.contains(&ip) {
        return V6Class::Special(Reason::CloudMetadata);
    }
    if ip.is_unspecified() {
        return V6Class::Special(Reason::Unspecified);
    }
    if ip.is_loopback() {
        return V6Class::Special(Reason::Loopback);
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return V6Class::Embedded(v4, None);
    }
    let s = ip.segments();
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] => V6Class::Compatible(v4_of(hi, lo)),
        // NAT64 well-known prefix (RFC 6052): the gateway connects to the embedded address.
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => V6Class::Embedded(v4_of(hi, lo), None),
        // 6to4: 2002:AABB:CCDD::/48 routes to AA.BB.CC.DD.
        [0x2002, hi, lo, ..] => V6Class::Embedded(v4_of(hi, lo), None),
        // Teredo: server address in clear, client address bit-inverted in the last 32 bits.
        [0x2001, 0x0000, shi, slo, _, _, chi, clo] => {
            V6Class::Embedded(v4_of(shi, slo), Some(v4_of(!chi, !clo)))
        }
        [0x2001, 0x0db8, ..] => V6Class::Special(Reason::Documentation),
        [0x2001, 0x0002, 0, ..] => V6Class::Special(Reason::Benchmarking),
        // The rest of the IETF protocol assignments block 2001::/23.
        [0x2001, b, ..] if b < 0x0200 => V6Class::Special(Reason::Reserved),
        [0x3fff, b, ..] if b < 0x1000 => V6Class::Special(Reason::Documentation),
        // SRv6 segment identifiers (RFC 9602).
        [0x5f00, ..] => V6Class::Special(Reason::Reserved),
        [a, ..] if a & 0xfe00 == 0xfc00 => V6Class::Special(Reason::UniqueLocal),
        [a, ..] if a & 0xffc0 == 0xfe80 => V6Class::Special(Reason::LinkLocal),
        [a, ..] if a & 0xff00 == 0xff00 => V6Class::Special(Reason::Multicast),
        // Everything outside global unicast 2000::/3: local-use NAT64 64:ff9b:1::/48,
        // discard-only 100::/64, site-local fec0::/10 and blocks IANA has not allocated.
        [a, ..] if a & 0xe000 != 0x2000 => V6Class::Special(Reason::Reserved),
        _ => V6Class::Global,
    }
}

/// The special-purpose kind of any address, `None` for ordinary global unicast. Embedded
/// IPv4 forms report the embedded address's kind (a global IPv4 inside 6to4 is `None`).
#[must_use]
pub fn classify(ip: IpAddr) -> Option<Reason> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match classify_v6(v6) {
            V6Class::Global => None,
            V6Class::Special(reason) => Some(reason),
            V6Class::Compatible(_) => Some(Reason::Reserved),
            V6Class::Embedded(a, b) => classify_v4(a).or_else(|| b.and_then(classify_v4)),
        },
    }
}

/// The private and loopback ranges that `--allow-private` opens.
#[must_use]
pub fn private_and_loopback() -> Vec<IpNet> {
    let v4 = [
        Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
        Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
        Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
        Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
    ];
    let v6 = [
        Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128),
        Ipv6Net::new_assert(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    ];
    v4.into_iter()
        .map(IpNet::V4)
        .chain(v6.into_iter().map(IpNet::V6))
        .collect()
}

/// A CIDR list that did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is not an IP address or CIDR range (e.g. 127.0.0.0/8, ::1/128)")]
pub struct InvalidCidr {
    /// The offending entry.
    pub entry: String,
}

/// Which destination addresses may be connected to. Cheap to clone; the default refuses
/// every special-purpose address and allows every global unicast address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
}

impl EgressPolicy {
    /// The default policy: every special-purpose address refused, nothing extra allowed.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a range (metadata endpoints inside it stay refused unless `net` is exactly one
    /// of them).
    #[must_use]
    pub fn allow(mut self, net: IpNet) -> Self {
        self.allow.push(net.trunc());
        self
    }

    /// Opens several ranges.
    #[must_use]
    pub fn allow_all(mut self, nets: impl IntoIterator<Item = IpNet>) -> Self {
        self.allow.extend(nets.into_iter().map(|n| n.trunc()));
        self
    }

    /// Opens the private and loopback ranges (RFC 1918, `127.0.0.0/8`, `::1`, `fc00::/7`):
    /// the CLI's `--allow-private`. Link-local, CGNAT and metadata stay refused.
    #[must_use]
    pub fn allow_private(self) -> Self {
        self.allow_all(private_and_loopback())
    }

    /// The opened ranges.
    #[must_use]
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// Parses a comma- or whitespace-separated CIDR list (`SENTINEL_SCAN_ALLOW`); a bare
    /// address means that one address. An empty string is an empty list.
    pub fn parse_cidrs(list: &str) -> Result<Vec<IpNet>, InvalidCidr> {
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|entry| {
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map_err(|_| InvalidCidr {
                        entry: entry.to_owned(),
                    })
            })
            .collect()
    }

    /// Decides whether `ip` may be connected to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        match ip {
            IpAddr::V4(v4) => self.check_v4(v4, ip, false),
            IpAddr::V6(v6) => match classify_v6(v6) {
                V6Class::Global => Ok(()),
                V6Class::Special(reason) => {
                    if self.opens(ip, reason) {
                        Ok(())
                    } else {
                        Err(Denied {
                            addr: ip,
                            reason,
                            embedded: None,
                        })
                    }
                }
                V6Class::Compatible(v4) => Err(Denied {
                    addr: ip,
                    reason: Reason::Reserved,
                    embedded: Some(v4),
                }),
                V6Class::Embedded(a, b) => {
                    // An allow entry may name the IPv6 form itself (say, a NAT64 prefix);
                    // otherwise each embedded address must pass on its own.
                    if self.allow.iter().any(|n| n.contains(&ip)) {
                        return Ok(());
                    }
                    self.check_v4(a, ip, true)?;
                    match b {
                        Some(b) => self.check_v4(b, ip, true),
                        None => Ok(()),
                    }
                }
            },
        }
    }

    fn check_v4(&self, v4: Ipv4Addr, reported: IpAddr, embedded: bool) -> Result<(), Denied> {
        match classify_v4(v4) {
            None => Ok(()),
            Some(reason) if self.opens(IpAddr::V4(v4), reason) => Ok(()),
            Some(reason) => Err(Denied {
                addr: reported,
                reason,
                embedded: embedded.then_some(v4),
            }),
        }
    }

    fn opens(&self, ip: IpAddr, reason: Reason) -> bool {
        if reason == Reason::CloudMetadata {
            self.allow
                .iter()
                .any(|n| n.prefix_len() == n.max_prefix_len() && n.addr() == ip)
        } else {
            self.allow.iter().any(|n| n.contains(&ip))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::{Host, Url};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn url_ip(u: &str) -> IpAddr {
        match Url::parse(u).unwrap().host().unwrap() {
            Host::Ipv4(v4) => IpAddr::V4(v4),
            Host::Ipv6(v6) => IpAddr::V6(v6),
            Host::Domain(d) => panic!("{u} parsed to the domain {d}"),
        }
    }

    #[test]
    fn default_policy_refuses_every_special_range() {
        let p = EgressPolicy::new();
        let cases = [
            ("0.0.0.0", Reason::Unspecified),
            ("0.1.2.3", Reason::Unspecified),
            ("127.0.0.1", Reason::Loopback),
            ("127.255.255.254", Reason::Loopback),
            ("10.0.0.1", Reason::Private),
            ("172.16.0.1", Reason::Private),
            ("172.31.255.255", Reason::Private),
            ("192.168.1.1", Reason::Private),
            ("100.64.0.1", Reason::SharedAddressSpace),
            ("100.127.255.255", Reason::SharedAddressSpace),
            ("169.254.1.1", Reason::LinkLocal),
            ("169.254.169.254", Reason::CloudMetadata),
            ("169.254.170.2", Reason::CloudMetadata),
            ("100.100.100.200", Reason::CloudMetadata),
            ("192.0.0.192", Reason::CloudMetadata),
            ("192.0.0.8", Reason::Reserved),
            ("192.0.2.1", Reason::Documentation),
            ("198.51.100.7", Reason::Documentation),
            ("203.0.113.7", Reason::Documentation),
            ("198.18.0.1", Reason::Benchmarking),
            ("198.19.255.255", Reason::Benchmarking),
            ("192.88.99.1", Reason::Reserved),
            ("224.0.0.1", Reason::Multicast),
            ("239.255.255.250", Reason::Multicast),
            ("240.0.0.1", Reason::Reserved),
            ("255.255.255.255", Reason::Broadcast),
            ("::", Reason::Unspecified),
            ("::1", Reason::Loopback),
            ("fe80::1", Reason::LinkLocal),
            ("fc00::1", Reason::UniqueLocal),
            ("fd12:3456::1", Reason::UniqueLocal),
            ("fd00:ec2::254", Reason::CloudMetadata),
            ("fec0::1", Reason::Reserved),
            ("ff02::1", Reason::Multicast),
            ("2001:db8::1", Reason::Documentation),
            ("3fff::1", Reason::Documentation),
            ("2001:2::1", Reason::Benchmarking),
            ("2001:10::1", Reason::Reserved),
            ("64:ff9b:1::1", Reason::Reserved),
            ("100::1", Reason::Reserved),
            ("5f00::1", Reason::Reserved),
            ("4000::1", Reason::Reserved),
        ];
        for (addr, reason) in cases {
            let err = p.check_ip(ip(addr)).unwrap_err();
            assert_eq!(err.reason, reason, "{addr}");
            assert_eq!(classify(ip(addr)), Some(reason), "{addr}");
        }
    }

    #[test]
    fn global_unicast_is_allowed() {
        let p = EgressPolicy::new();
        for addr in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860:4860::8888",
        ] {
            assert_eq!(p.check_ip(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn embedded_ipv4_forms_are_decided_on_the_embedded_address() {
        let p = EgressPolicy::new();
        for (addr, v4, reason) in [
            ("::ffff:127.0.0.1", "127.0.0.1", Reason::Loopback),
            ("::ffff:7f00:1", "127.0.0.1", Reason::Loopback),
            (
                "::ffff:169.254.169.254",
                "169.254.169.254",
                Reason::CloudMetadata,
            ),
            ("64:ff9b::10.0.0.1", "10.0.0.1", Reason::Private),
            (
                "64:ff9b::a9fe:a9fe",
                "169.254.169.254",
                Reason::CloudMetadata,
            ),
            ("2002:7f00:1::1", "127.0.0.1", Reason::Loopback),
            ("2002:c0a8:101::", "192.168.1.1", Reason::Private),
            // Teredo, client 10.0.0.1 stored inverted: !0x0a00 = 0xf5ff, !0x0001 = 0xfffe.
            ("2001:0:808:808::f5ff:fffe", "10.0.0.1", Reason::Private),
            // Teredo, server 127.0.0.1.
            ("2001:0:7f00:1::f7f7:f7f7", "127.0.0.1", Reason::Loopback),
            ("::127.0.0.1", "127.0.0.1", Reason::Reserved),
            ("::8.8.8.8", "8.8.8.8", Reason::Reserved),
        ] {
            let err = p.check_ip(ip(addr)).unwrap_err();
            assert_eq!(err.reason, reason, "{addr}");
            assert_eq!(err.embedded, Some(v4.parse().unwrap()), "{addr}");
            assert!(err.to_string().contains(v4), "{err}");
        }
    }

    #[test]
    fn the_url_parser_normalises_obfuscated_hosts_and_the_decision_follows() {
        let p = EgressPolicy::new();
        for u in [
            "http://127.0.0.1/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://017700000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        ] {
            let addr = url_ip(u);
            assert_eq!(
                p.check_ip(addr).unwrap_err().reason,
                Reason::Loopback,
                "{u} -> {addr}"
            );
        }
        assert_eq!(
            p.check_ip(url_ip("http://0xa9fea9fe/")).unwrap_err().reason,
            Reason::CloudMetadata
        );
    }

    #[test]
    fn allow_list_opens_ranges_including_embedded_forms() {
        let p = EgressPolicy::new().allow("127.0.0.0/8".parse().unwrap());
        assert_eq!(p.check_ip(ip("127.0.0.1")), Ok(()));
        assert_eq!(p.check_ip(ip("127.9.9.9")), Ok(()));
        assert_eq!(p.check_ip(ip("::ffff:127.0.0.1")), Ok(()));
        assert!(p.check_ip(ip("::1")).is_err());
        assert!(p.check_ip(ip("10.0.0.1")).is_err());
        let one = EgressPolicy::new().allow("127.0.0.1/32".parse().unwrap());
        assert_eq!(one.check_ip(ip("127.0.0.1")), Ok(()));
        assert!(one.check_ip(ip("127.0.0.2")).is_err());
    }

    #[test]
    fn metadata_stays_refused_inside_allowed_ranges() {
        let p = EgressPolicy::new().allow_private();
        assert_eq!(p.check_ip(ip("10.1.2.3")), Ok(()));
        assert_eq!(p.check_ip(ip("::1")), Ok(()));
        assert_eq!(p.check_ip(ip("fd12::1")), Ok(()));
        assert_eq!(
            p.check_ip(ip("fd00:ec2::254")).unwrap_err().reason,
            Reason::CloudMetadata
        );
        assert!(p.check_ip(ip("169.254.169.254")).is_err());
        assert!(
            p.check_ip(ip("169.254.1.1")).is_err(),
            "link-local stays closed"
        );
        assert!(p.check_ip(ip("100.64.0.1")).is_err(), "CGNAT stays closed");
        let wide = EgressPolicy::new().allow("169.254.0.0/16".parse().unwrap());
        assert!(wide.check_ip(ip("169.254.169.254")).is_err());
        assert_eq!(wide.check_ip(ip("169.254.1.1")), Ok(()));
        let exact = EgressPolicy::new().allow("169.254.169.254/32".parse().unwrap());
        assert_eq!(exact.check_ip(ip("169.254.169.254")), Ok(()));
    }

    #[test]
    fn cidr_lists_parse() {
        let nets = EgressPolicy::parse_cidrs("127.0.0.0/8, ::1 ,10.0.0.0/8").unwrap();
        assert_eq!(nets.len(), 3);
        assert_eq!(nets[1], "::1/128".parse::<IpNet>().unwrap());
        assert_eq!(EgressPolicy::parse_cidrs("").unwrap(), vec![]);
        assert_eq!(
            EgressPolicy::parse_cidrs("127.0.0.0/8,nope")
                .unwrap_err()
                .entry,
            "nope"
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use url::{Host, Url};

    fn host_ip(u: &str) -> Option<IpAddr> {
        match Url::parse(u).ok()?.host()? {
            Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            Host::Domain(_) => None,
        }
    }

    proptest! {
        /// Every spelling of one IPv4 address that the URL parser accepts (dotted, one
        /// number, hex, octal, short forms, IPv4-mapped IPv6) gets the same decision.
        #[test]
        fn every_encoding_of_an_address_gets_the_same_decision(raw in any::<u32>()) {
            let p = EgressPolicy::new();
            let v4 = Ipv4Addr::from(raw);
            let [a, b, c, d] = v4.octets();
            let expected = p.check_ip(IpAddr::V4(v4)).is_ok();
            let spellings = [
                format!("http://{v4}/"),
                format!("http://{raw}/"),
                format!("http://0x{raw:x}/"),
                format!("http://0{raw:o}/"),
                format!("http://{a}.{}/", (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d)),
                format!("http://{a}.{b}.{}/", (u32::from(c) << 8) | u32::from(d)),
                format!("http://0x{a:x}.0{b:o}.{c}.0x{d:x}/"),
                format!("http://[::ffff:{v4}]/"),
            ];
            for s in spellings {
                let parsed = host_ip(&s);
                prop_assert!(parsed.is_some(), "{} did not parse to an address", s);
                if let Some(addr) = parsed {
                    prop_assert_eq!(p.check_ip(addr).is_ok(), expected, "{}", s);
                }
            }
        }

        /// The decision never panics and a refused address always names a reason that
        /// `classify` agrees with.
        #[test]
        fn decisions_agree_with_classification(raw in any::<u128>()) {
            let addr = IpAddr::V6(Ipv6Addr::from(raw));
            let p = EgressPolicy::new();
            match p.check_ip(addr) {
                Ok(()) => prop_assert_eq!(classify(addr), None),
                Err(d) => prop_assert!(classify(addr).is_some() || d.reason == Reason::Reserved),
            }
        }
    }
}
