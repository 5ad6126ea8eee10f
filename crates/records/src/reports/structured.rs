//! The structured content of a report that is a FHIR R4 Bundle: checked against R4's rules
//! before anything is stored (a clear 422 naming the first problems otherwise), then kept, sealed
//! under the report's key like its metadata, as the list of the bundle's resources, which the
//! FHIR API serves and searches for whoever the chain lets see the report.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RecordRow, Whose, resources_aad};
use crate::{
    access::Allowed,
    disclosure::{Logged, Unlogged},
    error::{Error, Kind, Result},
    model::{Purpose, RecordKind, Role},
    person::Person,
    reports::Reports,
    store::records::Records as RecordsTable,
};

/// One resource of an imported bundle, as it was in the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's `fullUrl`, which the bundle's references use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_url: Option<String>,
    pub resource: Value,
}

impl Entry {
    pub fn resource_type(&self) -> &str {
        self.resource["resourceType"].as_str().unwrap_or_default()
    }
}

/// How many problems a refusal names.
const SHOWN_PROBLEMS: usize = 5;
/// Past this many entries a bundle is refused (a report is one person's, not a data dump).
const MAX_ENTRIES: usize = 10_000;

/// The resource types of R4 (4.0.1), as HL7's JSON schema lists them.
const R4_TYPES: [&str; 146] = [
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// An element R4 requires (cardinality 1..), and the codes it admits where it is a required
/// binding (empty: any value). A name ending in `[x]` is a choice: one of its typed forms.
type Rule = (&'static str, &'static [&'static str]);

const OBSERVATION_STATUS: &[&str] = &[
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
];
const REPORT_STATUS: &[&str] = &[
    "registered",
    "partial",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "appended",
    "cancelled",
    "entered-in-error",
    "unknown",
];
const ENCOUNTER_STATUS: &[&str] = &[
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
];
const REQUEST_STATUS: &[&str] = &[
    "active",
    "on-hold",
    "cancelled",
    "completed",
    "entered-in-error",
    "stopped",
    "draft",
    "unknown",
];
const REQUEST_INTENT: &[&str] = &[
    "proposal",
    "plan",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
];
const STATEMENT_STATUS: &[&str] = &[
    "active",
    "completed",
    "entered-in-error",
    "intended",
    "stopped",
    "on-hold",
    "unknown",
    "not-taken",
];
const EVENT_STATUS: &[&str] = &[
    "preparation",
    "in-progress",
    "not-done",
    "on-hold",
    "stopped",
    "completed",
    "entered-in-error",
    "unknown",
];
const IMMUNIZATION_STATUS: &[&str] = &["completed", "entered-in-error", "not-done"];
const CARE_PLAN_STATUS: &[&str] = &[
    "draft",
    "active",
    "on-hold",
    "revoked",
    "completed",
    "entered-in-error",
    "unknown",
];
const CARE_PLAN_INTENT: &[&str] = &["proposal", "plan", "order", "option"];
const GENDER: &[&str] = &["male", "female", "other", "unknown"];

/// R4's required elements of the resources a health record holds most.
fn rules(resource_type: &str) -> &'static [Rule] {
    match resource_type {
        "Observation" => &[("status", OBSERVATION_STATUS), ("code", &[])],
        "DiagnosticReport" => &[("status", REPORT_STATUS), ("code", &[])],
        "Encounter" => &[("status", ENCOUNTER_STATUS), ("class", &[])],
        "Condition" => &[("subject", &[])],
        "MedicationRequest" => &[
            ("status", REQUEST_STATUS),
            ("intent", REQUEST_INTENT),
            ("subject", &[]),
            ("medication[x]", &[]),
        ],
        "MedicationStatement" => &[
            ("status", STATEMENT_STATUS),
            ("subject", &[]),
            ("medication[x]", &[]),
        ],
        "Procedure" => &[("status", EVENT_STATUS), ("subject", &[])],
        "Immunization" => &[
            ("status", IMMUNIZATION_STATUS),
            ("vaccineCode", &[]),
            ("patient", &[]),
            ("occurrence[x]", &[]),
        ],
        "AllergyIntolerance" => &[("patient", &[])],
        "CarePlan" => &[
            ("status", CARE_PLAN_STATUS),
            ("intent", CARE_PLAN_INTENT),
            ("subject", &[]),
        ],
        _ => &[],
    }
}

/// Whether `s` is an R4 `date` or `dateTime`: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, or a full time
/// with seconds and a zone (`2026-01-01T09:00:00Z`, `…+02:00`, fractions allowed).
pub fn is_fhir_datetime(s: &str) -> bool {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = date.split('-').collect();
    let date_ok = match parts.as_slice() {
        [y] => digits(y, 4),
        [y, m] => digits(y, 4) && digits(m, 2) && in_range(m, 1, 12),
        [y, m, d] => {
            digits(y, 4) && digits(m, 2) && digits(d, 2) && in_range(m, 1, 12) && in_range(d, 1, 31)
        }
        _ => false,
    };
    let Some(time) = time else {
        return date_ok;
    };
    if parts.len() != 3 || !date_ok {
        return false;
    }
    let (clock, zone) = if let Some(t) = time.strip_suffix('Z') {
        (t, "Z")
    } else if let Some(i) = time.rfind(['+', '-']) {
        (&time[..i], &time[i..])
    } else {
        return false;
    };
    let zone_ok = zone == "Z" || {
        let z = &zone[1..];
        z.len() == 5 && z.as_bytes()[2] == b':' && digits(&z[..2], 2) && digits(&z[3..], 2)
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((h, f)) => (h, Some(f)),
        None => (clock, None),
    };
    let hms: Vec<&str> = hms.split(':').collect();
    zone_ok
        && matches!(hms.as_slice(), [h, m, s] if digits(h, 2) && digits(m, 2) && digits(s, 2)
            && in_range(h, 0, 23) && in_range(m, 0, 59) && in_range(s, 0, 60))
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

fn in_range(s: &str, low: u32, high: u32) -> bool {
    s.parse::<u32>().is_ok_and(|n| (low..=high).contains(&n))
}

fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The elements whose values are R4 dates or dateTimes, wherever they appear.
fn is_date_element(name: &str) -> bool {
    name.ends_with("DateTime")
        || name.ends_with("Date")
        || matches!(
            name,
            "issued" | "authoredOn" | "start" | "end" | "recorded" | "lastUpdated" | "date"
        )
}

/// Collects what breaks R4's rules in `resource` at `path`.
fn check_resource(path: &str, resource: &Value, problems: &mut Vec<String>) {
    let Some(object) = resource.as_object() else {
        problems.push(format!("{path}: a resource is a JSON object"));
        return;
    };
    let Some(kind) = object.get("resourceType").and_then(Value::as_str) else {
        problems.push(format!("{path}: resourceType is required"));
        return;
    };
    if !R4_TYPES.contains(&kind) {
        problems.push(format!("{path}: {kind:?} is not an R4 resource type"));
        return;
    }
    let path = format!("{path} ({kind})");
    if let Some(id) = object.get("id")
        && !id.as_str().is_some_and(is_fhir_id)
    {
        problems.push(format!(
            "{path}: id must be 1 to 64 letters, digits, '-' or '.'"
        ));
    }
    for (element, codes) in rules(kind) {
        let value = match element.strip_suffix("[x]") {
            Some(stem) => object
                .iter()
                .find(|(k, v)| {
                    k.strip_prefix(stem)
                        .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))
                        && !v.is_null()
                })
                .map(|(_, v)| v),
            None => object.get(*element).filter(|v| !v.is_null()),
        };
        match value {
            None => problems.push(format!("{path}: {element} is required")),
            Some(v) if !codes.is_empty() => {
                if !v.as_str().is_some_and(|c| codes.contains(&c)) {
                    problems.push(format!(
                        "{path}: {element} must be one of {}",
                        codes.join(", ")
                    ));
                }
            }
            Some(_) => {}
        }
    }
    if kind == "Patient"
        && let Some(gender) = object.get("gender")
        && !gender.as_str().is_some_and(|g| GENDER.contains(&g))
    {
        problems.push(format!(
            "{path}: gender must be one of {}",
            GENDER.join(", ")
        ));
    }
    check_values(&path, resource, problems);
}

/// Dates, quantities and references anywhere in a resource (not inside a nested resource's
/// own rules, which `check_resource` applies).
fn check_values(path: &str, value: &Value, problems: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (name, v) in object {
                if name == "div" {
                    continue;
                }
                if is_date_element(name)
                    && let Some(s) = v.as_str()
                    && !is_fhir_datetime(s)
                {
                    problems.push(format!(
                        "{path}: {name} {s:?} is not an R4 date or dateTime (such as 2026-01-31 or 2026-01-31T09:00:00Z)"
                    ));
                }
                if name.starts_with("value")
                    && name.ends_with("Quantity")
                    && let Some(q) = v.as_object()
                    && q.get("value").is_some_and(|n| !n.is_number())
                {
                    problems.push(format!("{path}: {name}.value must be a number"));
                }
                if name == "reference" && !v.is_string() {
                    problems.push(format!("{path}: a reference is a string"));
                }
                if name == "contained"
                    && let Some(list) = v.as_array()
                {
                    for (i, inner) in list.iter().enumerate() {
                        check_resource(&format!("{path}.contained[{i}]"), inner, problems);
                    }
                    continue;
                }
                check_values(path, v, problems);
            }
        }
        Value::Array(list) => {
            for v in list {
                check_values(path, v, problems);
            }
        }
        _ => {}
    }
}

/// The resources of `bundle`, a FHIR Bundle shared as a report, if it meets R4's rules and is one
/// that can be imported (a collection or a transaction, about one patient); a 422 naming the
/// first problems otherwise.
pub fn bundle_entries(bundle: &Value) -> Result<Vec<Entry>> {
    let refuse = |problems: Vec<String>| {
        let shown: Vec<&str> = problems
            .iter()
            .take(SHOWN_PROBLEMS)
            .map(String::as_str)
            .collect();
        let more = problems.len().saturating_sub(SHOWN_PROBLEMS);
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        Err(Error::new(
            Kind::Unprocessable,
            format!(
                "this FHIR Bundle is not valid R4, nothing was stored: {}{tail}",
                shown.join("; ")
            ),
        )
        .on("file"))
    };
    let kind = bundle["type"].as_str().unwrap_or_default();
    if !matches!(kind, "collection" | "transaction") {
        let what = if kind.is_empty() {
            "a Bundle without a type".to_string()
        } else {
            format!("a Bundle of type {kind:?}")
        };
        return refuse(vec![format!(
            "{what} cannot be imported: share a collection or a transaction bundle"
        )]);
    }
    let Some(entries) = bundle["entry"].as_array() else {
        return refuse(vec!["the Bundle has no entry list".into()]);
    };
    if entries.is_empty() {
        return refuse(vec!["the Bundle's entry list is empty".into()]);
    }
    if entries.len() > MAX_ENTRIES {
        return refuse(vec![format!(
            "the Bundle has {} entries, more than the {MAX_ENTRIES} a report may hold",
            entries.len()
        )]);
    }
    let mut problems = Vec::new();
    let mut urls = HashSet::new();
    let mut patients = 0;
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("entry[{i}]");
        let Some(resource) = entry.get("resource") else {
            problems.push(format!("{path}: resource is required"));
            continue;
        };
        check_resource(&path, resource, &mut problems);
        if resource["resourceType"] == "Bundle" {
            problems.push(format!(
                "{path}: a Bundle inside a Bundle cannot be imported"
            ));
        }
        if resource["resourceType"] == "Patient" {
            patients += 1;
        }
        let full_url = match entry.get("fullUrl") {
            None => None,
            Some(Value::String(u)) => {
                if !urls.insert(u.clone()) {
                    problems.push(format!("{path}: fullUrl {u:?} appears twice"));
                }
                Some(u.clone())
            }
            Some(_) => {
                problems.push(format!("{path}: fullUrl is a string"));
                None
            }
        };
        if kind == "transaction" {
            let method = entry["request"]["method"].as_str();
            if !method
                .is_some_and(|m| ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"].contains(&m))
            {
                problems.push(format!(
                    "{path}: a transaction entry needs request.method (GET, HEAD, POST, PUT, DELETE or PATCH)"
                ));
            }
            if !entry["request"]["url"].is_string() {
                problems.push(format!("{path}: a transaction entry needs request.url"));
            }
        }
        out.push(Entry {
            full_url,
            resource: resource.clone(),
        });
    }
    if patients > 1 {
        problems.push(format!(
            "a report is about one patient, and this Bundle holds {patients} Patient resources"
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        refuse(problems)
    }
}

/// How many resources of each type `entries` holds.
pub fn count_by_type(entries: &[Entry]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for e in entries {
        *counts.entry(e.resource_type().to_string()).or_default() += 1;
    }
    counts
}

/// One resource of a report's structured content, as shown to a reader the chain allows.
#[derive(Debug, Clone)]
pub struct Clinical {
    /// The report it came in.
    pub record: B256,
    pub patient: Address,
    /// Its place in the bundle, from 1.
    pub index: usize,
    pub resource: Value,
    /// What the bundle's references name: each entry's `fullUrl` (and `Type/id`) to its type and
    /// place, so a reader can follow them.
    pub targets: Arc<HashMap<String, (String, usize)>>,
}

fn targets_of(entries: &[Entry]) -> HashMap<String, (String, usize)> {
    let mut targets = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let target = (e.resource_type().to_string(), i + 1);
        if let Some(url) = &e.full_url {
            targets.insert(url.clone(), target.clone());
        }
        if let Some(id) = e.resource["id"].as_str() {
            targets.insert(format!("{}/{id}", e.resource_type()), target);
        }
    }
    targets
}

/// Parses opened structured content.
pub(crate) fn entries_of(plain: Vec<u8>) -> Result<Vec<Entry>> {
    serde_json::from_slice(&plain).map_err(|e| Error::internal("resources", e))
}

/// A bundle's entries as the resources a reader is shown.
fn clinical(row: &RecordRow, entries: Vec<Entry>) -> Vec<Clinical> {
    let targets = Arc::new(targets_of(&entries));
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| Clinical {
            record: row.id,
            patient: row.patient,
            index: i + 1,
            resource: e.resource,
            targets: targets.clone(),
        })
        .collect()
}

impl Reports {
    /// The structured content of `row`, opened with the key `allowed` unlocks, still to be
    /// logged; nothing when the reader has no key, or when the row's sealed content is not what
    /// the chain anchors (an altered bundle shows nothing).
    async fn clinical_of(
        &self,
        reader: &Person,
        row: &RecordRow,
        allowed: &Allowed,
    ) -> Result<Unlogged<Vec<Clinical>>> {
        let Some(sealed) = &row.resources else {
            return Ok(Unlogged::nothing(Vec::new()));
        };
        let (checked, _) = self.anchors.check_record(row, false).await?;
        if !checked.details {
            return Ok(Unlogged::nothing(Vec::new()));
        }
        let Some(key) = self
            .keyring
            .as_ref()
            .unlock(crate::store::wraps::Wraps(&self.db), reader, allowed)
            .await?
        else {
            return Ok(Unlogged::nothing(Vec::new()));
        };
        key.open(&resources_aad(&row.id), sealed)?
            .and_then(|plain| Ok(clinical(row, entries_of(plain)?)))
    }

    /// One page of the resources of `patient`'s imported bundles that `reader` may see now (the
    /// patient their own, a doctor those of the reports the chain allows them), those `keep`
    /// accepts, `skip` then at most `take`, and how many were kept in all. The search looks into
    /// every bundle the reader may open, so every one of them is logged on chain as viewed
    /// before anything is returned — a page, an empty page or a total alike — and the patient's
    /// log says what was searched (`searched`, e.g. "conditions").
    #[allow(clippy::too_many_arguments)]
    pub async fn clinical_page(
        &self,
        reader: &Person,
        patient: Address,
        purpose: Purpose,
        searched: &'static str,
        keep: impl Fn(&Clinical) -> bool,
        skip: usize,
        take: usize,
    ) -> Result<(usize, Vec<Clinical>)> {
        match reader.role {
            Role::Patient if reader.address != patient => {
                return Err(Error::forbidden("a patient sees only their own records"));
            }
            Role::Patient => {}
            _ => self.people.require_active_doctor(reader).await?,
        }
        let mut looked_into = Unlogged::nothing(Vec::new());
        for row in self.record_rows(Whose::Patient, patient).await? {
            if row.kind == RecordKind::Prescription || row.resources.is_none() {
                continue;
            }
            let Some(allowed) = self.access.record_allowed(reader, &row, purpose).await? else {
                continue;
            };
            looked_into.push(self.clinical_of(reader, &row, &allowed).await?);
        }
        let found = looked_into.map(|bundles| {
            let kept: Vec<Clinical> = bundles.into_iter().flatten().filter(|c| keep(c)).collect();
            let total = kept.len();
            (total, kept.into_iter().skip(skip).take(take).collect())
        });
        Ok(self
            .readlog
            .disclose(reader, found, purpose, Logged::Searched(searched))
            .await?
            .into_inner())
    }

    /// One resource of an imported bundle: the report whose id begins with `record_prefix`
    /// (hex, without 0x), its `index`th resource; logged on chain as viewed first.
    pub async fn clinical_resource(
        &self,
        reader: &Person,
        record_prefix: &str,
        index: usize,
        purpose: Purpose,
    ) -> Result<Clinical> {
        let missing = || Error::not_found("there is no such resource that you may see");
        if record_prefix.is_empty() || !record_prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(missing());
        }
        let id = RecordsTable(&self.db)
            .bundle_by_prefix(&record_prefix.to_lowercase())
            .await?
            .ok_or_else(missing)?;
        let row = self.record_row(&id).await?;
        if reader.role == Role::Doctor {
            self.people.require_active_doctor(reader).await?;
        }
        let allowed = self
            .access
            .record_allowed(reader, &row, purpose)
            .await?
            .ok_or_else(missing)?;
        let found = self
            .clinical_of(reader, &row, &allowed)
            .await?
            .map(|all| all.into_iter().find(|c| c.index == index))
            .transpose()
            .ok_or_else(missing)?;
        Ok(self
            .readlog
            .disclose(reader, found, purpose, Logged::Viewed)
            .await?
            .into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(entries: Value) -> Value {
        json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
    }

    fn refusal(b: &Value) -> String {
        let e = bundle_entries(b).unwrap_err();
        assert_eq!(e.kind, Kind::Unprocessable);
        e.message
    }

    #[test]
    fn dates_follow_r4() {
        for ok in [
            "2026",
            "2026-01",
            "2026-01-31",
            "2026-01-01T09:00:00Z",
            "2026-01-01T09:00:00.123+02:00",
        ] {
            assert!(is_fhir_datetime(ok), "{ok}");
        }
        for bad in [
            "",
            "26-01-01",
            "2026-13-01",
            "2026-01-01T09:00Z",
            "2026-01-01T09:00:00",
            "01/02/2026",
            "2026-01-01T25:00:00Z",
        ] {
            assert!(!is_fhir_datetime(bad), "{bad}");
        }
    }

    #[test]
    fn a_valid_bundle_gives_its_resources_in_order() {
        let b = bundle(json!([
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "gender": "female"}},
            {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Observation", "status": "final",
              "code": {"text": "Hb"}, "subject": {"reference": "urn:uuid:1"},
              "effectiveDateTime": "2026-01-01T09:00:00Z", "valueQuantity": {"value": 13.1}}},
        ]));
        let entries = bundle_entries(&b).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].resource_type(), "Observation");
        assert_eq!(entries[0].full_url.as_deref(), Some("urn:uuid:1"));
        assert_eq!(count_by_type(&entries)["Observation"], 1);
    }

    #[test]
    fn problems_are_named() {
        let m = refusal(&bundle(json!([
            {"resource": {"resourceType": "Observation", "code": {"text": "Hb"}}},
            {"resource": {"resourceType": "Observation", "status": "done", "code": {}}},
            {"resource": {"resourceType": "Vital"}},
            {"resource": {"resourceType": "Condition", "subject": {"reference": "x"},
              "onsetDateTime": "01/02/2026"}},
        ])));
        assert!(
            m.contains("entry[0] (Observation): status is required"),
            "{m}"
        );
        assert!(
            m.contains("entry[1] (Observation): status must be one of"),
            "{m}"
        );
        assert!(
            m.contains("entry[2]: \"Vital\" is not an R4 resource type"),
            "{m}"
        );
        assert!(m.contains("onsetDateTime \"01/02/2026\""), "{m}");
        let m = refusal(&bundle(json!([
            {"resource": {"resourceType": "MedicationStatement", "status": "active",
              "subject": {"reference": "x"}}},
        ])));
        assert!(m.contains("medication[x] is required"), "{m}");
    }

    #[test]
    fn only_collections_and_transactions_of_one_patient() {
        let m = refusal(&json!({"resourceType": "Bundle", "type": "searchset", "entry": []}));
        assert!(m.contains("type \"searchset\" cannot be imported"), "{m}");
        assert!(refusal(&bundle(json!([]))).contains("empty"));
        let m = refusal(&bundle(json!([
            {"resource": {"resourceType": "Patient"}},
            {"resource": {"resourceType": "Patient"}},
        ])));
        assert!(m.contains("holds 2 Patient resources"), "{m}");
        let m = refusal(&json!({"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": {"resourceType": "Patient"}}]}));
        assert!(m.contains("request.method"), "{m}");
        let many: Vec<Value> = (0..7)
            .map(|_| json!({"resource": {"resourceType": "Observation", "code": {"text": "Hb"}}}))
            .collect();
        let m = refusal(&bundle(Value::Array(many)));
        assert!(m.ends_with("(and 2 more)"), "{m}");
    }
}
