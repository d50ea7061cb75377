//! Per-request helpers used by the front ([`crate::front`]): request ids and the client IP.

mod client_ip;
mod request_id;

pub(crate) use client_ip::client_ip;
pub(crate) use request_id::{new_request_id, response_time};
