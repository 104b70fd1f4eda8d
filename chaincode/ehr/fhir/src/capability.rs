//! What the server supports, as one table, and the `CapabilityStatement` generated from it
//! (FHIR R4 capabilitystatement.html). Handlers consult the same table, so the statement
//! says exactly what answers.

use serde_json::{Value, json};

/// A FHIR R4 RESTful interaction (`TypeRestfulInteraction` / `SystemRestfulInteraction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// `GET [base]/T/id`.
    Read,
    /// `POST [base]/T`.
    Create,
    /// `GET [base]/T/id/_history`.
    HistoryInstance,
}

impl Interaction {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Interaction::Read => "read",
            Interaction::Create => "create",
            Interaction::HistoryInstance => "history-instance",
        }
    }
}

/// A resource type and the interactions served for it.
#[derive(Debug, Clone, Copy)]
pub struct TypeSupport {
    /// FHIR resource type.
    pub resource_type: &'static str,
    /// Interactions served.
    pub interactions: &'static [Interaction],
}

use Interaction::{Create, HistoryInstance, Read};

/// Record types created one by one with `POST [base]/T` (each names its patient in
/// `subject` or `patient`). Read and history of these need the record's patient, which a
/// `GET [base]/T/id` does not name: they come with the contract's `LocateRecords` (G4).
const RECORD: &[Interaction] = &[Create];

/// The table: every resource type and what it answers to.
pub const RESOURCES: &[TypeSupport] = &[
    TypeSupport {
        resource_type: "Patient",
        interactions: &[Read, Create, HistoryInstance],
    },
    TypeSupport {
        resource_type: "AllergyIntolerance",
        interactions: RECORD,
    },
    TypeSupport {
        resource_type: "CarePlan",
        interactions: RECORD,
    },
    TypeSupport {
        resource_type: "Condition",
        interactions: RECORD,
    },
    TypeSupport {
        resource_type: "DiagnosticReport",
        interactions: RECORD,
    },
    TypeSupport {
        resource_type: "Encounter",
        interactions: RECORD,
    },
    TypeSupport {
        resource_type: "Immunization",
        interactions: RECORD,
    },
    TypeSupport {
        resource_type: "MedicationRequest",
        interactions: RECORD,
    },
    TypeSupport {
        resource_type: "Observation",
        interactions: RECORD,
    },
    TypeSupport {
        resource_type: "Procedure",
        interactions: RECORD,
    },
];

/// System interactions: `POST [base]` with a Bundle of these types.
pub const SYSTEM: &[&str] = &["transaction", "batch"];

/// Whether `resource_type` answers to `interaction`.
pub fn supports(resource_type: &str, interaction: Interaction) -> bool {
    RESOURCES
        .iter()
        .any(|t| t.resource_type == resource_type && t.interactions.contains(&interaction))
}

/// Whether `resource_type` is in the table at all.
pub fn known_type(resource_type: &str) -> bool {
    RESOURCES.iter().any(|t| t.resource_type == resource_type)
}

/// The server's `CapabilityStatement` (kind `instance`, FHIR 4.0.1, JSON only, SMART
/// security service), for `GET [base]/metadata`. `base_url` is the API's public base.
pub fn capability_statement(base_url: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|t| {
            json!({
                "type": t.resource_type,
                "interaction": t.interactions.iter().map(|i| json!({"code": i.code()})).collect::<Vec<_>>(),
                "versioning": "versioned",
                "readHistory": false,
                "updateCreate": false,
                "conditionalCreate": false,
                "conditionalRead": "not-supported",
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-08",
        "publisher": "Medledger",
        "kind": "instance",
        "software": {"name": "Medledger ehr-fhir", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {
            "description": "FHIR R4 API over the Medledger EHR ledger: writes are committed transactions, reads are audited accesses",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "service": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }]
                }],
                "description": "Mutual TLS with an enrolled identity's TLS certificate, or a bearer token from the token endpoint (SMART Backend Services, private_key_jwt ES256)",
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": format!("{base_url}/auth/token")}],
                }],
            },
            "resource": resources,
            "interaction": SYSTEM.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_lists_the_table() {
        let c = capability_statement("https://h/fhir");
        assert_eq!(c["fhirVersion"], "4.0.1");
        let rest = &c["rest"][0];
        assert_eq!(
            rest["resource"].as_array().map(Vec::len),
            Some(RESOURCES.len())
        );
        assert_eq!(rest["resource"][0]["type"], "Patient");
        let patient: Vec<&str> = rest["resource"][0]["interaction"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["code"].as_str())
            .collect();
        assert_eq!(patient, ["read", "create", "history-instance"]);
        assert_eq!(rest["interaction"][0]["code"], "transaction");
        assert!(supports("Observation", Interaction::Create));
        assert!(!supports("Observation", Interaction::Read));
        assert!(!known_type("Bundle"));
    }
}
