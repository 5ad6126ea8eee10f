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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::r4::model::Resource;
    use medledger_records::{
        primitives::B256,
        reports::{Anchor, Covers, Medication, Meta, PrescriptionBody},
    };
    use serde_json::{Value, json};

    const PATIENT: &str = "1111111111111111111111111111111111111111";
    const DOCTOR: &str = "2222222222222222222222222222222222222222";

    fn address(hex: &str) -> Address {
        hex.parse().unwrap()
    }

    fn anchor(tx: Option<B256>) -> Anchor {
        Anchor {
            content_hash: B256::repeat_byte(0xcc),
            tx_hash: tx,
            block_number: None,
            covers: Covers::Record,
            integrity: None,
        }
    }

    /// A report shared on 2024-03-15 at 09:30 UTC.
    fn report(author: &str, meta: Option<Meta>, tx: Option<B256>) -> RecordView {
        RecordView {
            id: B256::repeat_byte(0xab),
            patient: address(PATIENT),
            author: address(author),
            kind: RecordKind::Report,
            meta,
            created_at: 1_710_495_000,
            anchor: anchor(tx),
        }
    }

    fn meta(title: &str, date: &str) -> Meta {
        Meta {
            title: title.into(),
            date: date.into(),
            notes: String::new(),
            media_type: "application/pdf".into(),
            size: 1234,
            digest: String::new(),
            resources: Default::default(),
        }
    }

    #[test]
    fn a_patient_shows_only_the_parts_of_the_profile_given() {
        // (contact, date of birth, the telecom and birthDate written)
        let rows = [
            (
                Some("fiona@example.org"),
                "1984-03-12",
                Some(json!([{"system": "other", "value": "fiona@example.org"}])),
                Some(json!("1984-03-12")),
            ),
            (Some(""), "", None, None),
            (None, "1990", None, Some(json!("1990"))),
        ];
        for (contact, born, telecom, birth_date) in rows {
            let profile = ProfileView {
                name: "Fiona Fhir".into(),
                date_of_birth: born.into(),
                contact: contact.map(str::to_string),
                emergency: false,
            };
            let p = patient_resource(address(PATIENT), &profile).to_json();
            assert_eq!(p["resourceType"], "Patient");
            assert_eq!(p["id"], PATIENT);
            assert_eq!(p["identifier"][0]["system"], "urn:medledger:account");
            assert_eq!(p["name"], json!([{"text": "Fiona Fhir"}]));
            assert_eq!(p.get("telecom"), telecom.as_ref(), "{contact:?}");
            assert_eq!(p.get("birthDate"), birth_date.as_ref(), "{born:?}");
        }
    }

    #[test]
    fn a_report_is_a_document_reference_to_its_binary() {
        let tx = B256::repeat_byte(0xee);
        // (author, metadata, anchoring transaction, the author's reference, identifiers, title)
        let rows = [
            (
                PATIENT,
                Some(meta("CT scan", "2024-03-01")),
                Some(tx),
                "Patient",
                2,
                Some("CT scan"),
            ),
            (DOCTOR, Some(meta("", "")), None, "Practitioner", 1, None),
            (DOCTOR, None, Some(tx), "Practitioner", 2, None),
        ];
        for (author, meta, tx, by, identifiers, title) in rows {
            let known = meta.is_some();
            let d = document_resource(&report(author, meta, tx)).to_json();
            let id = "ab".repeat(32);
            assert_eq!(d["id"], id);
            assert_eq!(d["subject"]["reference"], format!("Patient/{PATIENT}"));
            assert_eq!(d["author"][0]["reference"], format!("{by}/{author}"));
            assert_eq!(d["date"], "2024-03-15T09:30:00Z");
            assert_eq!(d["type"]["coding"][0]["code"], "report");
            assert_eq!(d["identifier"].as_array().unwrap().len(), identifiers);
            assert_eq!(d["content"][0]["attachment"]["url"], format!("Binary/{id}"));
            assert_eq!(d["description"].as_str(), title);
            assert_eq!(d["content"][0]["attachment"]["title"].as_str(), title);
            assert_eq!(
                d["content"][0]["attachment"].get("contentType").is_some(),
                known
            );
        }
    }

    #[test]
    fn a_document_search_keeps_the_reports_its_filters_all_match() {
        let upper_id = format!("0x{}", "AB".repeat(32));
        // (query, whether the report is kept)
        let rows: [(Vec<(&str, &str)>, bool); 13] = [
            (vec![], true),
            (vec![("_id", upper_id.as_str())], true),
            (vec![("_id", "0000,abab")], false),
            (vec![("date", "2024-03-15")], true),
            (vec![("date", "ge2024-03-16")], false),
            (vec![("date", "2024"), ("date", "lt2024-03")], false),
            (vec![("type", "report")], true),
            (vec![("type", "urn:medledger:record-kind|report")], true),
            (vec![("type", "prescription,other")], false),
            (vec![("type", "http://loinc.org|report")], false),
            (vec![("status", "current")], true),
            (vec![("status", "superseded,current")], true),
            (vec![("status", "superseded")], false),
        ];
        let v = report(PATIENT, None, None);
        for (query, kept) in rows {
            let search = Search::from_pairs(
                query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            let filters = DocumentFilters::of(&search).unwrap();
            assert_eq!(filters.keep(&v), kept, "{query:?}");
        }
        let bad = Search::from_pairs(vec![("date".into(), "March".into())]);
        assert!(DocumentFilters::of(&bad).is_err());
    }

    #[test]
    fn a_prescription_is_one_medication_request_a_line() {
        let prescription = |body: Option<PrescriptionBody>| PrescriptionView {
            id: B256::repeat_byte(0x5a),
            patient: address(PATIENT),
            doctor: address(DOCTOR),
            created_at: 1_710_495_000,
            body,
            anchor: anchor(Some(B256::repeat_byte(0xee))),
        };
        let line = |name: &str, dose: &str, frequency: &str| Medication {
            name: name.into(),
            dose: dose.into(),
            frequency: frequency.into(),
            duration: String::new(),
        };
        let body = PrescriptionBody {
            medications: vec![
                line("Amoxicillin", "500 mg", "three times a day"),
                line("Saline", "", ""),
            ],
            notes: "with food".into(),
        };
        let requests: Vec<Value> = medication_requests_of(&prescription(Some(body)))
            .iter()
            .map(Resource::to_json)
            .collect();
        let prefix = "5a".repeat(28);
        // (line, id, medication, dosage)
        let rows = [
            (
                0,
                format!("{prefix}-1"),
                "Amoxicillin",
                Some(json!([{"text": "500 mg, three times a day"}])),
            ),
            (1, format!("{prefix}-2"), "Saline", None),
        ];
        assert_eq!(requests.len(), rows.len());
        for (i, id, name, dosage) in rows {
            let m = &requests[i];
            assert_eq!(m["id"], id);
            assert_eq!(m["medicationCodeableConcept"]["text"], name);
            assert_eq!(m.get("dosageInstruction"), dosage.as_ref(), "{name}");
            assert_eq!(m["note"], json!([{"text": "with food"}]));
            assert_eq!(
                m["requester"]["reference"],
                format!("Practitioner/{DOCTOR}")
            );
            assert_eq!(
                m["groupIdentifier"]["value"],
                format!("0x{}", "5a".repeat(32))
            );
            assert_eq!(m["authoredOn"], "2024-03-15T09:30:00Z");
        }
        assert!(medication_requests_of(&prescription(None)).is_empty());
    }
}
