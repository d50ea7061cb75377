//! Findings: what a scan found wrong.

use crate::EpochMillis;
use crate::ids::{FindingId, ScanId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr;

/// What kind of problem a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A link or asset that does not work (detail: error kind, status, sources).
    BrokenLink,
    /// A page that looks different from its approved baseline (detail: ratio, regions, images).
    VisualChange,
}

impl FindingKind {
    /// The wire and storage name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BrokenLink => "broken-link",
            Self::VisualChange => "visual-change",
        }
    }
}

impl FromStr for FindingKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "broken-link" => Ok(Self::BrokenLink),
            "visual-change" => Ok(Self::VisualChange),
            _ => Err(()),
        }
    }
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Info,
    /// Probably a problem.
    Warning,
    /// A problem.
    Error,
}

impl Severity {
    /// The wire and storage name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl FromStr for Severity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "info" => Ok(Self::Info),
            "warning" => Ok(Self::Warning),
            "error" => Ok(Self::Error),
            _ => Err(()),
        }
    }
}

/// A finding produced by an executor, before it is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewFinding {
    /// What kind.
    pub kind: FindingKind,
    /// How bad.
    pub severity: Severity,
    /// The URL concerned (the broken link; the page that changed).
    pub url: String,
    /// One line for people.
    pub message: String,
    /// Check-specific structured detail.
    pub detail: Value,
}

/// A stored finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Its id.
    pub id: FindingId,
    /// The scan that found it.
    pub scan_id: ScanId,
    /// What kind.
    pub kind: FindingKind,
    /// How bad.
    pub severity: Severity,
    /// The URL concerned.
    pub url: String,
    /// One line for people.
    pub message: String,
    /// Check-specific structured detail.
    pub detail: Value,
    /// When it was recorded.
    pub created_at: EpochMillis,
}
