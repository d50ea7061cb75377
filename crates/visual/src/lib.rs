//! qa-sentinel visual regression, browser side: a pool of headless Chromium instances driven
//! over the DevTools protocol, and stable captures.
//!
//! * [`BrowserPool`] owns local Chromium processes (or connects to remote DevTools
//!   endpoints), picks one per capture with a [`sentinel_resilience::LoadBalancer`], guards
//!   each with a [`sentinel_resilience::CircuitBreaker`], and replaces crashed or hung
//!   browsers.
//! * A capture ([`BrowserPool::capture`]) runs in a fresh browser context at a fixed device
//!   scale factor of 1, with every request the page makes checked against the egress policy
//!   ([`EgressCheck`]), waits for load, network idle, web fonts and images, freezes
//!   animations, transitions and the caret, applies hide and mask selectors, and takes a PNG
//!   of the viewport or of the full page (height capped). The same page captured twice gives
//!   the same pixels.
//!
//! The pixel comparison lives in `sentinel-pixeldiff`; this crate only produces images.

mod capture;
mod config;
mod egress;
mod error;
mod instance;
mod launch;
mod network;
mod pool;
mod proxy;
mod scripts;

pub use capture::Capture;
pub use config::{
    BrowserSource, CaptureRequest, EXECUTABLE_CANDIDATES, PoolConfig, default_executable,
};
pub use egress::{BoxFuture, EgressCheck, EgressDenied};
pub use error::{CaptureError, CaptureErrorKind, LaunchError, PoolError};
pub use instance::InstanceState;
pub use launch::FIXED_FLAGS as CHROMIUM_FLAGS;
pub use network::BlockedRequest;
pub use pool::{BrowserPool, InstanceStats, PoolStats};
