//! Plain text for a terminal.

use super::{Report, problem, seconds};
use std::fmt::Write;

/// Sources listed per broken link before "and N more".
const SOURCES_SHOWN: usize = 5;

pub(super) fn render(report: &Report) -> String {
    let mut out = String::new();
    for b in &report.broken {
        let _ = writeln!(out, "BROKEN {}", b.url);
        let _ = writeln!(out, "  {} ({})", problem(b), b.message);
        for r in &b.redirects {
            let _ = writeln!(out, "  redirected by {} ({})", r.url, r.status);
        }
        for s in b.sources.iter().take(SOURCES_SHOWN) {
            let _ = writeln!(out, "  linked from {} ({})", s.page, s.element);
        }
        if b.sources.len() > SOURCES_SHOWN {
            let _ = writeln!(
                out,
                "  … and {} more pages",
                b.sources.len() - SOURCES_SHOWN
            );
        }
        out.push('\n');
    }
    let s = &report.summary;
    let verdict = match s.broken {
        0 => String::from("No broken links"),
        1 => String::from("1 broken link"),
        n => format!("{n} broken links"),
    };
    let _ = writeln!(
        out,
        "{verdict}: {} links checked on {} pages crawled from {} in {}.",
        s.links,
        s.pages,
        report.start_url,
        seconds(s.duration_ms)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;

    #[test]
    fn lists_each_broken_link_with_its_sources_and_ends_with_a_verdict() {
        let text = super::render(&fixtures::report());
        assert!(text.contains("BROKEN http://127.0.0.1:8080/gone|<&>.html\n  HTTP 404 after 1 redirect (404 Not Found)\n"));
        assert!(text.contains("  linked from http://127.0.0.1:8080/b.html (img[srcset])\n"));
        assert!(text.contains("redirected by http://127.0.0.1:8080/old (301)"));
        assert!(text.ends_with("2 broken links: 10 links checked on 3 pages crawled from http://127.0.0.1:8080/ in 1.2 s.\n"));
        assert!(super::render(&fixtures::clean()).starts_with("No broken links: "));
    }
}
