//! The public directory written as R4 resources: a doctor as a Practitioner and as a
//! PractitionerRole at their hospital, a hospital as an Organization. Each takes the directory's
//! plain values and answers a resource, leaving out what the directory does not know.

use medledger_records::directory::{Doctor, Hospital};

use super::ids::{ACCOUNT, HOSPITAL, LICENCE, id_of};
use super::model::{
    AddressPart, CodeableConcept, ContactPoint, HumanName, Identifier, Organization, Practitioner,
    PractitionerRole, Reference,
};

pub(crate) fn practitioner_resource(d: &Doctor) -> Practitioner {
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

pub(crate) fn role_resource(d: &Doctor) -> PractitionerRole {
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

pub(crate) fn organization_resource(h: &Hospital) -> Organization {
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
