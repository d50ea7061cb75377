//! A Markdown table, for pull-request comments and job summaries.

use super::{Report, problem, seconds};
use std::fmt::Write;

/// Sources listed per row before "and N more".
const SOURCES_SHOWN: usize = 3;

/// Escapes what would break a table cell or inline code.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

pub(super) fn render(report: &Report) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Broken links: {}\n\n{} links checked on {} pages crawled from {} in {}.\n",
        s.broken,
        s.links,
        s.pages,
        cell(&report.start_url),
        seconds(s.duration_ms)
    );
    if report.broken.is_empty() {
        return out;
    }
    out.push_str("| Broken URL | Problem | Linked from |\n|---|---|---|\n");
    for b in &report.broken {
        let mut from: Vec<String> = b
            .sources
            .iter()
            .take(SOURCES_SHOWN)
            .map(|src| format!("{} ({})", cell(&src.page), src.element))
            .collect();
        if b.sources.len() > SOURCES_SHOWN {
            from.push(format!("and {} more", b.sources.len() - SOURCES_SHOWN));
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            cell(&b.url),
            cell(&problem(b)),
            from.join("<br>")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;

    #[test]
    fn renders_an_escaped_table() {
        let md = super::render(&fixtures::report());
        assert!(md.starts_with("## Broken links: 2\n"));
        assert!(md.contains("| http://127.0.0.1:8080/gone\\|&lt;&&gt;.html | HTTP 404 after 1 redirect | http://127.0.0.1:8080/ (a[href])<br>http://127.0.0.1:8080/b.html (img[srcset]) |"), "{md}");
        assert!(!super::render(&fixtures::clean()).contains('|'));
    }
}
