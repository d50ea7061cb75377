//! Route handlers, one module per resource. Handlers are thin: extract, call a service,
//! shape the answer.

pub(crate) mod health;
pub(crate) mod openapi;
pub(crate) mod scans;
pub(crate) mod sites;
pub(crate) mod users;

use sentinel_core::ValidationErrors;
use serde_json::{Map, Value};

/// Parses a JSON object body, or says why it is not one.
pub(crate) fn body_object(body: &[u8]) -> Result<Map<String, Value>, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => {
            errors.add("body", "must be a JSON object");
            Err(errors)
        }
        Err(e) => {
            errors.add("body", format!("is not valid JSON: {e}"));
            Err(errors)
        }
    }
}

/// A required display name: a string of 1–200 characters after trimming.
pub(crate) fn name_field(
    obj: &Map<String, Value>,
    key: &str,
    errors: &mut ValidationErrors,
) -> Option<String> {
    match obj.get(key) {
        None => {
            errors.add(key, "is required");
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() && s.trim().chars().count() <= 200 => {
            Some(s.trim().to_owned())
        }
        Some(_) => {
            errors.add(key, "must be a string of 1 to 200 characters");
            None
        }
    }
}

/// Records every key that is not in `known`.
pub(crate) fn unknown_fields(
    obj: &Map<String, Value>,
    known: &[&str],
    errors: &mut ValidationErrors,
) {
    for k in obj.keys() {
        if !known.contains(&k.as_str()) {
            errors.add(k.as_str(), "is not a known field");
        }
    }
}
