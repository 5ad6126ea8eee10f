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
