//! qa-sentinel's SSRF-safe HTTP client, used by every scanner that fetches URLs strangers
//! wrote.
//!
//! Three parts, usable separately:
//!
//! * [`EgressPolicy`]: the pure decision on a parsed or resolved [`std::net::IpAddr`]
//!   ([`EgressPolicy::check_ip`]). Refuses loopback, private, link-local, CGNAT, cloud metadata,
//!   multicast, broadcast, unspecified, documentation, benchmarking and the other IANA
//!   special-purpose ranges, in IPv4, IPv6 and every IPv4-embedding IPv6 form, unless an
//!   allow-list of CIDRs opens them.
//! * [`Guard`]: the policy plus a [`Resolve`]r. [`Guard::check_url`] vets scheme and literal
//!   hosts, [`Guard::resolve_checked`] resolves a name and vets every answer. The browser
//!   engine reuses these for Chromium's requests.
//! * [`Client`]: reqwest behind the guard, with no proxy, manual redirects re-checked at every
//!   hop, connections pinned to vetted addresses, and caps on redirects, body size (after
//!   decompression) and total time.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sentinel_netguard::{Client, ClientConfig, EgressPolicy, Guard, Request};
//!
//! let policy = EgressPolicy::new().allow("127.0.0.0/8".parse()?);
//! let client = Client::new(Guard::with_system_resolver(policy)?, ClientConfig::default())?;
//! let response = client.fetch(Request::get("http://127.0.0.1:8080/".parse()?)).await?;
//! println!("{} after {} redirects", response.status(), response.redirects().len());
//! # Ok(()) }
//! ```

mod client;
mod policy;
mod resolve;

pub use client::{
    BuildError, Client, ClientConfig, ErrorKind, FetchError, Hop, Limits, Request, Response,
};
pub use ipnet::IpNet;
pub use policy::{
    Denied, EgressPolicy, InvalidCidr, Reason, classify, classify_v4, private_and_loopback,
};
pub use resolve::{
    BoxFuture, EgressError, Guard, HickoryResolver, Resolve, ResolveError, StaticResolver,
    SystemResolver,
};
