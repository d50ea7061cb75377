//! HTTP middleware: request ids, timing, access logs and metrics ([`observe`]); client
//! identity and rate limiting ([`rate_limit`]).

mod client_ip;
mod observe;
mod rate_limit;

pub(crate) use client_ip::client_ip;
pub(crate) use observe::{current_request_id, observe};
pub(crate) use rate_limit::rate_limit;
