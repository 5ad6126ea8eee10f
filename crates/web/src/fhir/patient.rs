//! Patient: `GET /fhir/Patient/{id}`, the search (a patient finds themselves, a doctor the
//! patients who share with them) and `$everything`, each profile read through `Directory::profile`,
//! which shows it only as far as the patient shared it and logs on chain what it shows.

use axum::extract::{Path, State};
use medledger_records::{Kind, Person, model::Purpose, model::Role, primitives::Address};
use serde_json::{Value, json};

use super::consent::all_consents;
use super::medications::all_medication_requests;
use super::r4::{
    capability::params_of,
    clinical::{clinical_type, served},
    ids::{account_id, id_of},
    model::{Patient, Reference, Resource},
    resources::{document_resource, patient_resource},
    search::{Search, searchset},
};
use super::search::{answer, base_url};
use super::{Fhir, FhirError, FhirResult, Reader};
use crate::ApiState;

/// The patient's own profile, or one the chain lets the reader see (logged on chain first).
async fn read_patient(state: &ApiState, reader: &Person, address: Address) -> FhirResult<Patient> {
    let profile = state.app.directory().profile(reader, address).await?.ok_or_else(|| {
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
        Role::Doctor => state.app.sharing().sharing_patients(person).await?,
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
    Ok(answer(&state, "Patient", &search, page, total, entries))
}

/// `GET /fhir/Patient/{id}/$everything`: the patient, their reports, prescriptions and grants,
/// as much as the reader may see, in one Bundle (every part logged on chain as the reads are).
pub(crate) async fn everything(
    State(state): State<ApiState>,
    reader: Reader,
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
        .reports()
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
        .reports()
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
    resources.extend(imported.iter().map(served));
    resources.extend(
        all_consents(&state, person)
            .await?
            .into_iter()
            .filter(|c| c.patient.reference == patient_ref)
            .map(|c| c.to_json()),
    );
    let base = base_url(&state);
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
