//! HIPAA Safe Harbor de-identification (45 CFR 164.514(b)(2)) of the structured data a study
//! asks for, then a k-anonymity check. Every resource is rebuilt from an allowlist of the
//! elements a study can use (codes, values, statuses, years), so nothing outside it — names,
//! contacts, identifiers, free text, narratives, source ids, references to people — can
//! survive by being forgotten: what is not listed is not copied. Dates become years, ages over
//! 89 the single group 90+, ZIP codes their first three digits (000 for the restricted areas of
//! a configuration table), and each patient a pseudonym keyed per study (HMAC-SHA256), stable
//! within the study and unlinkable across studies.

use std::collections::{BTreeMap, HashSet};

use alloy::primitives::Address;
use serde_json::{Map, Value, json};

/// The Safe Harbor settings of a deployment.
#[derive(Debug, Clone)]
pub struct SafeHarbor {
    /// ZIP3 prefixes exported as 000.
    pub restricted_zip3: HashSet<String>,
    /// The smallest group of (birth year, sex, ZIP3) an export keeps.
    pub k: usize,
}

/// The table shipped with medledger (`config/safe-harbor-zip3.txt`).
pub const DEFAULT_ZIP3_TABLE: &str = include_str!("../../../../config/safe-harbor-zip3.txt");

impl SafeHarbor {
    /// Reads a ZIP3 table: one three-digit prefix per line, `#` comments.
    pub fn from_table(table: &str, k: usize) -> Result<SafeHarbor, String> {
        let mut restricted = HashSet::new();
        for (n, line) in table.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if line.len() != 3 || !line.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "line {}: {line:?} is not a three-digit ZIP prefix",
                    n + 1
                ));
            }
            restricted.insert(line.to_string());
        }
        if k < 2 {
            return Err("k must be at least 2".into());
        }
        Ok(SafeHarbor {
            restricted_zip3: restricted,
            k,
        })
    }
}

impl Default for SafeHarbor {
    fn default() -> SafeHarbor {
        SafeHarbor::from_table(DEFAULT_ZIP3_TABLE, 5).expect("the shipped table is valid")
    }
}

/// One patient's structured data, as their bundles hold it.
#[derive(Debug, Clone)]
pub struct Subject {
    pub patient: Address,
    /// Their date of birth from their profile, when their bundles give none.
    pub date_of_birth: Option<String>,
    /// The resources of their bundles (the Patient resources among them give sex, birth date
    /// and ZIP code).
    pub resources: Vec<Value>,
}

/// Why records were left out of an export.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Suppressed {
    /// Patients whose (birth year, sex, ZIP3) group was smaller than k, and their resources.
    pub small_group_patients: usize,
    pub small_group_resources: usize,
    /// Resources that carried no coded meaning once free text was dropped.
    pub uncoded_resources: usize,
}

/// A de-identified export: NDJSON lines per resource type, whom it drew on, what it left out.
#[derive(Debug, Clone, Default)]
pub struct Deidentified {
    pub files: BTreeMap<String, Vec<Value>>,
    pub included: Vec<Address>,
    pub suppressed: Suppressed,
    /// The (birth year or 90+, sex, ZIP3) groups kept, and their sizes.
    pub groups: BTreeMap<(String, String, String), usize>,
}

/// The pseudonym of `what` in a study: HMAC-SHA256 under the study's key, 32 hex digits.
pub fn pseudonym(study_key: &[u8; 32], what: &[u8]) -> String {
    hex::encode(&crate::keyring::hmac_sha256(study_key, what)[..16])
}

/// A date, dateTime or instant reduced to its year (Safe Harbor keeps no finer element).
fn year_of(s: &str) -> Option<String> {
    let year = s.get(..4)?;
    year.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| year.to_string())
}

/// Age in whole years at `on` (a year) of someone born in `born` (a year): the upper bound.
fn age_in(born: &str, on: i64) -> Option<i64> {
    born.parse::<i64>().ok().map(|b| on - b)
}

/// Codings only, with their system, code and standard display (no free `text`).
fn concept(value: &Value) -> Option<Value> {
    let codings: Vec<Value> = value["coding"]
        .as_array()?
        .iter()
        .filter_map(|c| {
            let code = c["code"].as_str()?;
            let mut out = Map::new();
            if let Some(s) = c["system"].as_str() {
                out.insert("system".into(), json!(s));
            }
            out.insert("code".into(), json!(code));
            if let Some(d) = c["display"].as_str() {
                out.insert("display".into(), json!(d));
            }
            Some(Value::Object(out))
        })
        .collect();
    (!codings.is_empty()).then(|| json!({ "coding": codings }))
}

fn concepts(value: &Value) -> Option<Value> {
    let list: Vec<Value> = value.as_array()?.iter().filter_map(concept).collect();
    (!list.is_empty()).then_some(Value::Array(list))
}

/// A Quantity's value, unit and code (its comparator too), nothing else.
fn quantity(value: &Value) -> Option<Value> {
    value["value"].as_f64()?;
    let mut out = Map::new();
    out.insert("value".into(), value["value"].clone());
    for key in ["comparator", "unit", "system", "code"] {
        if let Some(s) = value[key].as_str() {
            out.insert(key.into(), json!(s));
        }
    }
    Some(Value::Object(out))
}

/// The date elements an exported type keeps, each as a year.
const DATES: [&str; 8] = [
    "effectiveDateTime",
    "onsetDateTime",
    "abatementDateTime",
    "recordedDate",
    "authoredOn",
    "performedDateTime",
    "occurrenceDateTime",
    "dateAsserted",
];

/// `resource` rebuilt from the allowlist of its type, its subject the patient's pseudonym;
/// `None` if its type is not exported or nothing coded is left of it.
fn rebuild(resource: &Value, id: String, subject: &str, age_cap: Option<i64>) -> Option<Value> {
    let kind = resource["resourceType"].as_str()?;
    let mut out = Map::new();
    out.insert("resourceType".into(), json!(kind));
    out.insert("id".into(), json!(id));
    let copy_str = |out: &mut Map<String, Value>, key: &str| {
        if let Some(s) = resource[key].as_str() {
            out.insert(key.into(), json!(s));
        }
    };
    let copy_concept = |out: &mut Map<String, Value>, key: &str| {
        if let Some(c) = concept(&resource[key]) {
            out.insert(key.into(), c);
        }
    };
    let copy_concepts = |out: &mut Map<String, Value>, key: &str| {
        if let Some(c) = concepts(&resource[key]) {
            out.insert(key.into(), c);
        }
    };
    let reference = json!({ "reference": format!("Patient/{subject}") });
    let (code_key, subject_key) = match kind {
        "Observation" => ("code", "subject"),
        "Condition" | "Procedure" | "AllergyIntolerance" => ("code", "subject"),
        "MedicationStatement" | "MedicationRequest" => ("medicationCodeableConcept", "subject"),
        "Immunization" => ("vaccineCode", "patient"),
        "Encounter" => ("class", "subject"),
        _ => return None,
    };
    let subject_key = if kind == "AllergyIntolerance" {
        "patient"
    } else {
        subject_key
    };
    if kind == "Encounter" {
        // `class` is a Coding, not a CodeableConcept.
        let class = &resource["class"];
        let code = class["code"].as_str()?;
        let mut c = Map::new();
        if let Some(s) = class["system"].as_str() {
            c.insert("system".into(), json!(s));
        }
        c.insert("code".into(), json!(code));
        out.insert("class".into(), Value::Object(c));
        copy_concepts(&mut out, "type");
        if let Some(y) = resource["period"]["start"].as_str().and_then(year_of) {
            out.insert("period".into(), json!({ "start": y }));
        }
    } else {
        let code = concept(&resource[code_key])?;
        out.insert(code_key.into(), code);
    }
    for key in ["status", "intent", "criticality", "type"] {
        if kind != "Encounter" || key == "status" {
            copy_str(&mut out, key);
        }
    }
    for key in ["clinicalStatus", "verificationStatus", "severity"] {
        copy_concept(&mut out, key);
    }
    if kind == "AllergyIntolerance" {
        if let Some(list) = resource["category"].as_array() {
            let cats: Vec<Value> = list.iter().filter(|c| c.is_string()).cloned().collect();
            if !cats.is_empty() {
                out.insert("category".into(), Value::Array(cats));
            }
        }
    } else {
        copy_concepts(&mut out, "category");
    }
    copy_concepts(&mut out, "interpretation");
    out.insert(subject_key.into(), reference);
    for key in DATES {
        if let Some(y) = resource[key].as_str().and_then(year_of) {
            out.insert(key.into(), json!(y));
        }
    }
    if let Some(y) = resource["effectivePeriod"]["start"]
        .as_str()
        .and_then(year_of)
    {
        out.insert("effectiveDateTime".into(), json!(y));
    }
    if let Some(q) = quantity(&resource["valueQuantity"]) {
        let is_age = resource["code"]["coding"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["code"] == "30525-0"));
        let q = match (is_age, age_cap, q["value"].as_f64()) {
            // An age over 89 (or an age of someone over 89) is only "90 or more".
            (true, _, Some(v)) if v > 89.0 => {
                json!({ "value": 90, "comparator": ">=", "unit": "a" })
            }
            (true, Some(_), _) => json!({ "value": 90, "comparator": ">=", "unit": "a" }),
            _ => q,
        };
        out.insert("valueQuantity".into(), q);
    } else if let Some(c) = concept(&resource["valueCodeableConcept"]) {
        out.insert("valueCodeableConcept".into(), c);
    } else if let Some(b) = resource["valueBoolean"].as_bool() {
        out.insert("valueBoolean".into(), json!(b));
    } else if let Some(i) = resource["valueInteger"].as_i64() {
        out.insert("valueInteger".into(), json!(i));
    }
    if let Some(ranges) = resource["referenceRange"].as_array() {
        let kept: Vec<Value> = ranges
            .iter()
            .filter_map(|r| {
                let mut range = Map::new();
                for key in ["low", "high"] {
                    if let Some(q) = quantity(&r[key]) {
                        range.insert(key.into(), q);
                    }
                }
                (!range.is_empty()).then_some(Value::Object(range))
            })
            .collect();
        if !kept.is_empty() {
            out.insert("referenceRange".into(), Value::Array(kept));
        }
    }
    if let Some(components) = resource["component"].as_array() {
        let kept: Vec<Value> = components
            .iter()
            .filter_map(|c| {
                let code = concept(&c["code"])?;
                let mut comp = Map::new();
                comp.insert("code".into(), code);
                if let Some(q) = quantity(&c["valueQuantity"]) {
                    comp.insert("valueQuantity".into(), q);
                }
                Some(Value::Object(comp))
            })
            .collect();
        if !kept.is_empty() {
            out.insert("component".into(), Value::Array(kept));
        }
    }
    Some(Value::Object(out))
}

/// A patient's quasi-identifiers: birth year (or 90+), sex, ZIP3 (000 if restricted), from
/// the latest Patient resource of their bundles.
fn demographics(
    subject: &Subject,
    rules: &SafeHarbor,
    this_year: i64,
) -> (String, String, String, bool) {
    let patient = subject
        .resources
        .iter()
        .rev()
        .find(|r| r["resourceType"] == "Patient");
    let born = patient
        .and_then(|p| p["birthDate"].as_str())
        .or(subject.date_of_birth.as_deref())
        .and_then(year_of);
    let over_89 = born
        .as_deref()
        .and_then(|b| age_in(b, this_year))
        .is_some_and(|age| age > 89);
    let year = match born {
        Some(_) if over_89 => "90+".to_string(),
        Some(y) => y,
        None => "unknown".to_string(),
    };
    let sex = patient
        .and_then(|p| p["gender"].as_str())
        .filter(|g| ["male", "female", "other"].contains(g))
        .unwrap_or("unknown")
        .to_string();
    let zip = patient
        .and_then(|p| p["address"].as_array())
        .and_then(|a| a.iter().find_map(|a| a["postalCode"].as_str()))
        .and_then(|z| z.get(..3))
        .filter(|z| z.bytes().all(|b| b.is_ascii_digit()))
        .map(|z| {
            if rules.restricted_zip3.contains(z) {
                "000".to_string()
            } else {
                z.to_string()
            }
        })
        .unwrap_or_else(|| "unknown".to_string());
    (year, sex, zip, over_89)
}

/// The de-identified export of `subjects` for a study keyed by `study_key`, asking for the
/// resource types `data`: Safe Harbor on every resource, then k-anonymity over (birth year,
/// sex, ZIP3), whose small groups are suppressed whole.
pub fn deidentify(
    subjects: &[Subject],
    data: &[String],
    study_key: &[u8; 32],
    rules: &SafeHarbor,
    this_year: i64,
) -> Deidentified {
    let mut groups: BTreeMap<(String, String, String), Vec<usize>> = BTreeMap::new();
    let mut quasi = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        let (year, sex, zip, over_89) = demographics(s, rules, this_year);
        groups
            .entry((year.clone(), sex.clone(), zip.clone()))
            .or_default()
            .push(i);
        quasi.push((year, sex, zip, over_89));
    }
    let mut out = Deidentified::default();
    for (group, members) in &groups {
        let resources: usize = members
            .iter()
            .map(|&i| {
                subjects[i]
                    .resources
                    .iter()
                    .filter(|r| data.iter().any(|d| r["resourceType"] == d.as_str()))
                    .count()
            })
            .sum();
        if members.len() < rules.k {
            out.suppressed.small_group_patients += members.len();
            out.suppressed.small_group_resources += resources;
            continue;
        }
        out.groups.insert(group.clone(), members.len());
        for &i in members {
            let s = &subjects[i];
            let (year, sex, zip, over_89) = &quasi[i];
            let id = pseudonym(study_key, s.patient.as_slice());
            let mut patient = json!({ "resourceType": "Patient", "id": id });
            if sex != "unknown" {
                patient["gender"] = json!(sex);
            }
            if *over_89 {
                patient["extension"] = json!([{
                    "url": "urn:medledger:safe-harbor-age-group", "valueString": "90+"
                }]);
            } else if year != "unknown" {
                patient["birthDate"] = json!(year);
            }
            if zip != "unknown" {
                patient["address"] = json!([{ "postalCode": zip }]);
            }
            out.files.entry("Patient".into()).or_default().push(patient);
            let age_cap = over_89.then_some(90);
            for (n, r) in s.resources.iter().enumerate() {
                let Some(kind) = r["resourceType"].as_str() else {
                    continue;
                };
                if !data.iter().any(|d| d == kind) {
                    continue;
                }
                let rid = pseudonym(study_key, format!("{}/{n}", s.patient).as_bytes());
                match rebuild(r, rid, &id, age_cap) {
                    Some(clean) => out.files.entry(kind.into()).or_default().push(clean),
                    None => out.suppressed.uncoded_resources += 1,
                }
            }
            out.included.push(s.patient);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(n: u8, born: &str, gender: &str, zip: &str) -> Subject {
        Subject {
            patient: Address::repeat_byte(n),
            date_of_birth: None,
            resources: vec![
                json!({"resourceType": "Patient", "id": "src-7", "gender": gender,
                    "birthDate": born, "name": [{"family": "Dummett", "given": ["Ives"]}],
                    "telecom": [{"system": "phone", "value": "+1 555 0100"}],
                    "identifier": [{"system": "urn:mrn", "value": "MRN-123"}],
                    "address": [{"line": ["1 Main St"], "city": "Springfield", "postalCode": zip}]}),
                json!({"resourceType": "Observation", "id": "obs-src-1", "status": "final",
                    "identifier": [{"value": "LAB-99"}],
                    "text": {"status": "generated", "div": "<div>Ives Dummett Hb</div>"},
                    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}], "text": "Hb typed by Dr Who"},
                    "subject": {"reference": "urn:uuid:p"}, "performer": [{"reference": "urn:uuid:dr", "display": "Dr Who"}],
                    "effectiveDateTime": "2026-03-04T09:10:00Z", "issued": "2026-03-04T10:00:00Z",
                    "valueQuantity": {"value": 10.9, "unit": "g/dL"},
                    "note": [{"text": "patient Ives called on 555-0100"}]}),
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "Smoking, said never"},
                    "valueString": "never smoked, lives at 1 Main St"}),
                json!({"resourceType": "DocumentReference", "status": "current"}),
            ],
        }
    }

    #[test]
    fn nothing_identifying_survives_and_small_groups_are_suppressed() {
        let rules = SafeHarbor::default();
        let key = [7u8; 32];
        let mut subjects: Vec<Subject> = (1..=5)
            .map(|n| subject(n, "1961-06-03", "female", "02139"))
            .collect();
        subjects.push(subject(9, "1980-01-01", "male", "03601"));
        let data = vec!["Observation".to_string(), "Condition".to_string()];
        let out = deidentify(&subjects, &data, &key, &rules, 2026);
        assert_eq!(out.included.len(), 5);
        assert_eq!(out.suppressed.small_group_patients, 1, "the lone man");
        assert_eq!(out.suppressed.small_group_resources, 2);
        assert_eq!(
            out.suppressed.uncoded_resources, 5,
            "free-text-only observations"
        );
        assert_eq!(out.files["Patient"].len(), 5);
        assert_eq!(out.files["Observation"].len(), 5);
        assert!(!out.files.contains_key("DocumentReference"));
        let text = serde_json::to_string(&out.files).unwrap();
        for needle in [
            "Dummett",
            "Ives",
            "555",
            "MRN",
            "LAB-99",
            "Main St",
            "Springfield",
            "02139",
            "1961-06",
            "2026-03",
            "src-7",
            "obs-src",
            "urn:uuid",
            "Dr Who",
            "typed",
            "div",
        ] {
            assert!(!text.contains(needle), "{needle} survived: {text}");
        }
        let patient = &out.files["Patient"][0];
        assert_eq!(patient["birthDate"], "1961");
        assert_eq!(patient["address"][0]["postalCode"], "021");
        let obs = &out.files["Observation"][0];
        assert_eq!(obs["effectiveDateTime"], "2026");
        assert_eq!(
            obs["subject"]["reference"],
            format!("Patient/{}", patient["id"].as_str().unwrap())
        );
        assert_eq!(obs["valueQuantity"]["value"], 10.9);
        assert!(obs.get("issued").is_none());
    }

    #[test]
    fn restricted_zips_become_000_and_the_very_old_90_plus() {
        let rules = SafeHarbor::from_table("# test\n036\n", 2).unwrap();
        let subjects: Vec<Subject> = (1..=2)
            .map(|n| subject(n, "1930-05-05", "male", "03601"))
            .collect();
        let out = deidentify(&subjects, &["Observation".into()], &[1; 32], &rules, 2026);
        assert_eq!(out.included.len(), 2);
        let patient = &out.files["Patient"][0];
        assert_eq!(patient["address"][0]["postalCode"], "000");
        assert!(patient.get("birthDate").is_none());
        assert_eq!(patient["extension"][0]["valueString"], "90+");
        assert!(
            out.groups
                .contains_key(&("90+".into(), "male".into(), "000".into()))
        );
        assert!(SafeHarbor::from_table("0361\n", 5).is_err());
        assert!(SafeHarbor::from_table("036\n", 1).is_err());
    }

    #[test]
    fn pseudonyms_are_stable_within_a_study_and_differ_across_studies() {
        let a = Address::repeat_byte(3);
        assert_eq!(
            pseudonym(&[1; 32], a.as_slice()),
            pseudonym(&[1; 32], a.as_slice())
        );
        assert_ne!(
            pseudonym(&[1; 32], a.as_slice()),
            pseudonym(&[2; 32], a.as_slice())
        );
        assert_eq!(pseudonym(&[1; 32], a.as_slice()).len(), 32);
    }
}
