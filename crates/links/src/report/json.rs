//! The JSON format, whose shape is part of the CLI contract:
//! `{"summary": {"pages", "links", "broken", "durationMs"}, "broken": [{"url", "kind",
//! "status", "sources": [{"page", "element"}], "message", "redirects"}]}`.

use super::{RenderError, Report};

pub(super) fn render(report: &Report) -> Result<String, RenderError> {
    #[derive(serde::Serialize)]
    struct Wire<'a> {
        summary: &'a super::Summary,
        broken: &'a [super::BrokenLink],
    }
    let mut out = serde_json::to_string_pretty(&Wire {
        summary: &report.summary,
        broken: &report.broken,
    })
    .map_err(|e| RenderError::new("json", e))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use serde_json::Value;

    #[test]
    fn the_contract_shape_is_kept() {
        let v: Value = serde_json::from_str(&super::render(&fixtures::report()).unwrap()).unwrap();
        assert_eq!(v["summary"]["pages"], 3);
        assert_eq!(v["summary"]["links"], 10);
        assert_eq!(v["summary"]["broken"], 2);
        assert_eq!(v["summary"]["durationMs"], 1234);
        let b = &v["broken"][0];
        assert_eq!(b["url"], "http://127.0.0.1:8080/gone|<&>.html");
        assert_eq!(b["kind"], "status");
        assert_eq!(b["status"], 404);
        assert_eq!(b["sources"][0]["page"], "http://127.0.0.1:8080/");
        assert_eq!(b["sources"][0]["element"], "a[href]");
        assert_eq!(v["broken"][1]["kind"], "fragment");
        let clean: Value =
            serde_json::from_str(&super::render(&fixtures::clean()).unwrap()).unwrap();
        assert_eq!(clean["broken"], Value::Array(vec![]));
    }
}
