//! JUnit XML: one test case per broken link (failed), plus one passing case that records
//! the run, so CI systems always see a non-empty suite.

use super::{RenderError, Report, problem};
use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};
use std::fmt::Write;
use std::time::Duration;

pub(super) fn render(report: &Report) -> Result<String, RenderError> {
    let mut suite = TestSuite::new("broken-links");
    suite.set_time(Duration::from_millis(report.summary.duration_ms));
    let mut run = TestCase::new(
        format!("crawl {}", report.start_url),
        TestCaseStatus::success(),
    );
    run.set_classname("qa-sentinel.check")
        .set_system_out(format!(
            "{} pages crawled, {} links checked, {} broken",
            report.summary.pages, report.summary.links, report.summary.broken
        ));
    suite.add_test_case(run);
    for b in &report.broken {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        let mut description = String::new();
        for s in &b.sources {
            let _ = writeln!(description, "linked from {} ({})", s.page, s.element);
        }
        for r in &b.redirects {
            let _ = writeln!(description, "redirected by {} ({})", r.url, r.status);
        }
        status
            .set_message(format!("{}: {}", problem(b), b.message))
            .set_type(b.kind.as_str())
            .set_description(description);
        let mut case = TestCase::new(b.url.as_str(), status);
        case.set_classname("qa-sentinel.check.broken-link");
        suite.add_test_case(case);
    }
    let mut junit = JUnit::new("qa-sentinel");
    junit.add_test_suite(suite);
    junit.to_string().map_err(|e| RenderError::new("junit", e))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;

    #[test]
    fn one_failure_per_broken_link() {
        let xml = super::render(&fixtures::report()).unwrap();
        let suite = xml.lines().find(|l| l.contains("<testsuite ")).unwrap();
        assert!(
            suite.contains(r#"tests="3""#) && suite.contains(r#"failures="2""#),
            "{xml}"
        );
        assert!(xml.contains("gone|&lt;&amp;&gt;.html"));
        assert!(xml.contains(r#"type="fragment""#));
        let clean = super::render(&fixtures::clean()).unwrap();
        assert!(
            clean.contains(r#"tests="1""#) && clean.contains(r#"failures="0""#),
            "{clean}"
        );
    }
}
