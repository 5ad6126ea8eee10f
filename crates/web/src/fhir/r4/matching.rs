//! How a search parameter's value is compared with a resource's: a date with its prefix (`ge`,
//! `lt`, …) against the span a partial date names, a token (`code`, `system|code`) against a
//! coding, a string by what it contains.

use medledger_records::{Error, Kind, Result};
use serde_json::Value;

/// A `date` search's comparison (`ge2024-01`, `2024`, …) against an ISO date or instant.
/// ISO dates order as text, and a partial date names the span it begins.
pub(crate) fn date_matches(filter: &str, value: &str) -> Result<bool> {
    let (prefix, date) = match filter.get(..2) {
        Some(p @ ("eq" | "ne" | "lt" | "gt" | "le" | "ge" | "sa" | "eb")) => (p, &filter[2..]),
        _ => ("eq", filter),
    };
    let well_formed = [4, 7, 10].contains(&date.len())
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !well_formed {
        return Err(Error::new(
            Kind::Invalid,
            format!(
                "{filter:?} is not a date search: use a prefix (eq, ne, lt, gt, le, ge) and a date like 2024, 2024-03 or 2024-03-15"
            ),
        ));
    }
    let within = value.starts_with(date);
    Ok(match prefix {
        "eq" => within,
        "ne" => !within,
        "lt" | "eb" => value < date,
        "gt" | "sa" => value > date && !within,
        "le" => value < date || within,
        _ => value >= date || within,
    })
}

/// Whether a token search (`code`, or `system|code`) matches a coding.
pub(crate) fn token_matches(filter: &str, system: &str, code: &str) -> bool {
    match filter.split_once('|') {
        Some(("", c)) => c == code,
        Some((s, "")) => s == system,
        Some((s, c)) => s == system && c == code,
        None => filter == code,
    }
}

/// The codings of a CodeableConcept, or of a list of them.
pub(crate) fn codings(value: &Value) -> Vec<(&str, &str)> {
    let concepts: Vec<&Value> = match value {
        Value::Array(list) => list.iter().collect(),
        v => vec![v],
    };
    concepts
        .into_iter()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .map(|c| {
            (
                c["system"].as_str().unwrap_or_default(),
                c["code"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

/// Whether `text` contains `needle`, ignoring case (FHIR's string search matches starts of
/// words; containing is looser and never misses one).
pub(crate) fn contains(text: &str, needle: &str) -> bool {
    text.to_lowercase().contains(&needle.to_lowercase())
}
