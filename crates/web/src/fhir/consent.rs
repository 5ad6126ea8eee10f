//! The chain's part of a patient's record as FHIR: Consent (the grants), AuditEvent (the access
//! log, as the chain logged it) and Provenance (who wrote a prescription or a report, when, and
//! the transaction that anchored it).

use axum::extract::{Path, State};
use medledger_records::{
    Kind, Person,
    model::{Purpose, RecordKind},
    primitives::Address,
};
use serde_json::{Value, json};

use super::r4::{
    capability::params_of,
    consent::{audit_resource, consent_resource, provenance_of, report_provenance},
    ids::{id_of, parse_record},
    model::{Consent, Provenance, Reference, Resource},
    resources::medication_requests_of,
    search::{Pager, Search, searchset},
};
use super::search::{answer, base_url, page_of, patient_of, patients_in_scope};
use super::{Fhir, FhirError, FhirResult, Reader, unseen};
use crate::ApiState;

/// Every grant the reader may see (given or received), as a Consent.
pub(super) async fn all_consents(state: &ApiState, reader: &Person) -> FhirResult<Vec<Consent>> {
    let mut out = Vec::new();
    for g in state.app.sharing().grants(reader).await? {
        let tx = state.app.sharing().grant_tx(g.id).await?;
        out.push(consent_resource(&g, tx));
    }
    Ok(out)
}

/// `GET /fhir/Consent`: a patient's grants (live or not), or those given to a doctor.
pub(crate) async fn consents(
    State(state): State<ApiState>,
    reader: Reader,
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
    page_of(&state, &search, all)
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

/// `GET /fhir/AuditEvent`: the access log, as the chain logged it, the most recent first (a
/// patient's of their data, a doctor's of what they did); `next` goes to older entries.
pub(crate) async fn audit_events(
    State(state): State<ApiState>,
    reader: Reader,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("AuditEvent"))?;
    let person = reader.require("AuditEvent")?;
    let patient = patient_of(&search, person)?;
    let before = search
        .one("_before")?
        .map(medledger_records::index::Cursor::parse)
        .transpose()?;
    let page = state.app.audit().audit(person, before).await?;
    let base = base_url(&state);
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

/// The provenance of the prescriptions the reader may see (of `patient`, if given).
async fn prescription_provenance(
    state: &ApiState,
    reader: &Person,
    patient: Option<Address>,
) -> FhirResult<Vec<Provenance>> {
    Ok(state
        .app
        .reports()
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
            .reports()
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
    Ok(answer(
        &state,
        "Provenance",
        &search,
        (offset, count),
        total,
        entries,
    ))
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
    let view = state
        .app
        .reports()
        .record(person, record, Purpose::Treatment)
        .await
        .map_err(unseen("Provenance"))?;
    if view.kind == RecordKind::Prescription {
        return Err(FhirError::new(
            Kind::NotFound,
            "no Provenance with this id that you may see",
        ));
    }
    Ok(Fhir(report_provenance(&view).to_json()))
}
