//! Integration tests of `sentinel-pixeldiff` (one test binary).

// Helpers outside `#[test]` functions build fixtures; a failure there is a broken test.
#![allow(clippy::unwrap_used)]

mod pixelmatch;
mod png_io;
mod properties;
mod support;
mod verdicts;
