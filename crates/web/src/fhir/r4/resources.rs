//! A patient's data written as R4 resources: their profile as a Patient, a report as a
//! DocumentReference (and what a search of them keeps), a prescription's lines as
//! MedicationRequests, with the codings these and `r4::consent` share. Each takes plain values
//! and answers a resource; the directory's are `r4::directory`'s.

use medledger_records::{
    Result,
    directory::ProfileView,
    model::{Purpose, RecordKind, rfc3339},
    primitives::Address,
    reports::{PrescriptionView, RecordView},
};

use super::ids::{
    ACCOUNT, CONTENT_HASH, PRESCRIPTION, RECORD, RECORD_KIND, TRANSACTION, id_of, record_id,
};
use super::matching::{date_matches, token_matches};
use super::model::{
    Annotation, Attachment, CodeableConcept, Coding, ContactPoint, Content, DocumentReference,
    Dosage, HumanName, Identifier, MedicationRequest, Meta, Patient, Reference,
};
use super::search::Search;

/// The code system of a purpose of use.
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// A reference to an account as the kind of resource it is.
pub(crate) fn person_ref(address: Address, patient: Address) -> Reference {
    if address == patient {
        Reference::to("Patient", &id_of(address))
    } else {
        Reference::to("Practitioner", &id_of(address))
    }
}

pub(crate) fn purpose_coding(purpose: Purpose, emergency: bool) -> Coding {
    match (purpose, emergency) {
        (_, true) => Coding::new(ACT_REASON, "ETREAT", "emergency treatment"),
        (Purpose::Treatment, false) => Coding::new(ACT_REASON, "TREAT", "treatment"),
        (Purpose::Research, false) => Coding::new(ACT_REASON, "HRESCH", "healthcare research"),
    }
}

pub(crate) fn kind_coding(kind: RecordKind) -> Coding {
    Coding::new(RECORD_KIND, kind.as_str(), kind.as_str())
}

pub(crate) fn patient_resource(address: Address, profile: &ProfileView) -> Patient {
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

pub(crate) fn document_resource(v: &RecordView) -> DocumentReference {
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

/// The filters of a DocumentReference search, checked before anything is read: `_id`, `date`
/// (when the report was shared), `type` (its kind) and `status` (always `current`).
pub(crate) struct DocumentFilters<'a> {
    ids: Option<Vec<String>>,
    dates: &'a [String],
    types: &'a [String],
    statuses: &'a [String],
}

impl<'a> DocumentFilters<'a> {
    pub(crate) fn of(search: &'a Search) -> Result<DocumentFilters<'a>> {
        let ids: Option<Vec<String>> = search.one("_id")?.map(|ids| {
            ids.split(',')
                .map(|s| s.trim_start_matches("0x").to_lowercase())
                .collect()
        });
        let dates = search.all("date");
        for d in dates {
            date_matches(d, "")?;
        }
        Ok(DocumentFilters {
            ids,
            dates,
            types: search.all("type"),
            statuses: search.all("status"),
        })
    }

    /// Whether the report `v` passes the filters.
    pub(crate) fn keep(&self, v: &RecordView) -> bool {
        self.ids
            .as_ref()
            .is_none_or(|ids| ids.contains(&record_id(&v.id)))
            && self
                .dates
                .iter()
                .all(|d| date_matches(d, &rfc3339(v.created_at)).unwrap_or(false))
            && self.types.iter().all(|t| {
                t.split(',')
                    .any(|t| token_matches(t, RECORD_KIND, v.kind.as_str()))
            })
            && self
                .statuses
                .iter()
                .all(|s| s.split(',').any(|s| s == "current"))
    }
}

/// A prescription's lines, one MedicationRequest each (FHIR's request names one medication),
/// grouped by the prescription's id.
pub(crate) fn medication_requests_of(p: &PrescriptionView) -> Vec<MedicationRequest> {
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
