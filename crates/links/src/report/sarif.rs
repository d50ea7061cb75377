//! SARIF 2.1.0, for code-scanning dashboards: one result per broken link, located at every
//! page that links to it, with one rule per kind of breakage.

use super::{BrokenKind, RenderError, Report, problem};
use serde_sarif::sarif::{
    ArtifactLocation, Location, Message, MultiformatMessageString, PhysicalLocation,
    ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif, Tool, ToolComponent,
};
use std::collections::BTreeSet;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn rule_id(kind: BrokenKind) -> String {
    format!("broken-link/{}", kind.as_str())
}

pub(super) fn render(report: &Report) -> Result<String, RenderError> {
    let kinds: BTreeSet<BrokenKind> = report.broken.iter().map(|b| b.kind).collect();
    let rules: Vec<ReportingDescriptor> = kinds
        .iter()
        .map(|k| {
            ReportingDescriptor::builder()
                .id(rule_id(*k))
                .short_description(
                    MultiformatMessageString::builder()
                        .text(format!("Broken link ({})", k.as_str()))
                        .build(),
                )
                .build()
        })
        .collect();
    let results: Vec<SarifResult> = report
        .broken
        .iter()
        .map(|b| {
            let mut locations: Vec<Location> = b
                .sources
                .iter()
                .map(|s| {
                    Location::builder()
                        .physical_location(
                            PhysicalLocation::builder()
                                .artifact_location(
                                    ArtifactLocation::builder().uri(s.page.clone()).build(),
                                )
                                .build(),
                        )
                        .message(
                            Message::builder()
                                .text(format!("{} → {}", s.element, b.url))
                                .build(),
                        )
                        .build()
                })
                .collect();
            if locations.is_empty() {
                locations.push(
                    Location::builder()
                        .physical_location(
                            PhysicalLocation::builder()
                                .artifact_location(
                                    ArtifactLocation::builder().uri(b.url.clone()).build(),
                                )
                                .build(),
                        )
                        .build(),
                );
            }
            let level = if b.kind == BrokenKind::Fragment {
                ResultLevel::Warning
            } else {
                ResultLevel::Error
            };
            SarifResult::builder()
                .rule_id(rule_id(b.kind))
                .level(level)
                .message(
                    Message::builder()
                        .text(format!(
                            "{} is broken: {} ({})",
                            b.url,
                            problem(b),
                            b.message
                        ))
                        .build(),
                )
                .locations(locations)
                .build()
        })
        .collect();
    let driver = ToolComponent::builder()
        .name("qa-sentinel")
        .version(env!("CARGO_PKG_VERSION"))
        .rules(rules)
        .build();
    let sarif = Sarif::builder()
        .schema(SCHEMA)
        .version(serde_json::json!("2.1.0"))
        .runs(vec![
            Run::builder()
                .tool(Tool::builder().driver(driver).build())
                .results(results)
                .build(),
        ])
        .build();
    let mut out = serde_json::to_string_pretty(&sarif).map_err(|e| RenderError::new("sarif", e))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use serde_json::Value;

    #[test]
    fn results_point_at_the_linking_pages() {
        let v: Value = serde_json::from_str(&super::render(&fixtures::report()).unwrap()).unwrap();
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "qa-sentinel");
        assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), 2);
        let r = &run["results"][0];
        assert_eq!(r["ruleId"], "broken-link/status");
        assert_eq!(r["level"], "error");
        assert_eq!(
            r["locations"][1]["physicalLocation"]["artifactLocation"]["uri"],
            "http://127.0.0.1:8080/b.html"
        );
        assert_eq!(run["results"][1]["level"], "warning");
        let clean: Value =
            serde_json::from_str(&super::render(&fixtures::clean()).unwrap()).unwrap();
        assert_eq!(clean["runs"][0]["results"], Value::Array(vec![]));
    }
}
