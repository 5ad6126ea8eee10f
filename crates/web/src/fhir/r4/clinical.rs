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

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_records::{Kind, primitives::Address, primitives::B256};
    use std::{collections::HashMap, sync::Arc};

    /// The resources the filters are tried on, by a short name.
    fn resource(name: &str) -> Value {
        match name {
            "observation" => json!({
                "resourceType": "Observation",
                "status": "final",
                "category": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "laboratory",
                }]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                "effectiveDateTime": "2024-03-15T09:30:00Z",
            }),
            "issued" => json!({"resourceType": "Observation", "issued": "2023-07-01T00:00:00Z"}),
            "undated" => json!({"resourceType": "Observation", "status": "final"}),
            "condition" => json!({
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
                "onsetDateTime": "2020-01-10",
                "recordedDate": "2021-05-01",
            }),
            other => panic!("no resource {other}"),
        }
    }

    #[test]
    fn a_search_keeps_the_resources_its_filters_all_match() {
        // (type searched, query, resource, whether it is kept); each is served as "ID".
        let rows = [
            ("Observation", "", "observation", true),
            ("Observation", "code=718-7", "observation", true),
            (
                "Observation",
                "code=http://loinc.org|718-7",
                "observation",
                true,
            ),
            ("Observation", "code=4548-4", "observation", false),
            ("Observation", "code=4548-4,718-7", "observation", true),
            (
                "Observation",
                "code=4548-4&code=718-7",
                "observation",
                false,
            ),
            ("Observation", "date=2024-03", "observation", true),
            ("Observation", "date=ge2024-04", "observation", false),
            (
                "Observation",
                "date=gt2024-03-14&date=lt2024-03-16",
                "observation",
                true,
            ),
            ("Observation", "date=2023", "issued", true),
            ("Observation", "date=2024", "issued", false),
            ("Observation", "date=2024", "undated", false),
            ("Observation", "status=final", "observation", true),
            (
                "Observation",
                "status=preliminary,final",
                "observation",
                true,
            ),
            ("Observation", "status=amended", "observation", false),
            ("Observation", "category=laboratory", "observation", true),
            ("Observation", "category=vital-signs", "observation", false),
            ("Observation", "_id=other,ID", "observation", true),
            ("Observation", "_id=other", "observation", false),
            ("Observation", "", "condition", false),
            ("Condition", "status=active", "condition", true),
            ("Condition", "date=2020", "condition", true),
            ("Condition", "date=2021", "condition", false),
        ];
        for (kind, query, name, kept) in rows {
            let search = Search::query(query);
            let filters = Filters::of(clinical_type(kind).unwrap(), &search).unwrap();
            let got = filters.keep_served("ID", &resource(name));
            assert_eq!(got, kept, "{kind}?{query} on {name}");
        }
    }

    #[test]
    fn a_search_with_a_filter_it_cannot_apply_is_refused_before_anything_is_read() {
        let unknown =
            |name: &str| format!("this server does not support the search parameter {name:?}");
        // (type searched, query, the refusal's start; none where it is accepted)
        let rows = [
            (
                "Observation",
                "value-quantity=5",
                Some(unknown("value-quantity")),
            ),
            (
                "Observation",
                "authoredon=2024",
                Some(unknown("authoredon")),
            ),
            ("MedicationRequest", "authoredon=ge2024", None),
            ("Immunization", "code=x", Some(unknown("code"))),
            ("Immunization", "vaccine-code=x", None),
            (
                "Condition",
                "date=2024-3",
                Some("\"2024-3\" is not a date search".into()),
            ),
            ("Observation", "_id=a&_id=b", Some("give _id once".into())),
        ];
        for (kind, query, refused) in rows {
            let search = Search::query(query);
            match (Filters::of(clinical_type(kind).unwrap(), &search), refused) {
                (Ok(_), None) => {}
                (Err(e), Some(says)) => {
                    assert_eq!(e.kind, Kind::Invalid);
                    assert!(
                        e.message.starts_with(&says),
                        "{kind}?{query}: {}",
                        e.message
                    );
                }
                (Ok(_), Some(_)) => panic!("{kind}?{query} was accepted"),
                (Err(e), None) => panic!("{kind}?{query}: {}", e.message),
            }
        }
    }

    #[test]
    fn a_served_resource_has_its_own_id_its_source_and_references_that_lead_here() {
        let targets: HashMap<String, (String, usize)> = [
            ("urn:uuid:p", "Patient", 1),
            ("urn:uuid:o2", "Observation", 3),
            ("urn:uuid:org", "Organization", 4),
        ]
        .into_iter()
        .map(|(url, kind, i)| (url.to_string(), (kind.to_string(), i)))
        .collect();
        let imported = Clinical {
            record: B256::repeat_byte(0x12),
            patient: Address::repeat_byte(0x34),
            index: 2,
            resource: json!({
                "resourceType": "Observation",
                "id": "obs-1",
                "meta": {"versionId": "4"},
                "subject": {"reference": "urn:uuid:p"},
                "hasMember": [{"reference": "urn:uuid:o2"}],
                "performer": [
                    {"reference": "urn:uuid:org"},
                    {"reference": "urn:uuid:org", "display": "Lab"},
                ],
                "basedOn": [{"reference": "ServiceRequest/elsewhere"}],
                "contained": [{"resourceType": "Observation", "subject": {"reference": "urn:uuid:p"}}],
            }),
            targets: Arc::new(targets),
        };
        let resource = served(&imported);
        let prefix = "12".repeat(28);
        // (JSON pointer, what is there; none where nothing is)
        let rows = [
            ("/id", Some(json!(format!("{prefix}-2")))),
            ("/meta/versionId", Some(json!("4"))),
            (
                "/meta/source",
                Some(json!(format!("urn:medledger:record:0x{}", "12".repeat(32)))),
            ),
            (
                "/subject/reference",
                Some(json!(format!("Patient/{}", "34".repeat(20)))),
            ),
            (
                "/hasMember/0/reference",
                Some(json!(format!("Observation/{prefix}-3"))),
            ),
            ("/performer/0/reference", None),
            (
                "/performer/0/display",
                Some(json!("a Organization of the shared bundle")),
            ),
            ("/performer/1/reference", None),
            ("/performer/1/display", Some(json!("Lab"))),
            (
                "/basedOn/0/reference",
                Some(json!("ServiceRequest/elsewhere")),
            ),
            ("/contained/0/subject/reference", Some(json!("urn:uuid:p"))),
        ];
        for (pointer, expected) in rows {
            assert_eq!(
                resource.pointer(pointer),
                expected.as_ref(),
                "{pointer}: {resource}"
            );
        }
    }
}
