//! What this server says it does: the resource types it serves with their search parameters
//! (the one table both the CapabilityStatement and every search's check of its parameters read),
//! SMART's discovery document, and the SMART scopes each role's token carries.

use medledger_records::model::Role;
use serde_json::{Value, json};

use super::clinical::CLINICAL;

/// A resource type served: its name, its search parameters (name, type) besides `_count` and
/// `_offset`, and whether it is read by id.
type Served = (&'static str, &'static [Param], bool);

/// The types of this server's own data; the imported types (`CLINICAL`) come after.
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

/// The names of `kind`'s search parameters: a search of it refuses any other.
pub(crate) fn params_of(kind: &str) -> Vec<&'static str> {
    supported()
        .into_iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, p, _)| p.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default()
}

/// The CapabilityStatement: what this server does, exactly, at `base`.
pub(crate) fn capability_statement(base: &str) -> Value {
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
    json!({
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
    })
}

/// SMART's discovery document: how a SMART client gets a token from the server at `root`.
pub(crate) fn smart_configuration(root: &str) -> Value {
    let mut scopes: Vec<&str> = [Role::Patient, Role::Doctor, Role::Admin]
        .into_iter()
        .flat_map(|r| scopes_of(r).iter().copied())
        .collect();
    scopes.dedup();
    json!({
        "issuer": root,
        "token_endpoint": format!("{root}/api/v1/auth/login"),
        "grant_types_supported": ["password"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": scopes,
        "capabilities": ["permission-v2", "permission-patient", "permission-user", "client-public"],
        "code_challenge_methods_supported": [],
    })
}

/// The SMART v2 scopes a token of a person of `role` carries.
pub(crate) fn scopes_of(role: Role) -> &'static [&'static str] {
    match role {
        Role::Patient => &["patient/*.rs"],
        Role::Doctor => &["user/*.rs"],
        Role::Admin => &[
            "user/Practitioner.rs",
            "user/PractitionerRole.rs",
            "user/Organization.rs",
        ],
        // A researcher reads no patient's data through these: only de-identified exports.
        Role::Researcher => &[
            "user/Practitioner.rs",
            "user/PractitionerRole.rs",
            "user/Organization.rs",
        ],
        Role::None => &[],
    }
}

/// Whether `scopes` let a token read resources of type `kind`: a scope such as `patient/*.rs`
/// or `user/Practitioner.rs` names a type, or every type, and `r` among its permissions.
pub(crate) fn reads(scopes: &[&str], kind: &str) -> bool {
    scopes.iter().any(|scope| {
        scope
            .split_once('/')
            .and_then(|(_, rest)| rest.split_once('.'))
            .is_some_and(|(ty, perms)| (ty == "*" || ty == kind) && perms.contains('r'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_is_searched_by_the_parameters_listed_for_it() {
        // (type, its search parameters in order)
        let rows = [
            ("Patient", "_id"),
            ("Practitioner", "_id name"),
            ("Organization", "_id name"),
            ("AuditEvent", "patient _before"),
            ("Binary", ""),
            ("Group", ""),
            ("Observation", "_id patient date code status category"),
            ("Immunization", "_id patient date vaccine-code status"),
            ("CarePlan", "_id patient date category status"),
            (
                "MedicationRequest",
                "_id patient date code status category authoredon",
            ),
            ("Questionnaire", ""),
        ];
        for (kind, params) in rows {
            let expected: Vec<&str> = params.split_whitespace().collect();
            assert_eq!(params_of(kind), expected, "{kind}");
        }
    }

    #[test]
    fn the_capability_statement_lists_what_each_type_offers() {
        let statement = capability_statement("https://h/fhir");
        assert_eq!(statement["implementation"]["url"], "https://h/fhir");
        let listed = statement["rest"][0]["resource"].as_array().unwrap();
        assert_eq!(listed.len(), 20, "10 types of its own, 10 imported");
        // (type, its interactions, its operation)
        let rows: [(&str, &[&str], Option<&str>); 5] = [
            ("Patient", &["read", "search-type"], Some("everything")),
            ("Binary", &["read"], None),
            ("AuditEvent", &["search-type"], None),
            ("Group", &[], Some("export")),
            ("Observation", &["read", "search-type"], None),
        ];
        for (kind, interactions, operation) in rows {
            let r = listed.iter().find(|r| r["type"] == kind).unwrap();
            let got: Vec<&str> = r["interaction"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i["code"].as_str().unwrap())
                .collect();
            assert_eq!(got, interactions, "{kind}");
            assert_eq!(r["operation"][0]["name"].as_str(), operation, "{kind}");
            let params: Vec<&str> = r["searchParam"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(params, params_of(kind), "{kind}");
        }
    }

    #[test]
    fn each_role_reads_the_types_its_scopes_name() {
        let rows = [
            (Role::Patient, "Patient", true),
            (Role::Patient, "Observation", true),
            (Role::Doctor, "DocumentReference", true),
            (Role::Admin, "Practitioner", true),
            (Role::Admin, "Organization", true),
            (Role::Admin, "Patient", false),
            (Role::Admin, "DocumentReference", false),
            (Role::Researcher, "PractitionerRole", true),
            (Role::Researcher, "Observation", false),
            (Role::None, "Practitioner", false),
        ];
        for (role, kind, expected) in rows {
            assert_eq!(reads(scopes_of(role), kind), expected, "{role:?} {kind}");
        }
    }

    #[test]
    fn a_scope_reads_a_type_it_names_with_the_r_permission() {
        let rows: [(&[&str], &str, bool); 9] = [
            (&["patient/*.rs"], "Consent", true),
            (&["patient/*.c"], "Consent", false),
            (&["user/Observation.rs"], "Observation", true),
            (&["user/Observation.rs"], "Condition", false),
            (
                &["user/Observation.s", "user/Condition.r"],
                "Condition",
                true,
            ),
            (&["user/Observation.s"], "Observation", false),
            (&["Observation.rs"], "Observation", false),
            (&["user/*"], "Observation", false),
            (&[], "Patient", false),
        ];
        for (scopes, kind, expected) in rows {
            assert_eq!(reads(scopes, kind), expected, "{scopes:?} {kind}");
        }
    }

    #[test]
    fn smart_discovery_points_at_the_login_and_lists_each_scope_once() {
        let document = smart_configuration("https://h");
        assert_eq!(document["token_endpoint"], "https://h/api/v1/auth/login");
        assert_eq!(
            document["scopes_supported"],
            json!([
                "patient/*.rs",
                "user/*.rs",
                "user/Practitioner.rs",
                "user/PractitionerRole.rs",
                "user/Organization.rs"
            ])
        );
    }
}
