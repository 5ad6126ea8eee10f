//! Each FHIR interaction this server supports: the domain's views, read through the same
//! `App` calls as the REST API (which check the chain and log what they show), written as R4
//! resources. The CapabilityStatement below lists exactly these.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use medledger_records::{
    Kind, Person,
    audit::{AccessEvent, Action},
    directory::{Doctor, Hospital},
    model::{Purpose, RecordKind, Role, Scope, rfc3339},
    primitives::{Address, B256},
    reports::{PrescriptionView, RecordView, parse_record_id},
    sharing::GrantView,
};
use serde_json::{Value, json};

use super::clinical::{self, CLINICAL, Filters, clinical_type};
use super::model::{
    AddressPart, Annotation, Attachment, AuditAgent, AuditEntity, AuditEvent, AuditSource,
    CodeableConcept, Coding, Consent, ConsentActor, ConsentData, ContactPoint, Content,
    DocumentReference, Dosage, HumanName, Identifier, MedicationRequest, Meta, Organization,
    Patient, Period, Practitioner, PractitionerRole, Provenance, ProvenanceAgent, ProvenanceEntity,
    Provision, Reference, Resource,
};
use super::{
    Fhir, FhirError, FhirResult, Pager, Reader, Search, account_id, base_url, id_of,
    reference_param, scopes_of, searchset,
};
use crate::ApiState;

/// The identifier systems of this server's own ids.
const ACCOUNT: &str = "urn:medledger:account";
const RECORD: &str = "urn:medledger:record";
const CONTENT_HASH: &str = "urn:medledger:content-hash";
const TRANSACTION: &str = "urn:medledger:transaction";
const GRANT: &str = "urn:medledger:grant";
const HOSPITAL: &str = "urn:medledger:hospital";
const LICENCE: &str = "urn:medledger:licence";
const PRESCRIPTION: &str = "urn:medledger:prescription";
const RECORD_KIND: &str = "urn:medledger:record-kind";
const ACCESS: &str = "urn:medledger:access";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// A resource type served: its name, its search parameters (name, type) besides `_count` and
/// `_offset`, and whether it is read by id.
type Served = (&'static str, &'static [Param], bool);

/// The types of this server's own data; the imported types (`clinical::CLINICAL`) come after.
const OWN: [Served; 10] = [
    ("Patient", &[("_id", "token")], true),
    (
        "Practitioner",
        &[("_id", "token"), ("name", "string")],
        true,
    ),
    (
        "PractitionerRole",
        &[
            ("_id", "token"),
            ("practitioner", "reference"),
            ("organization", "reference"),
        ],
        true,
    ),
    (
        "Organization",
        &[("_id", "token"), ("name", "string")],
        true,
    ),
    (
        "DocumentReference",
        &[
            ("_id", "token"),
            ("patient", "reference"),
            ("date", "date"),
            ("type", "token"),
            ("status", "token"),
        ],
        true,
    ),
    ("Binary", &[], true),
    (
        "Consent",
        &[
            ("_id", "token"),
            ("patient", "reference"),
            ("status", "token"),
        ],
        true,
    ),
    (
        "AuditEvent",
        &[("patient", "reference"), ("_before", "string")],
        false,
    ),
    (
        "Provenance",
        &[
            ("_id", "token"),
            ("patient", "reference"),
            ("target", "reference"),
        ],
        true,
    ),
    // A study's cohort, only for its researcher's de-identified `$export`.
    ("Group", &[], false),
];

/// A search parameter: its name and type.
type Param = (&'static str, &'static str);

/// Every type served: name, search parameters, read by id.
fn supported() -> Vec<(&'static str, Vec<Param>, bool)> {
    OWN.iter()
        .map(|(k, p, read)| (*k, p.to_vec(), *read))
        .chain(CLINICAL.iter().map(|t| (t.name, t.params(), true)))
        .collect()
}

fn params_of(kind: &str) -> Vec<&'static str> {
    supported()
        .into_iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, p, _)| p.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default()
}

/// `GET /fhir/metadata`: what this server does, exactly.
pub(crate) async fn metadata(State(state): State<ApiState>, headers: HeaderMap) -> Fhir {
    let base = base_url(&headers, &state);
    let resources: Vec<Value> = supported()
        .into_iter()
        .map(|(kind, params, read)| {
            let mut interaction = Vec::new();
            if read {
                interaction.push(json!({ "code": "read" }));
            }
            if !params.is_empty() {
                interaction.push(json!({ "code": "search-type" }));
            }
            let mut resource = json!({ "type": kind });
            if !interaction.is_empty() {
                resource["interaction"] = json!(interaction);
            }
            if !params.is_empty() {
                resource["searchParam"] = params
                    .iter()
                    .map(|(name, ty)| json!({ "name": name, "type": ty }))
                    .collect();
            }
            if kind == "Group" {
                resource["operation"] = json!([{
                    "name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
                }]);
            }
            if kind == "Patient" {
                resource["operation"] = json!([{
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                }]);
            }
            resource
        })
        .collect();
    Fhir(json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-02",
        "kind": "instance",
        "software": { "name": "medledger", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "medledger's FHIR R4 API", "url": base },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR",
                }] }],
                "description": "Bearer tokens from POST /api/v1/auth/login; a patient's token reads their own compartment (patient/*.rs), a doctor's what the chain allows them (user/*.rs). Every answer with a patient's data is logged on chain first.",
            },
            "resource": resources,
        }],
    }))
}

/// `GET /.well-known/smart-configuration`: how a SMART client gets a token here.
pub(crate) async fn smart_configuration(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Response {
    let base = base_url(&headers, &state);
    let root = base.trim_end_matches("/fhir");
    let mut scopes: Vec<&str> = [Role::Patient, Role::Doctor, Role::Admin]
        .into_iter()
        .flat_map(|r| scopes_of(r).iter().copied())
        .collect();
    scopes.dedup();
    axum::Json(json!({
        "issuer": root,
        "token_endpoint": format!("{root}/api/v1/auth/login"),
        "grant_types_supported": ["password"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": scopes,
        "capabilities": ["permission-v2", "permission-patient", "permission-user", "client-public"],
        "code_challenge_methods_supported": [],
    }))
    .into_response()
}

/// The id of a record's resources: its 32 bytes as 64 hex digits.
fn record_id(id: &B256) -> String {
    hex::encode(id.as_slice())
}

fn parse_record(id: &str) -> FhirResult<B256> {
    parse_record_id(id)
        .or_else(|_| parse_record_id(&format!("0x{id}")))
        .map_err(|_| FhirError::new(Kind::NotFound, format!("no resource has the id {id:?}")))
}

/// A reference to an account as the kind of resource it is.
fn person_ref(address: Address, patient: Address) -> Reference {
    if address == patient {
        Reference::to("Patient", &id_of(address))
    } else {
        Reference::to("Practitioner", &id_of(address))
    }
}

fn purpose_coding(purpose: Purpose, emergency: bool) -> Coding {
    match (purpose, emergency) {
        (_, true) => Coding::new(ACT_REASON, "ETREAT", "emergency treatment"),
        (Purpose::Treatment, false) => Coding::new(ACT_REASON, "TREAT", "treatment"),
        (Purpose::Research, false) => Coding::new(ACT_REASON, "HRESCH", "healthcare research"),
    }
}

fn kind_coding(kind: RecordKind) -> Coding {
    Coding::new(RECORD_KIND, kind.as_str(), kind.as_str())
}

// ---- Patient ----

fn patient_resource(
    address: Address,
    profile: &medledger_records::directory::ProfileView,
) -> Patient {
    Patient {
        id: id_of(address),
        identifier: vec![Identifier {
            system: ACCOUNT,
            value: address.to_string(),
        }],
        active: true,
        name: vec![HumanName {
            text: profile.name.clone(),
        }],
        telecom: profile
            .contact
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| ContactPoint {
                system: "other",
                value: c.clone(),
            })
            .collect(),
        birth_date: (!profile.date_of_birth.is_empty()).then(|| profile.date_of_birth.clone()),
    }
}

/// The patient's own profile, or one the chain lets the reader see (logged on chain first).
async fn read_patient(state: &ApiState, reader: &Person, address: Address) -> FhirResult<Patient> {
    let profile = state.app.profile(reader, address).await?.ok_or_else(|| {
        FhirError::new(
            Kind::NotFound,
            "no Patient with this id that you may see: the patient has not shared their details with you",
        )
    })?;
    Ok(patient_resource(address, &profile))
}

/// `GET /fhir/Patient/{id}`.
pub(crate) async fn patient(
    State(state): State<ApiState>,
    reader: Reader,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let address = account_id(&id)?;
    let person = reader.require("Patient")?;
    Ok(Fhir(read_patient(&state, person, address).await?.to_json()))
}

/// `GET /fhir/Patient`: a patient finds themselves; a doctor, the patients who share with them.
pub(crate) async fn patients(
    State(state): State<ApiState>,
    reader: Reader,
    headers: HeaderMap,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("Patient"))?;
    let page = search.page()?;
    let wanted = search
        .one("_id")?
        .map(|id| account_id(id).ok())
        .map(|a| a.map_or(Vec::new(), |a| vec![a]));
    let person = reader.require("Patient")?;
    let candidates: Vec<Address> = match person.role {
        Role::Patient => vec![person.address],
        Role::Doctor => state.app.sharing_patients(person).await?,
        _ => {
            return Err(FhirError::new(
                Kind::Forbidden,
                "only patients and doctors may search patients",
            ));
        }
    };
    let candidates: Vec<Address> = candidates
        .into_iter()
        .filter(|a| wanted.as_ref().is_none_or(|w| w.contains(a)))
        .collect();
    // The page is chosen first among the patients the reader may see; only it is opened.
    let total = candidates.len();
    let mut entries = Vec::new();
    for address in candidates.into_iter().skip(page.0).take(page.1) {
        let p = read_patient(&state, person, address).await?;
        entries.push((format!("Patient/{}", p.id), p.to_json()));
    }
    let base = base_url(&headers, &state);
    Ok(Fhir(searchset(
        &base, "Patient", &search, page, total, entries,
    )))
}

// ---- The directory: Practitioner, PractitionerRole, Organization ----

fn practitioner_resource(d: &Doctor) -> Practitioner {
    let mut identifier = vec![Identifier {
        system: ACCOUNT,
        value: d.address.to_string(),
    }];
    if !d.licence_id.is_empty() {
        identifier.push(Identifier {
            system: LICENCE,
            value: d.licence_id.clone(),
        });
    }
    Practitioner {
        id: id_of(d.address),
        identifier,
        active: d.active,
        name: (!d.name.is_empty())
            .then(|| HumanName {
                text: d.name.clone(),
            })
            .into_iter()
            .collect(),
    }
}

fn role_resource(d: &Doctor) -> PractitionerRole {
    PractitionerRole {
        id: id_of(d.address),
        active: d.active,
        practitioner: Reference::to("Practitioner", &id_of(d.address)),
        organization: Reference::to("Organization", &d.hospital_id.to_string()),
        specialty: (!d.specialty.is_empty())
            .then(|| CodeableConcept::text(d.specialty.clone()))
            .into_iter()
            .collect(),
    }
}

fn organization_resource(h: &Hospital) -> Organization {
    Organization {
        id: h.id.to_string(),
        identifier: vec![Identifier {
            system: HOSPITAL,
            value: h.id.to_string(),
        }],
        active: h.active,
        name: h.name.clone(),
        telecom: (!h.contact.is_empty())
            .then(|| ContactPoint {
                system: "other",
                value: h.contact.clone(),
            })
            .into_iter()
            .collect(),
        address: (!h.address.is_empty() || !h.city.is_empty())
            .then(|| AddressPart {
                text: (!h.address.is_empty()).then(|| h.address.clone()),
                city: (!h.city.is_empty()).then(|| h.city.clone()),
            })
            .into_iter()
            .collect(),
    }
}

/// `GET /fhir/Practitioner/{id}` (the public directory).
pub(crate) async fn practitioner(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let d = state.app.doctor(account_id(&id)?).await?;
    Ok(Fhir(practitioner_resource(&d).to_json()))
}

/// `GET /fhir/PractitionerRole/{id}`: a doctor at their hospital.
pub(crate) async fn practitioner_role(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let d = state.app.doctor(account_id(&id)?).await?;
    Ok(Fhir(role_resource(&d).to_json()))
}

/// `GET /fhir/Organization/{id}`: a hospital.
pub(crate) async fn organization(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let id: u64 = id.parse().map_err(|_| {
        FhirError::new(Kind::NotFound, format!("no Organization has the id {id:?}"))
    })?;
    let h = state.app.hospital(id).await?;
    Ok(Fhir(organization_resource(&h).to_json()))
}

/// Whether `text` contains `needle`, ignoring case (FHIR's string search matches starts of
/// words; containing is looser and never misses one).
fn contains(text: &str, needle: &str) -> bool {
    text.to_lowercase().contains(&needle.to_lowercase())
}

/// The one page of `all` a search asks for, as a Bundle.
fn page_of<R: Resource>(
    state: &ApiState,
    headers: &HeaderMap,
    search: &Search,
    all: Vec<R>,
) -> FhirResult<Fhir> {
    let page = search.page()?;
    let total = all.len();
    let entries = all
        .into_iter()
        .skip(page.0)
        .take(page.1)
        .map(|r| (format!("{}/{}", R::TYPE, r.id()), r.to_json()))
        .collect();
    let base = base_url(headers, state);
    Ok(Fhir(searchset(
        &base,
        R::TYPE,
        search,
        page,
        total,
        entries,
    )))
}

/// `GET /fhir/Practitioner`.
pub(crate) async fn practitioners(
    State(state): State<ApiState>,
    headers: HeaderMap,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("Practitioner"))?;
    let id = search.one("_id")?;
    let name = search.one("name")?;
    let all = state
        .app
        .doctors(None)
        .await?
        .iter()
        .filter(|d| id.is_none_or(|id| id_of(d.address) == id.trim_start_matches("0x")))
        .filter(|d| name.is_none_or(|n| contains(&d.name, n)))
        .map(practitioner_resource)
        .collect();
    page_of(&state, &headers, &search, all)
}

/// `GET /fhir/PractitionerRole`.
pub(crate) async fn practitioner_roles(
    State(state): State<ApiState>,
    headers: HeaderMap,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("PractitionerRole"))?;
    let id = search.one("_id")?;
    let practitioner = search
        .one("practitioner")?
        .map(|p| reference_param(p, "Practitioner"))
        .transpose()?;
    let organization = search
        .one("organization")?
        .map(|o| o.trim_start_matches("Organization/").to_string());
    let all = state
        .app
        .doctors(None)
        .await?
        .iter()
        .filter(|d| id.is_none_or(|id| id_of(d.address) == id.trim_start_matches("0x")))
        .filter(|d| practitioner.is_none_or(|p| p == d.address))
        .filter(|d| {
            organization
                .as_ref()
                .is_none_or(|o| *o == d.hospital_id.to_string())
        })
        .map(role_resource)
        .collect();
    page_of(&state, &headers, &search, all)
}

/// `GET /fhir/Organization`.
pub(crate) async fn organizations(
    State(state): State<ApiState>,
    headers: HeaderMap,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("Organization"))?;
    let id = search.one("_id")?;
    let name = search.one("name")?;
    let all = state
        .app
        .hospitals(None, None)
        .await?
        .iter()
        .filter(|h| id.is_none_or(|id| h.id.to_string() == id))
        .filter(|h| name.is_none_or(|n| contains(&h.name, n)))
        .map(organization_resource)
        .collect();
    page_of(&state, &headers, &search, all)
}

// ---- DocumentReference and Binary ----

fn document_resource(v: &RecordView) -> DocumentReference {
    let id = record_id(&v.id);
    let mut identifier = vec![Identifier {
        system: CONTENT_HASH,
        value: v.anchor.content_hash.to_string(),
    }];
    if let Some(tx) = v.anchor.tx_hash {
        identifier.push(Identifier {
            system: TRANSACTION,
            value: tx.to_string(),
        });
    }
    let created = rfc3339(v.created_at);
    let meta = v.meta.as_ref();
    DocumentReference {
        meta: Meta {
            last_updated: Some(created.clone()),
        },
        master_identifier: Identifier {
            system: RECORD,
            value: v.id.to_string(),
        },
        identifier,
        status: "current",
        kind: CodeableConcept::coded(kind_coding(v.kind)),
        subject: Reference::to("Patient", &id_of(v.patient)),
        date: created,
        author: vec![person_ref(v.author, v.patient)],
        description: meta.map(|m| m.title.clone()).filter(|t| !t.is_empty()),
        content: vec![Content {
            attachment: Attachment {
                content_type: meta.map(|m| m.media_type.clone()),
                url: format!("Binary/{id}"),
                size: meta.map(|m| m.size),
                title: meta.map(|m| m.title.clone()).filter(|t| !t.is_empty()),
                creation: meta.map(|m| m.date.clone()).filter(|d| !d.is_empty()),
            },
        }],
        id,
    }
}

/// A `date` search's comparison (`ge2024-01`, `2024`, …) against an ISO date or instant.
/// ISO dates order as text, and a partial date names the span it begins.
pub(crate) fn date_matches(filter: &str, value: &str) -> FhirResult<bool> {
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
        return Err(FhirError::new(
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

/// The patient a search is about: `patient=` if given; otherwise a patient themselves.
fn patient_of(search: &Search, reader: &Person) -> FhirResult<Option<Address>> {
    match search.one("patient")? {
        Some(p) => {
            let patient = reference_param(p, "Patient")?;
            if reader.role == Role::Patient && patient != reader.address {
                return Err(FhirError::new(
                    Kind::Forbidden,
                    "a patient's token reads only their own compartment",
                ));
            }
            Ok(Some(patient))
        }
        None if reader.role == Role::Patient => Ok(Some(reader.address)),
        None => Ok(None),
    }
}

/// The patients a doctor's search without `patient=` covers: those who share with them.
pub(crate) async fn patients_in_scope(
    state: &ApiState,
    reader: &Person,
    search: &Search,
) -> FhirResult<Vec<Address>> {
    match patient_of(search, reader)? {
        Some(p) => Ok(vec![p]),
        None if reader.role == Role::Doctor => Ok(state.app.sharing_patients(reader).await?),
        None => Err(FhirError::new(
            Kind::Forbidden,
            "only patients and doctors read patients' data",
        )),
    }
}

/// `GET /fhir/DocumentReference`: the reports the reader may see, filtered, paged after the
/// filtering; only the page is logged on chain as viewed.
pub(crate) async fn documents(
    State(state): State<ApiState>,
    reader: Reader,
    headers: HeaderMap,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("DocumentReference"))?;
    let (offset, count) = search.page()?;
    let ids: Option<Vec<String>> = search.one("_id")?.map(|ids| {
        ids.split(',')
            .map(|s| s.trim_start_matches("0x").to_lowercase())
            .collect()
    });
    let dates = search.all("date");
    for d in dates {
        date_matches(d, "")?;
    }
    let types = search.all("type");
    let statuses = search.all("status");
    let keep = |v: &RecordView| {
        ids.as_ref()
            .is_none_or(|ids| ids.contains(&record_id(&v.id)))
            && dates
                .iter()
                .all(|d| date_matches(d, &rfc3339(v.created_at)).unwrap_or(false))
            && types.iter().all(|t| {
                t.split(',')
                    .any(|t| token_matches(t, RECORD_KIND, v.kind.as_str()))
            })
            && statuses
                .iter()
                .all(|s| s.split(',').any(|s| s == "current"))
    };
    let person = reader.require("DocumentReference")?;
    let mut pager = Pager::new((offset, count));
    let mut entries = Vec::new();
    for patient in patients_in_scope(&state, person, &search).await? {
        let (skip, take) = pager.window();
        let (kept, page) = state
            .app
            .reports_page(person, patient, Purpose::Treatment, &keep, skip, take)
            .await?;
        pager.took(kept, page.len());
        for v in &page {
            let d = document_resource(v);
            entries.push((format!("DocumentReference/{}", d.id), d.to_json()));
        }
    }
    let base = base_url(&headers, &state);
    Ok(Fhir(searchset(
        &base,
        "DocumentReference",
        &search,
        (offset, count),
        pager.total,
        entries,
    )))
}

/// `GET /fhir/DocumentReference/{id}`: a report's details (logged on chain as viewed).
pub(crate) async fn document(
    State(state): State<ApiState>,
    reader: Reader,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let id = parse_record(&id)?;
    let view = state
        .app
        .record(reader.require("DocumentReference")?, id, Purpose::Treatment)
        .await?;
    if view.kind == RecordKind::Prescription {
        return Err(FhirError::new(
            Kind::NotFound,
            "this record is a prescription: read it as MedicationRequest",
        ));
    }
    Ok(Fhir(document_resource(&view).to_json()))
}

/// `GET /fhir/Binary/{id}`: a report's bytes, opened like a download (the opening logged on
/// chain, signed by the reader, before a byte leaves). As a Binary resource when the client
/// asks for FHIR JSON, the bytes themselves otherwise.
pub(crate) async fn binary(
    State(state): State<ApiState>,
    reader: Reader,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(format): axum::extract::Query<super::Format>,
) -> FhirResult<Response> {
    let id = parse_record(&id)?;
    let opened = state
        .app
        .open_record(reader.require("Binary")?, id, Purpose::Treatment)
        .await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or("");
    let as_resource = accept.contains("application/fhir+json")
        || accept.contains("application/json")
        || format.format.as_deref().is_some_and(|f| f.contains("json"));
    if as_resource {
        let data = base64::engine::general_purpose::STANDARD.encode(&opened.bytes);
        let mut response = Fhir(json!({
            "resourceType": "Binary",
            "id": record_id(&id),
            "contentType": opened.media_type,
            "data": data,
        }))
        .into_response();
        response.headers_mut().insert(
            header::HeaderName::from_static("x-medledger-access-tx"),
            header::HeaderValue::from_str(&opened.access_tx.hash.to_string())
                .unwrap_or(header::HeaderValue::from_static("")),
        );
        return Ok(response);
    }
    Ok(crate::api::attachment(&id, opened))
}

// ---- MedicationRequest ----

/// A prescription's lines, one MedicationRequest each (FHIR's request names one medication),
/// grouped by the prescription's id.
fn medication_requests_of(p: &PrescriptionView) -> Vec<MedicationRequest> {
    let Some(body) = &p.body else {
        return Vec::new();
    };
    let prescription = record_id(&p.id);
    body.medications
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let dosage: Vec<&str> = [&m.dose, &m.frequency, &m.duration]
                .into_iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            MedicationRequest {
                id: format!("{}-{}", &prescription[..56], i + 1),
                identifier: p
                    .anchor
                    .tx_hash
                    .iter()
                    .map(|tx| Identifier {
                        system: TRANSACTION,
                        value: tx.to_string(),
                    })
                    .collect(),
                group_identifier: Identifier {
                    system: PRESCRIPTION,
                    value: p.id.to_string(),
                },
                status: "active",
                intent: "order",
                medication_codeable_concept: CodeableConcept::text(m.name.clone()),
                subject: Reference::to("Patient", &id_of(p.patient)),
                authored_on: rfc3339(p.created_at),
                requester: Reference::to("Practitioner", &id_of(p.doctor)),
                dosage_instruction: (!dosage.is_empty())
                    .then(|| Dosage {
                        text: dosage.join(", "),
                    })
                    .into_iter()
                    .collect(),
                note: (!body.notes.is_empty())
                    .then(|| Annotation {
                        text: body.notes.clone(),
                    })
                    .into_iter()
                    .collect(),
            }
        })
        .collect()
}

async fn all_medication_requests(
    state: &ApiState,
    reader: &Person,
) -> FhirResult<Vec<MedicationRequest>> {
    Ok(state
        .app
        .prescriptions(reader)
        .await?
        .iter()
        .flat_map(medication_requests_of)
        .collect())
}

/// `GET /fhir/MedicationRequest`: a patient's prescriptions, or those a doctor wrote, then the
/// MedicationRequests of the bundles patients shared; filtered, then paged across both.
pub(crate) async fn medication_requests(
    State(state): State<ApiState>,
    reader: Reader,
    headers: HeaderMap,
    search: Search,
) -> FhirResult<Fhir> {
    let t = clinical_type("MedicationRequest").expect("a clinical type");
    let filters = Filters::of(t, &search)?;
    let person = reader.require("MedicationRequest")?;
    let patient = patient_of(&search, person)?;
    let prescribed: Vec<Value> = all_medication_requests(&state, person)
        .await?
        .into_iter()
        .filter(|m| {
            patient.is_none_or(|p| {
                m.subject.reference == Reference::to("Patient", &id_of(p)).reference
            })
        })
        .map(|m| m.to_json())
        .filter(|m| filters.keep_served(m["id"].as_str().unwrap_or_default(), m))
        .collect();
    let (offset, count) = search.page()?;
    let mut entries: Vec<Value> = prescribed
        .iter()
        .skip(offset)
        .take(count)
        .cloned()
        .collect();
    // The imported ones: of the patients in scope, as for any imported type. A suspended
    // doctor still sees the prescriptions they wrote, and no patient's bundles.
    let skip = offset.saturating_sub(prescribed.len());
    let imported = async {
        let patients = patients_in_scope(&state, person, &search).await?;
        clinical::page(
            &state,
            person,
            &patients,
            &filters,
            (skip, count - entries.len()),
        )
        .await
    };
    let (imported, page) = match imported.await {
        Err(FhirError(e)) if e.kind == Kind::Forbidden && person.role == Role::Doctor => {
            (0, Vec::new())
        }
        other => other?,
    };
    entries.extend(page);
    let entries = entries
        .into_iter()
        .map(|r| {
            (
                format!("MedicationRequest/{}", r["id"].as_str().unwrap_or_default()),
                r,
            )
        })
        .collect();
    let base = base_url(&headers, &state);
    Ok(Fhir(searchset(
        &base,
        "MedicationRequest",
        &search,
        (offset, count),
        prescribed.len() + imported,
        entries,
    )))
}

/// `GET /fhir/MedicationRequest/{id}`: a prescription's line, or an imported one.
pub(crate) async fn medication_request(
    State(state): State<ApiState>,
    reader: Reader,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let person = reader.require("MedicationRequest")?;
    if let Some(m) = all_medication_requests(&state, person)
        .await?
        .into_iter()
        .find(|m| m.id == id)
    {
        return Ok(Fhir(m.to_json()));
    }
    let t = clinical_type("MedicationRequest").expect("a clinical type");
    clinical::read(t, &state, person, &id).await
}

// ---- Consent ----

fn consent_resource(g: &GrantView, tx: Option<B256>) -> Consent {
    let mut identifier = vec![Identifier {
        system: GRANT,
        value: g.id.to_string(),
    }];
    if let Some(tx) = tx {
        identifier.push(Identifier {
            system: TRANSACTION,
            value: tx.to_string(),
        });
    }
    let grantee = match (g.doctor, g.hospital_id) {
        (Some(d), _) => Reference::to("Practitioner", &id_of(d)),
        (None, Some(h)) => Reference::to("Organization", &h.to_string()),
        (None, None) => Reference::default(),
    };
    let (code, data) = match g.scope {
        Scope::All => (Vec::new(), Vec::new()),
        Scope::Kinds => (
            g.kinds
                .iter()
                .map(|k| CodeableConcept::coded(kind_coding(*k)))
                .collect(),
            Vec::new(),
        ),
        Scope::Records => (
            Vec::new(),
            g.record_ids
                .iter()
                .map(|r| ConsentData {
                    meaning: "instance",
                    reference: Reference::to("DocumentReference", &record_id(r)),
                })
                .collect(),
        ),
    };
    Consent {
        id: g.id.to_string(),
        identifier,
        status: if g.active { "active" } else { "inactive" },
        scope: CodeableConcept::coded(Coding::new(
            "http://terminology.hl7.org/CodeSystem/consentscope",
            "patient-privacy",
            "Privacy Consent",
        )),
        category: vec![CodeableConcept::coded(Coding::new(
            "http://loinc.org",
            "59284-0",
            "Patient Consent",
        ))],
        patient: Reference::to("Patient", &id_of(g.patient)),
        policy_rule: CodeableConcept::coded(Coding::new(
            "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "OPTIN",
            "opt-in",
        )),
        provision: Provision {
            kind: "permit",
            period: Period {
                start: None,
                end: Some(rfc3339(g.expires_at as i64)),
            },
            actor: vec![ConsentActor {
                role: CodeableConcept::coded(Coding::new(
                    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "PRCP",
                    "primary information recipient",
                )),
                reference: grantee,
            }],
            purpose: vec![purpose_coding(g.purpose, false)],
            code,
            data,
        },
    }
}

async fn all_consents(state: &ApiState, reader: &Person) -> FhirResult<Vec<Consent>> {
    let mut out = Vec::new();
    for g in state.app.grants(reader).await? {
        let tx = state.app.grant_tx(g.id).await?;
        out.push(consent_resource(&g, tx));
    }
    Ok(out)
}

/// `GET /fhir/Consent`: a patient's grants (live or not), or those given to a doctor.
pub(crate) async fn consents(
    State(state): State<ApiState>,
    reader: Reader,
    headers: HeaderMap,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("Consent"))?;
    let person = reader.require("Consent")?;
    let patient = patient_of(&search, person)?;
    let id = search.one("_id")?;
    let statuses = search.all("status");
    let all = all_consents(&state, person)
        .await?
        .into_iter()
        .filter(|c| {
            patient.is_none_or(|p| {
                c.patient.reference == Reference::to("Patient", &id_of(p)).reference
            })
        })
        .filter(|c| id.is_none_or(|id| c.id == id))
        .filter(|c| statuses.iter().all(|s| s.split(',').any(|s| s == c.status)))
        .collect();
    page_of(&state, &headers, &search, all)
}

/// `GET /fhir/Consent/{id}`.
pub(crate) async fn consent(
    State(state): State<ApiState>,
    reader: Reader,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    all_consents(&state, reader.require("Consent")?)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| Fhir(c.to_json()))
        .ok_or_else(|| FhirError::new(Kind::NotFound, "no Consent with this id that you may see"))
}

// ---- AuditEvent ----

fn audit_resource(e: &AccessEvent) -> AuditEvent {
    let (action, code) = match e.action {
        Action::Opened => ("R", "opened"),
        Action::Viewed => ("R", "viewed"),
        Action::ViewedProfile => ("R", "viewed-profile"),
        Action::DeclaredEmergency => ("E", "declared-emergency"),
        Action::EndedEmergency => ("E", "ended-emergency"),
        Action::IncludedInExport => ("R", "included-in-export"),
    };
    let purpose = match e.purpose {
        Some("research") => Purpose::Research,
        _ => Purpose::Treatment,
    };
    let tx = hex::encode(e.tx_hash.as_slice());
    let mut entity = vec![
        AuditEntity {
            what: Reference::to("Patient", &id_of(e.patient)),
        },
        AuditEntity {
            what: Reference {
                identifier: Some(Identifier {
                    system: TRANSACTION,
                    value: e.tx_hash.to_string(),
                }),
                ..Reference::default()
            },
        },
    ];
    for r in &e.record_ids {
        entity.push(AuditEntity {
            what: Reference::to("DocumentReference", &record_id(r)),
        });
    }
    let mut who = person_ref(e.reader, e.patient);
    who.display = e.reader_name.clone();
    AuditEvent {
        id: format!("{}-{code}", &tx[..64 - 1 - code.len()]),
        kind: Coding::new(
            "http://dicom.nema.org/resources/ontology/DCM",
            "110110",
            "Patient Record",
        ),
        subtype: vec![Coding::new(ACCESS, code, "")],
        action,
        recorded: rfc3339(e.time as i64),
        outcome: "0",
        outcome_desc: e.summary.clone(),
        purpose_of_event: vec![CodeableConcept::coded(purpose_coding(purpose, e.emergency))],
        agent: vec![AuditAgent {
            who,
            requestor: true,
        }],
        source: AuditSource {
            observer: Reference {
                display: Some("medledger".into()),
                ..Reference::default()
            },
        },
        entity,
    }
}

/// `GET /fhir/AuditEvent`: the access log, as the chain logged it, the most recent first (a
/// patient's of their data, a doctor's of what they did); `next` goes to older entries.
pub(crate) async fn audit_events(
    State(state): State<ApiState>,
    reader: Reader,
    headers: HeaderMap,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("AuditEvent"))?;
    let person = reader.require("AuditEvent")?;
    let patient = patient_of(&search, person)?;
    let before = search
        .one("_before")?
        .map(medledger_records::index::Cursor::parse)
        .transpose()?;
    let page = state.app.audit(person, before).await?;
    let base = base_url(&headers, &state);
    let entries: Vec<(String, Value)> = page
        .events
        .iter()
        .filter(|e| patient.is_none_or(|p| p == e.patient))
        .map(|e| {
            let a = audit_resource(e);
            (format!("AuditEvent/{}", a.id), a.to_json())
        })
        .collect();
    let shown = entries.len();
    let mut bundle = searchset(&base, "AuditEvent", &search, (0, shown), shown, entries);
    // The log pages by position on the chain, not by offset: no total over all of it.
    if let Some(obj) = bundle.as_object_mut() {
        obj.remove("total");
    }
    if let Some(older) = page.older
        && let Some(links) = bundle["link"].as_array_mut()
    {
        links.push(json!({
            "relation": "next",
            "url": format!("{base}/AuditEvent?_before={older}"),
        }));
    }
    Ok(Fhir(bundle))
}

// ---- Provenance ----

/// The provenance of an anchored record (served under the record's id): its author, its time,
/// and the transaction that anchored it; `targets` are the resources it is served as.
fn provenance_of(
    record: &B256,
    author: Reference,
    created_at: i64,
    tx: Option<B256>,
    targets: Vec<Reference>,
) -> Provenance {
    Provenance {
        id: record_id(record),
        target: targets,
        recorded: rfc3339(created_at),
        activity: CodeableConcept::coded(Coding::new(
            "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "CREATE",
            "create",
        )),
        agent: vec![ProvenanceAgent {
            kind: CodeableConcept::coded(Coding::new(
                "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "author",
                "Author",
            )),
            who: author,
        }],
        entity: tx
            .into_iter()
            .map(|tx| ProvenanceEntity {
                role: "source",
                what: Reference {
                    identifier: Some(Identifier {
                        system: TRANSACTION,
                        value: tx.to_string(),
                    }),
                    display: Some("the Ethereum transaction that anchored it".into()),
                    ..Reference::default()
                },
            })
            .collect(),
    }
}

fn report_provenance(v: &RecordView) -> Provenance {
    let author = if v.author == v.patient {
        Reference::to("Patient", &id_of(v.author))
    } else {
        Reference::to("Practitioner", &id_of(v.author))
    };
    provenance_of(
        &v.id,
        author,
        v.created_at,
        v.anchor.tx_hash,
        vec![Reference::to("DocumentReference", &record_id(&v.id))],
    )
}

/// The provenance of the prescriptions the reader may see (of `patient`, if given).
async fn prescription_provenance(
    state: &ApiState,
    reader: &Person,
    patient: Option<Address>,
) -> FhirResult<Vec<Provenance>> {
    Ok(state
        .app
        .prescriptions(reader)
        .await?
        .iter()
        .filter(|p| patient.is_none_or(|patient| patient == p.patient))
        .filter_map(|p| {
            let lines: Vec<Reference> = medication_requests_of(p)
                .iter()
                .map(|m| Reference::to("MedicationRequest", &m.id))
                .collect();
            (!lines.is_empty()).then(|| {
                provenance_of(
                    &p.id,
                    Reference::to("Practitioner", &id_of(p.doctor)),
                    p.created_at,
                    p.anchor.tx_hash,
                    lines,
                )
            })
        })
        .collect())
}

/// `GET /fhir/Provenance`: of prescriptions, then of reports, by `target`
/// (`DocumentReference/{id}`, `MedicationRequest/{id}`), `patient` or `_id`; paged after the
/// filtering, and only the page's reports logged on chain as viewed.
pub(crate) async fn provenances(
    State(state): State<ApiState>,
    reader: Reader,
    headers: HeaderMap,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("Provenance"))?;
    let person = reader.require("Provenance")?;
    let id = search.one("_id")?;
    let targets = search.all("target");
    let keep = |p: &Provenance| {
        id.is_none_or(|id| p.id == id)
            && targets.iter().all(|t| {
                t.split(',').any(|t| {
                    p.target
                        .iter()
                        .any(|r| r.reference.as_deref() == Some(t.trim()))
                })
            })
    };
    let (offset, count) = search.page()?;
    let prescribed: Vec<Provenance> =
        prescription_provenance(&state, person, patient_of(&search, person)?)
            .await?
            .into_iter()
            .filter(|p| keep(p))
            .collect();
    let mut entries: Vec<Value> = prescribed
        .iter()
        .skip(offset)
        .take(count)
        .map(Resource::to_json)
        .collect();
    let mut pager = Pager::new((
        offset.saturating_sub(prescribed.len()),
        count - entries.len(),
    ));
    for patient in patients_in_scope(&state, person, &search).await? {
        let (skip, take) = pager.window();
        let (kept, page) = state
            .app
            .reports_page(
                person,
                patient,
                Purpose::Treatment,
                |v| keep(&report_provenance(v)),
                skip,
                take,
            )
            .await?;
        pager.took(kept, page.len());
        entries.extend(page.iter().map(|v| report_provenance(v).to_json()));
    }
    let total = prescribed.len() + pager.total;
    let entries = entries
        .into_iter()
        .map(|r| {
            (
                format!("Provenance/{}", r["id"].as_str().unwrap_or_default()),
                r,
            )
        })
        .collect();
    let base = base_url(&headers, &state);
    Ok(Fhir(searchset(
        &base,
        "Provenance",
        &search,
        (offset, count),
        total,
        entries,
    )))
}

/// `GET /fhir/Provenance/{id}`: a prescription's, or a report's (logged on chain as viewed).
pub(crate) async fn provenance(
    State(state): State<ApiState>,
    reader: Reader,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let person = reader.require("Provenance")?;
    let record = parse_record(&id)?;
    if let Some(p) = prescription_provenance(&state, person, None)
        .await?
        .into_iter()
        .find(|p| p.id == id)
    {
        return Ok(Fhir(p.to_json()));
    }
    let view = state.app.record(person, record, Purpose::Treatment).await?;
    if view.kind == RecordKind::Prescription {
        return Err(FhirError::new(
            Kind::NotFound,
            "no Provenance with this id that you may see",
        ));
    }
    Ok(Fhir(report_provenance(&view).to_json()))
}

// ---- Patient/{id}/$everything ----

/// `GET /fhir/Patient/{id}/$everything`: the patient, their reports, prescriptions and grants,
/// as much as the reader may see, in one Bundle (every part logged on chain as the reads are).
pub(crate) async fn everything(
    State(state): State<ApiState>,
    reader: Reader,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let patient = account_id(&id)?;
    let person = reader.require("Patient")?;
    if person.role == Role::Patient && person.address != patient {
        return Err(FhirError::new(
            Kind::Forbidden,
            "a patient's token reads only their own compartment",
        ));
    }
    let mut resources: Vec<Value> = vec![read_patient(&state, person, patient).await?.to_json()];
    let (_, reports) = state
        .app
        .reports_page(person, patient, Purpose::Treatment, |_| true, 0, usize::MAX)
        .await?;
    resources.extend(reports.iter().map(|v| document_resource(v).to_json()));
    let patient_ref = Reference::to("Patient", &id_of(patient)).reference;
    resources.extend(
        all_medication_requests(&state, person)
            .await?
            .into_iter()
            .filter(|m| m.subject.reference == patient_ref)
            .map(|m| m.to_json()),
    );
    // The resources of the bundles they shared, of every type served here.
    let (_, imported) = state
        .app
        .clinical_page(
            person,
            patient,
            Purpose::Treatment,
            "records' contents",
            |c| clinical_type(c.resource["resourceType"].as_str().unwrap_or_default()).is_some(),
            0,
            usize::MAX,
        )
        .await?;
    resources.extend(imported.iter().map(clinical::served));
    resources.extend(
        all_consents(&state, person)
            .await?
            .into_iter()
            .filter(|c| c.patient.reference == patient_ref)
            .map(|c| c.to_json()),
    );
    let base = base_url(&headers, &state);
    let entries: Vec<(String, Value)> = resources
        .into_iter()
        .map(|r| {
            let path = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default()
            );
            (path, r)
        })
        .collect();
    let total = entries.len();
    let search = Search::default();
    let mut bundle = searchset(
        &base,
        &format!("Patient/{}/$everything", id_of(patient)),
        &search,
        (0, total),
        total,
        entries,
    );
    bundle["link"] = json!([{
        "relation": "self",
        "url": format!("{base}/Patient/{}/$everything", id_of(patient)),
    }]);
    Ok(Fhir(bundle))
}
