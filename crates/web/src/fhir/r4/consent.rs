//! The chain's part of a record written as R4 resources: a grant as a Consent, an entry of the
//! access log as an AuditEvent, and where an anchored record comes from as a Provenance. Each
//! takes plain values and answers a resource.

use medledger_records::{
    audit::{AccessEvent, Action},
    model::{Purpose, Scope, rfc3339},
    primitives::B256,
    reports::RecordView,
    sharing::GrantView,
};

use super::ids::{ACCESS, GRANT, TRANSACTION, id_of, record_id};
use super::model::{
    AuditAgent, AuditEntity, AuditEvent, AuditSource, CodeableConcept, Coding, Consent,
    ConsentActor, ConsentData, Identifier, Period, Provenance, ProvenanceAgent, ProvenanceEntity,
    Provision, Reference,
};
use super::resources::{kind_coding, person_ref, purpose_coding};

pub(crate) fn consent_resource(g: &GrantView, tx: Option<B256>) -> Consent {
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

pub(crate) fn audit_resource(e: &AccessEvent) -> AuditEvent {
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

/// The provenance of an anchored record (served under the record's id): its author, its time,
/// and the transaction that anchored it; `targets` are the resources it is served as.
pub(crate) fn provenance_of(
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

pub(crate) fn report_provenance(v: &RecordView) -> Provenance {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::r4::model::Resource;
    use medledger_records::{
        model::RecordKind,
        primitives::Address,
        reports::{Anchor, Covers},
    };
    use serde_json::{Value, json};

    const PATIENT: &str = "1111111111111111111111111111111111111111";
    const DOCTOR: &str = "2222222222222222222222222222222222222222";

    fn address(hex: &str) -> Address {
        hex.parse().unwrap()
    }

    fn grant(doctor: Option<Address>, hospital: Option<u64>, scope: Scope) -> GrantView {
        GrantView {
            id: 9,
            patient: address(PATIENT),
            doctor,
            hospital_id: hospital,
            scope,
            kinds: vec![RecordKind::Report],
            record_ids: vec![B256::repeat_byte(0xab)],
            purpose: Purpose::Research,
            expires_at: 1_710_495_000,
            revoked: false,
            active: true,
        }
    }

    #[test]
    fn a_grant_is_a_consent_that_names_its_grantee_and_what_it_covers() {
        let doctor = Some(address(DOCTOR));
        let practitioner = format!("Practitioner/{DOCTOR}");
        // (doctor, hospital, scope, the grantee's reference, how many codes and data it lists)
        let rows = [
            (doctor, None, Scope::All, json!(practitioner), 0, 0),
            (None, Some(3), Scope::Kinds, json!("Organization/3"), 1, 0),
            (doctor, None, Scope::Records, json!(practitioner), 0, 1),
            (None, None, Scope::All, Value::Null, 0, 0),
        ];
        for (doctor, hospital, scope, grantee, codes, data) in rows {
            let c = consent_resource(&grant(doctor, hospital, scope), None).to_json();
            let provision = &c["provision"];
            let actor = &provision["actor"][0]["reference"]["reference"];
            assert_eq!(*actor, grantee, "{scope:?}");
            let listed = |name: &str| provision[name].as_array().map_or(0, Vec::len);
            assert_eq!((listed("code"), listed("data")), (codes, data), "{scope:?}");
            assert_eq!(provision["period"], json!({"end": "2024-03-15T09:30:00Z"}));
            assert_eq!(provision["purpose"][0]["code"], "HRESCH");
            assert_eq!(c["status"], "active");
            assert_eq!(c["id"], "9");
            assert_eq!(c["identifier"].as_array().unwrap().len(), 1);
        }
        let kinds = consent_resource(&grant(None, Some(3), Scope::Kinds), None).to_json();
        assert_eq!(
            kinds["provision"]["code"][0]["coding"][0],
            json!({"system": "urn:medledger:record-kind", "code": "report", "display": "report"})
        );
        let records = consent_resource(&grant(doctor, None, Scope::Records), None).to_json();
        let document = format!("DocumentReference/{}", "ab".repeat(32));
        assert_eq!(
            records["provision"]["data"][0],
            json!({"meaning": "instance", "reference": {"reference": document}})
        );
        let mut ended = grant(None, Some(3), Scope::All);
        ended.active = false;
        let c = consent_resource(&ended, Some(B256::repeat_byte(0xee))).to_json();
        assert_eq!(c["status"], "inactive");
        assert_eq!(c["identifier"][1]["system"], "urn:medledger:transaction");
    }

    fn access(
        action: Action,
        reader: &str,
        purpose: Option<&'static str>,
        emergency: bool,
    ) -> AccessEvent {
        AccessEvent {
            action,
            summary: "opened a report".into(),
            patient: address(PATIENT),
            reader: address(reader),
            reader_name: Some("Dr Ada".into()),
            record_id: None,
            record_ids: vec![B256::repeat_byte(0xab)],
            record_title: None,
            purpose,
            emergency,
            time: 1_710_495_000,
            block_number: 5,
            tx_hash: B256::repeat_byte(0xee),
        }
    }

    #[test]
    fn an_access_is_an_audit_event_whose_id_is_its_transaction_and_what_it_was() {
        // (what was done, the event's action, its subtype)
        let rows = [
            (Action::Opened, "R", "opened"),
            (Action::Viewed, "R", "viewed"),
            (Action::ViewedProfile, "R", "viewed-profile"),
            (Action::DeclaredEmergency, "E", "declared-emergency"),
            (Action::EndedEmergency, "E", "ended-emergency"),
            (Action::IncludedInExport, "R", "included-in-export"),
        ];
        for (action, code, subtype) in rows {
            let a = audit_resource(&access(action, DOCTOR, None, false)).to_json();
            let id = a["id"].as_str().unwrap();
            assert_eq!(id.len(), 64, "{id}");
            assert_eq!(
                id,
                format!("{}-{subtype}", &"ee".repeat(32)[..63 - subtype.len()])
            );
            assert_eq!(a["action"], code, "{subtype}");
            assert_eq!(a["subtype"][0]["code"], subtype);
            assert_eq!(a["recorded"], "2024-03-15T09:30:00Z");
            let entities: Vec<&Value> = a["entity"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| &e["what"])
                .collect();
            assert_eq!(entities.len(), 3);
            assert_eq!(entities[0]["reference"], format!("Patient/{PATIENT}"));
            assert_eq!(
                entities[1]["identifier"]["value"],
                format!("0x{}", "ee".repeat(32))
            );
            assert_eq!(
                entities[2]["reference"],
                format!("DocumentReference/{}", "ab".repeat(32))
            );
        }
        // (who read, the purpose logged, in an emergency, the agent's type, the reason given)
        let rows = [
            (DOCTOR, None, false, "Practitioner", "TREAT"),
            (DOCTOR, Some("treatment"), false, "Practitioner", "TREAT"),
            (DOCTOR, Some("research"), false, "Practitioner", "HRESCH"),
            (DOCTOR, Some("research"), true, "Practitioner", "ETREAT"),
            (PATIENT, None, true, "Patient", "ETREAT"),
        ];
        for (reader, purpose, emergency, who, reason) in rows {
            let a = audit_resource(&access(Action::Viewed, reader, purpose, emergency)).to_json();
            let agent = &a["agent"][0]["who"];
            assert_eq!(agent["reference"], format!("{who}/{reader}"));
            assert_eq!(agent["display"], "Dr Ada");
            let coding = &a["purposeOfEvent"][0]["coding"][0]["code"];
            assert_eq!(*coding, reason, "{purpose:?} {emergency}");
        }
    }

    #[test]
    fn a_reports_provenance_names_its_author_and_the_transaction_that_anchored_it() {
        // (author, anchoring transaction, the agent's reference, how many entities)
        let rows = [
            (PATIENT, Some(B256::repeat_byte(0xee)), "Patient", 1),
            (DOCTOR, Some(B256::repeat_byte(0xee)), "Practitioner", 1),
            (DOCTOR, None, "Practitioner", 0),
        ];
        for (author, tx, agent, entities) in rows {
            let v = RecordView {
                id: B256::repeat_byte(0xab),
                patient: address(PATIENT),
                author: address(author),
                kind: RecordKind::Report,
                meta: None,
                created_at: 1_710_495_000,
                anchor: Anchor {
                    content_hash: B256::ZERO,
                    tx_hash: tx,
                    block_number: None,
                    covers: Covers::Record,
                    integrity: None,
                },
            };
            let p = report_provenance(&v).to_json();
            let id = "ab".repeat(32);
            assert_eq!(p["id"], id);
            assert_eq!(
                p["target"],
                json!([{"reference": format!("DocumentReference/{id}")}])
            );
            assert_eq!(
                p["agent"][0]["who"]["reference"],
                format!("{agent}/{author}")
            );
            assert_eq!(p["recorded"], "2024-03-15T09:30:00Z");
            assert_eq!(p["entity"].as_array().map_or(0, Vec::len), entities);
        }
    }
}
