//! The resources of the FHIR Bundles patients shared as reports, as rules on plain values: the
//! types searched (each with the elements its date, code and status are read from), what a
//! search of them keeps, and how one is served here (its own id, its report as its source, and
//! the bundle's references rewritten to what this server serves).

use medledger_records::{Result, reports::structured::Clinical};
use serde_json::{Value, json};

use super::ids::{clinical_id, id_of};
use super::matching::{codings, date_matches, token_matches};
use super::search::Search;

/// A type of imported resource this server searches: its name, the elements that give its date
/// (the first present counts), the search parameter and element of its code, and the element
/// of its status (a code, or a CodeableConcept such as Condition's `clinicalStatus`).
pub(crate) struct ClinicalType {
    pub(crate) name: &'static str,
    /// What a search of it is called in the patient's log ("searched your conditions").
    pub(crate) words: &'static str,
    dates: &'static [&'static str],
    code: (&'static str, &'static str),
    status: &'static str,
    category: bool,
}

pub(crate) const CLINICAL: [ClinicalType; 10] = [
    ClinicalType {
        name: "Observation",
        words: "observations",
        dates: &[
            "effectiveDateTime",
            "effectivePeriod.start",
            "effectiveInstant",
            "issued",
        ],
        code: ("code", "code"),
        status: "status",
        category: true,
    },
    ClinicalType {
        name: "Condition",
        words: "conditions",
        dates: &["onsetDateTime", "onsetPeriod.start", "recordedDate"],
        code: ("code", "code"),
        status: "clinicalStatus",
        category: true,
    },
    ClinicalType {
        name: "MedicationStatement",
        words: "medications",
        dates: &["effectiveDateTime", "effectivePeriod.start", "dateAsserted"],
        code: ("code", "medicationCodeableConcept"),
        status: "status",
        category: true,
    },
    ClinicalType {
        name: "MedicationRequest",
        words: "medication requests",
        dates: &["authoredOn"],
        code: ("code", "medicationCodeableConcept"),
        status: "status",
        category: true,
    },
    ClinicalType {
        name: "Encounter",
        words: "encounters",
        dates: &["period.start"],
        code: ("type", "type"),
        status: "status",
        category: false,
    },
    ClinicalType {
        name: "DiagnosticReport",
        words: "diagnostic reports",
        dates: &["effectiveDateTime", "effectivePeriod.start", "issued"],
        code: ("code", "code"),
        status: "status",
        category: true,
    },
    ClinicalType {
        name: "Procedure",
        words: "procedures",
        dates: &["performedDateTime", "performedPeriod.start"],
        code: ("code", "code"),
        status: "status",
        category: true,
    },
    ClinicalType {
        name: "Immunization",
        words: "immunizations",
        dates: &["occurrenceDateTime"],
        code: ("vaccine-code", "vaccineCode"),
        status: "status",
        category: false,
    },
    ClinicalType {
        name: "AllergyIntolerance",
        words: "allergies",
        dates: &["onsetDateTime", "recordedDate"],
        code: ("code", "code"),
        status: "clinicalStatus",
        category: true,
    },
    ClinicalType {
        name: "CarePlan",
        words: "care plans",
        dates: &["period.start", "created"],
        code: ("category", "category"),
        status: "status",
        category: false,
    },
];

pub(crate) fn clinical_type(name: &str) -> Option<&'static ClinicalType> {
    CLINICAL.iter().find(|t| t.name == name)
}

impl ClinicalType {
    /// Its search parameters (name, type) besides `_count` and `_offset`.
    pub(crate) fn params(&self) -> Vec<(&'static str, &'static str)> {
        let mut params = vec![
            ("_id", "token"),
            ("patient", "reference"),
            ("date", "date"),
            (self.code.0, "token"),
            ("status", "token"),
        ];
        if self.category && self.code.0 != "category" {
            params.push(("category", "token"));
        }
        if self.name == "MedicationRequest" {
            params.push(("authoredon", "date"));
        }
        params
    }

    fn date_of<'a>(&self, r: &'a Value) -> Option<&'a str> {
        self.dates.iter().find_map(|path| {
            path.split('.')
                .try_fold(r, |v, step| v.get(step))
                .and_then(Value::as_str)
        })
    }

    fn status_of<'a>(&self, r: &'a Value) -> Option<&'a str> {
        let status = &r[self.status];
        status
            .as_str()
            .or_else(|| status["coding"][0]["code"].as_str())
    }
}

/// An imported resource as this server serves it: its own id, the report it came in as its
/// source, and references that lead somewhere here (the bundle's patient is the patient; a
/// resource of a type not served here keeps only a display).
pub(crate) fn served(c: &Clinical) -> Value {
    let mut r = c.resource.clone();
    r["id"] = json!(clinical_id(&c.record, c.index));
    if !r["meta"].is_object() {
        r["meta"] = json!({});
    }
    r["meta"]["source"] = json!(format!("urn:medledger:record:{}", c.record));
    rewrite(&mut r, c);
    r
}

fn rewrite(value: &mut Value, c: &Clinical) {
    match value {
        Value::Object(object) => {
            if let Some(target) = object
                .get("reference")
                .and_then(Value::as_str)
                .and_then(|r| c.targets.get(r))
            {
                let (kind, index) = target.clone();
                if kind == "Patient" {
                    object.insert(
                        "reference".into(),
                        json!(format!("Patient/{}", id_of(c.patient))),
                    );
                } else if clinical_type(&kind).is_some() {
                    object.insert(
                        "reference".into(),
                        json!(format!("{kind}/{}", clinical_id(&c.record, index))),
                    );
                } else {
                    object.remove("reference");
                    object
                        .entry("display")
                        .or_insert_with(|| json!(format!("a {kind} of the shared bundle")));
                }
            }
            for (name, v) in object.iter_mut() {
                if name != "contained" {
                    rewrite(v, c);
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(|v| rewrite(v, c)),
        _ => {}
    }
}

/// The filters of a search of imported resources of type `t`, checked before anything is read.
pub(crate) struct Filters<'a> {
    pub(crate) t: &'static ClinicalType,
    ids: Option<Vec<&'a str>>,
    dates: Vec<&'a str>,
    codes: &'a [String],
    statuses: &'a [String],
    categories: &'a [String],
}

impl<'a> Filters<'a> {
    pub(crate) fn of(t: &'static ClinicalType, search: &'a Search) -> Result<Filters<'a>> {
        let names: Vec<&str> = t.params().iter().map(|(n, _)| *n).collect();
        search.only(&names)?;
        let mut dates: Vec<&str> = search.all("date").iter().map(String::as_str).collect();
        dates.extend(search.all("authoredon").iter().map(String::as_str));
        for d in &dates {
            date_matches(d, "")?;
        }
        Ok(Filters {
            t,
            ids: search.one("_id")?.map(|ids| ids.split(',').collect()),
            dates,
            codes: search.all(t.code.0),
            statuses: search.all("status"),
            categories: search.all("category"),
        })
    }

    pub(crate) fn keep(&self, c: &Clinical) -> bool {
        self.keep_served(&clinical_id(&c.record, c.index), &c.resource)
    }

    /// Whether the resource `r`, served as `id`, passes the filters.
    pub(crate) fn keep_served(&self, id: &str, r: &Value) -> bool {
        if r["resourceType"] != self.t.name {
            return false;
        }
        let any_token = |filters: &[String], element: &Value| {
            let codes = codings(element);
            filters.iter().all(|f| {
                f.split(',').any(|f| {
                    codes
                        .iter()
                        .any(|(system, code)| token_matches(f, system, code))
                })
            })
        };
        self.ids.as_ref().is_none_or(|ids| ids.contains(&id))
            && self.dates.iter().all(|d| {
                self.t
                    .date_of(r)
                    .is_some_and(|v| date_matches(d, v).unwrap_or(false))
            })
            && any_token(self.codes, &r[self.t.code.1])
            && any_token(self.categories, &r["category"])
            && self.statuses.iter().all(|s| {
                self.t
                    .status_of(r)
                    .is_some_and(|v| s.split(',').any(|s| s == v))
            })
    }
}
