//! The executors that plug the scanners into the runtime: one per check type.

mod broken_links;
mod visual;

pub use broken_links::BrokenLinksExecutor;
pub use visual::VisualExecutor;
