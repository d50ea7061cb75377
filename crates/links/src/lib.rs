//! qa-sentinel broken-links engine: crawler, streaming link extractor, link checker, reports.
