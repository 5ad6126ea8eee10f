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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn date_prefixes_compare_a_value_with_the_span_a_date_names() {
        // (filter, value, whether it matches)
        let rows = [
            ("2024-03-15", "2024-03-15", true),
            ("2024-03-15", "2024-03-15T09:30:00Z", true),
            ("2024-03-15", "2024-03-16", false),
            ("eq2024", "2024-12-31", true),
            ("eq2024-03", "2024-04-01", false),
            ("ne2024-03", "2024-04-01", true),
            ("ne2024-03", "2024-03-31", false),
            ("lt2024-03-15", "2024-03-14", true),
            ("lt2024-03-15", "2024-03-15", false),
            ("lt2024-03", "2024-03-01", false),
            ("le2024-03", "2024-02-29", true),
            ("le2024-03", "2024-03-31", true),
            ("le2024-03", "2024-04-01", false),
            ("gt2024-03", "2024-04-01", true),
            ("gt2024-03", "2024-03-31", false),
            ("gt2024-03", "2024-02-01", false),
            ("ge2024-03", "2024-03-01", true),
            ("ge2024-03", "2025-01-01", true),
            ("ge2024-03", "2024-02-29", false),
            ("sa2024", "2025-01-01", true),
            ("sa2024", "2024-06-01", false),
            ("eb2024", "2023-12-31", true),
            ("eb2024", "2024-01-01", false),
        ];
        for (filter, value, expected) in rows {
            assert_eq!(
                date_matches(filter, value).unwrap(),
                expected,
                "{filter} against {value}"
            );
        }
    }

    #[test]
    fn a_date_search_that_is_not_one_is_refused_rather_than_ignored() {
        let rows = [
            "",
            "ge",
            "24",
            "2024-3",
            "2024-03-5",
            "2024/03/15",
            "2024-03-15T10:00",
            "ap2024-03-15",
            "eq2024-13x",
            "tomorrow",
        ];
        for filter in rows {
            let e = date_matches(filter, "2024-03-15").unwrap_err();
            assert_eq!(e.kind, Kind::Invalid, "{filter:?}");
            assert!(
                e.message
                    .starts_with(&format!("{filter:?} is not a date search")),
                "{filter:?}: {}",
                e.message
            );
        }
    }

    #[test]
    fn a_token_matches_by_code_by_system_or_by_both() {
        const LOINC: &str = "http://loinc.org";
        const SNOMED: &str = "http://snomed.info/sct";
        // (filter, the coding's system and code, whether it matches)
        let rows = [
            ("718-7", LOINC, "718-7", true),
            ("718-7", "", "718-7", true),
            ("718-7", LOINC, "4548-4", false),
            ("http://loinc.org|718-7", LOINC, "718-7", true),
            ("http://loinc.org|718-7", SNOMED, "718-7", false),
            ("http://loinc.org|718-7", LOINC, "4548-4", false),
            ("HTTP://LOINC.ORG|718-7", LOINC, "718-7", false),
            ("|718-7", "", "718-7", true),
            ("|718-7", "", "4548-4", false),
            ("http://loinc.org|", LOINC, "4548-4", true),
            ("http://loinc.org|", SNOMED, "718-7", false),
            ("http://loinc.org|", SNOMED, "", false),
            ("", LOINC, "718-7", false),
        ];
        for (filter, system, code, expected) in rows {
            assert_eq!(
                token_matches(filter, system, code),
                expected,
                "{filter} against {system}|{code}"
            );
        }
    }

    #[test]
    fn codings_are_read_from_a_concept_or_a_list_of_them() {
        let rows = [
            (
                json!({"coding": [{"system": "s", "code": "a"}, {"code": "b"}], "text": "t"}),
                vec![("s", "a"), ("", "b")],
            ),
            (
                json!([{"coding": [{"system": "s", "code": "a"}]}, {"coding": [{"system": "t", "code": "c"}]}]),
                vec![("s", "a"), ("t", "c")],
            ),
            (
                json!([{"text": "x"}, {"coding": [{"system": "t"}]}]),
                vec![("t", "")],
            ),
            (json!({"text": "words only"}), vec![]),
            (Value::Null, vec![]),
        ];
        for (value, expected) in rows {
            assert_eq!(codings(&value), expected, "{value}");
        }
    }

    #[test]
    fn a_string_search_contains_its_words_in_any_case() {
        let rows = [
            ("Dr Ada Lovelace", "ada", true),
            ("Dr Ada Lovelace", "LOVE", true),
            ("Hôpital Nord", "hôpital", true),
            ("Dr Ada Lovelace", "grace", false),
            ("", "a", false),
        ];
        for (text, needle, expected) in rows {
            assert_eq!(contains(text, needle), expected, "{needle} in {text}");
        }
    }
}
