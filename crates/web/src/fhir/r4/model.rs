//! The part of FHIR R4 (4.0.1) that medledger writes, as typed structs: the datatypes it uses and
//! the resources it serves. Absent elements are left out (FHIR forbids `null` and empty arrays);
//! the test suite validates every answer against HL7's own JSON schema.

use serde::Serialize;
use serde_json::Value;

fn none<T>(v: &Option<T>) -> bool {
    v.is_none()
}

fn empty<T>(v: &[T]) -> bool {
    v.is_empty()
}

#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Coding {
    #[serde(skip_serializing_if = "none")]
    pub system: Option<&'static str>,
    pub code: String,
    #[serde(skip_serializing_if = "none")]
    pub display: Option<String>,
}

impl Coding {
    pub(crate) fn new(system: &'static str, code: impl Into<String>, display: &str) -> Coding {
        Coding {
            system: Some(system),
            code: code.into(),
            display: (!display.is_empty()).then(|| display.to_string()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct CodeableConcept {
    #[serde(skip_serializing_if = "empty")]
    pub coding: Vec<Coding>,
    #[serde(skip_serializing_if = "none")]
    pub text: Option<String>,
}

impl CodeableConcept {
    pub(crate) fn coded(coding: Coding) -> CodeableConcept {
        CodeableConcept {
            coding: vec![coding],
            text: None,
        }
    }

    pub(crate) fn text(text: impl Into<String>) -> CodeableConcept {
        CodeableConcept {
            coding: Vec::new(),
            text: Some(text.into()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Identifier {
    pub system: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Reference {
    #[serde(skip_serializing_if = "none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "none")]
    pub identifier: Option<Identifier>,
    #[serde(skip_serializing_if = "none")]
    pub display: Option<String>,
}

impl Reference {
    pub(crate) fn to(resource: &str, id: &str) -> Reference {
        Reference {
            reference: Some(format!("{resource}/{id}")),
            ..Reference::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Period {
    #[serde(skip_serializing_if = "none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "none")]
    pub end: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct HumanName {
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ContactPoint {
    pub system: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct AddressPart {
    #[serde(skip_serializing_if = "none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "none")]
    pub city: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Annotation {
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Meta {
    #[serde(rename = "lastUpdated", skip_serializing_if = "none")]
    pub last_updated: Option<String>,
}

/// A Patient: the patient's sealed profile, as much of it as the chain lets the reader see.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Patient {
    pub id: String,
    pub identifier: Vec<Identifier>,
    pub active: bool,
    #[serde(skip_serializing_if = "empty")]
    pub name: Vec<HumanName>,
    #[serde(skip_serializing_if = "empty")]
    pub telecom: Vec<ContactPoint>,
    #[serde(skip_serializing_if = "none")]
    pub birth_date: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Practitioner {
    pub id: String,
    pub identifier: Vec<Identifier>,
    pub active: bool,
    #[serde(skip_serializing_if = "empty")]
    pub name: Vec<HumanName>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PractitionerRole {
    pub id: String,
    pub active: bool,
    pub practitioner: Reference,
    pub organization: Reference,
    #[serde(skip_serializing_if = "empty")]
    pub specialty: Vec<CodeableConcept>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Organization {
    pub id: String,
    pub identifier: Vec<Identifier>,
    pub active: bool,
    pub name: String,
    #[serde(skip_serializing_if = "empty")]
    pub telecom: Vec<ContactPoint>,
    #[serde(skip_serializing_if = "empty")]
    pub address: Vec<AddressPart>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attachment {
    #[serde(skip_serializing_if = "none")]
    pub content_type: Option<String>,
    pub url: String,
    #[serde(skip_serializing_if = "none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "none")]
    pub creation: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Content {
    pub attachment: Attachment,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DocumentReference {
    pub id: String,
    pub meta: Meta,
    pub master_identifier: Identifier,
    pub identifier: Vec<Identifier>,
    pub status: &'static str,
    #[serde(rename = "type")]
    pub kind: CodeableConcept,
    pub subject: Reference,
    pub date: String,
    pub author: Vec<Reference>,
    #[serde(skip_serializing_if = "none")]
    pub description: Option<String>,
    pub content: Vec<Content>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Dosage {
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MedicationRequest {
    pub id: String,
    pub identifier: Vec<Identifier>,
    pub group_identifier: Identifier,
    pub status: &'static str,
    pub intent: &'static str,
    pub medication_codeable_concept: CodeableConcept,
    pub subject: Reference,
    pub authored_on: String,
    pub requester: Reference,
    #[serde(skip_serializing_if = "empty")]
    pub dosage_instruction: Vec<Dosage>,
    #[serde(skip_serializing_if = "empty")]
    pub note: Vec<Annotation>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConsentActor {
    pub role: CodeableConcept,
    pub reference: Reference,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConsentData {
    pub meaning: &'static str,
    pub reference: Reference,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Provision {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub period: Period,
    pub actor: Vec<ConsentActor>,
    pub purpose: Vec<Coding>,
    #[serde(skip_serializing_if = "empty")]
    pub code: Vec<CodeableConcept>,
    #[serde(skip_serializing_if = "empty")]
    pub data: Vec<ConsentData>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Consent {
    pub id: String,
    pub identifier: Vec<Identifier>,
    pub status: &'static str,
    pub scope: CodeableConcept,
    pub category: Vec<CodeableConcept>,
    pub patient: Reference,
    pub policy_rule: CodeableConcept,
    pub provision: Provision,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuditAgent {
    pub who: Reference,
    pub requestor: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuditSource {
    pub observer: Reference,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuditEntity {
    pub what: Reference,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: Coding,
    pub subtype: Vec<Coding>,
    pub action: &'static str,
    pub recorded: String,
    pub outcome: &'static str,
    pub outcome_desc: String,
    pub purpose_of_event: Vec<CodeableConcept>,
    pub agent: Vec<AuditAgent>,
    pub source: AuditSource,
    pub entity: Vec<AuditEntity>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProvenanceAgent {
    #[serde(rename = "type")]
    pub kind: CodeableConcept,
    pub who: Reference,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProvenanceEntity {
    pub role: &'static str,
    pub what: Reference,
}

/// Where an anchored resource comes from: who wrote it, when, and the transaction that anchors
/// it on chain.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Provenance {
    pub id: String,
    pub target: Vec<Reference>,
    pub recorded: String,
    pub activity: CodeableConcept,
    pub agent: Vec<ProvenanceAgent>,
    pub entity: Vec<ProvenanceEntity>,
}

/// A resource: its type's name and its id.
pub(crate) trait Resource: Serialize {
    const TYPE: &'static str;
    fn id(&self) -> &str;

    /// Its JSON, with `resourceType`.
    fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("resourceType".into(), Value::String(Self::TYPE.into()));
        }
        value
    }
}

macro_rules! resources {
    ($($ty:ident),*) => {$(
        impl Resource for $ty {
            const TYPE: &'static str = stringify!($ty);
            fn id(&self) -> &str {
                &self.id
            }
        }
    )*};
}

resources!(
    Patient,
    Practitioner,
    PractitionerRole,
    Organization,
    DocumentReference,
    MedicationRequest,
    Consent,
    AuditEvent,
    Provenance
);
