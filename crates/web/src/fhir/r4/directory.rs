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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::r4::model::Resource;
    use serde_json::json;

    const DOCTOR: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn the_directory_leaves_out_what_it_does_not_know() {
        let doctor = |name: &str, licence: &str| Doctor {
            address: DOCTOR.parse().unwrap(),
            username: None,
            name: name.into(),
            specialty: "Cardiology".into(),
            licence_id: licence.into(),
            hospital_id: 7,
            active: true,
        };
        // (name, licence, how many identifiers, whether a name is written)
        for (name, licence, identifiers, named) in [
            ("Dr Ada", "L-1", 2, true),
            ("Dr Ada", "", 1, true),
            ("", "L-1", 2, false),
        ] {
            let p = practitioner_resource(&doctor(name, licence)).to_json();
            assert_eq!(p["identifier"].as_array().unwrap().len(), identifiers);
            assert_eq!(p.get("name").is_some(), named, "{name:?}");
        }
        let role = role_resource(&doctor("Dr Ada", "")).to_json();
        assert_eq!(
            role["practitioner"]["reference"],
            format!("Practitioner/{DOCTOR}")
        );
        assert_eq!(role["organization"]["reference"], "Organization/7");
        assert_eq!(role["specialty"], json!([{"text": "Cardiology"}]));

        // (street, city, contact, the address and telecom written)
        let rows = [
            (
                "1 Rue Neuve",
                "Lyon",
                "04 00",
                Some(json!([{"text": "1 Rue Neuve", "city": "Lyon"}])),
                true,
            ),
            ("", "Lyon", "", Some(json!([{"city": "Lyon"}])), false),
            ("", "", "", None, false),
        ];
        for (street, city, contact, written, telecom) in rows {
            let h = Hospital {
                id: 7,
                name: "Nord".into(),
                city: city.into(),
                address: street.into(),
                specialties: String::new(),
                services: String::new(),
                contact: contact.into(),
                active: false,
            };
            let o = organization_resource(&h).to_json();
            assert_eq!(o["id"], "7");
            assert_eq!(o["active"], false);
            assert_eq!(o.get("address"), written.as_ref(), "{street:?} {city:?}");
            assert_eq!(o.get("telecom").is_some(), telecom, "{contact:?}");
        }
    }
}
