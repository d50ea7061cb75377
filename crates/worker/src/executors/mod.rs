//! The executors that plug the scanners into the runtime: one per check type.

mod broken_links;

pub use broken_links::BrokenLinksExecutor;
