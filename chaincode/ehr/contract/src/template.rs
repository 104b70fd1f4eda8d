//! Validation templates (the seed paper's transaction template manager): per FHIR resource
//! type, how the resource links to its patient, the attributes that must be present and
//! constraints on attribute values.
//!
//! Templates are admin-defined and stored on-chain (`PutTemplate`, versioned from 1). Until an
//! admin stores one, the built-in default of a type applies (version 0): defaults exist for
//! every resource type of the sample data and follow FHIR R4's cardinalities (`1..1` / `1..*`
//! elements) plus the patient link. A resource type is *known* iff a template exists for it.
//!
//! Paths are dot-separated element names (`valueQuantity.value`); an array on the way is
//! traversed element by element (`component.valueQuantity.value` checks every component). A
//! required entry may list alternatives for FHIR choice elements: `occurrenceDateTime|occurrenceString`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EhrError, Result};
use crate::ids::check_resource_type;

/// Most required entries, constraints, or allowed codes in one template.
pub const MAX_TEMPLATE_ITEMS: usize = 256;
/// Longest path in a template, bytes.
pub const MAX_PATH_BYTES: usize = 256;

/// How a resource references its patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientLink {
    /// The resource is the Patient: `id` equals the patient id.
    Id,
    /// `subject.reference` (Observation, Condition, Encounter, …).
    Subject,
    /// `patient.reference` (Immunization, Claim, ExplanationOfBenefit, …).
    Patient,
    /// No patient reference (Organization, Practitioner): filed under the patient whose
    /// bundle or call brought it.
    None,
}

/// The JSON type an attribute must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonType {
    /// A string.
    String,
    /// A number (FHIR `decimal`).
    Number,
    /// An integer number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An object.
    Object,
}

impl JsonType {
    fn matches(self, v: &Value) -> bool {
        match self {
            JsonType::String => v.is_string(),
            JsonType::Number => v.is_number(),
            JsonType::Integer => v.is_i64() || v.is_u64(),
            JsonType::Boolean => v.is_boolean(),
            JsonType::Object => v.is_object(),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            JsonType::String => "a string",
            JsonType::Number => "a number",
            JsonType::Integer => "an integer",
            JsonType::Boolean => "a boolean",
            JsonType::Object => "an object",
        }
    }
}

/// A constraint on every value found at `path` (absent values pass; use `required` for
/// presence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// Attribute path.
    pub path: String,
    /// The JSON type each value must have.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub json_type: Option<JsonType>,
    /// The codes each (string) value must be one of (a FHIR required value set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
}

/// A validation template for one resource type.
///
/// JSON (`PutTemplate`'s argument, `GetTemplate`'s answer):
/// `{"resource_type":"Observation","patient_link":"subject","required":["status","code","subject"],
///   "constraints":[{"path":"valueQuantity.value","type":"number"}]}`; `version`,
/// `updated_by`, `updated_at_ms` are set by the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// FHIR resource type.
    pub resource_type: String,
    /// How the resource references its patient.
    pub patient_link: PatientLink,
    /// Paths that must be present (not null, not an empty array); `a|b` = either.
    #[serde(default)]
    pub required: Vec<String>,
    /// Constraints on values.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// Version: 0 for a built-in default, 1, 2, … for on-chain versions (set by the contract).
    #[serde(default)]
    pub version: u64,
    /// Identity that stored this version (set by the contract; empty for defaults).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub updated_by: String,
    /// When this version was stored, ms since the Unix epoch (tx timestamp; 0 for defaults).
    #[serde(default)]
    pub updated_at_ms: u64,
}

fn check_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.len() <= MAX_PATH_BYTES
        && path.split('.').all(|seg| {
            !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(EhrError::invalid(
            "template path must be dot-separated element names",
        ))
    }
}

/// Values at `path` below `v`; arrays on the way and at the end are traversed, nulls skipped.
fn values_at<'a>(v: &'a Value, path: &[&str], out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => {
            for item in items {
                values_at(item, path, out);
            }
        }
        Value::Null => {}
        _ => match path.split_first() {
            None => out.push(v),
            Some((first, rest)) => {
                if let Some(child) = v.get(first) {
                    values_at(child, rest, out);
                }
            }
        },
    }
}

fn lookup<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let segments: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    values_at(v, &segments, &mut out);
    out
}

impl Template {
    /// Checks the template's own shape (resource type, paths, sizes).
    ///
    /// # Errors
    /// [`EhrError::Invalid`].
    pub fn validate_definition(&self) -> Result<()> {
        check_resource_type(&self.resource_type)?;
        if self.required.len() > MAX_TEMPLATE_ITEMS || self.constraints.len() > MAX_TEMPLATE_ITEMS {
            return Err(EhrError::invalid(format!(
                "a template holds at most {MAX_TEMPLATE_ITEMS} required entries and constraints"
            )));
        }
        for r in &self.required {
            for alt in r.split('|') {
                check_path(alt)?;
            }
        }
        for c in &self.constraints {
            check_path(&c.path)?;
            match (&c.json_type, &c.one_of) {
                (None, None) => {
                    return Err(EhrError::invalid("a constraint needs `type` or `one_of`"));
                }
                (_, Some(codes)) if codes.is_empty() || codes.len() > MAX_TEMPLATE_ITEMS => {
                    return Err(EhrError::invalid(format!(
                        "`one_of` holds 1 to {MAX_TEMPLATE_ITEMS} codes"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks a parsed resource of this template's type for patient `patient_id`: the patient
    /// link, required attributes and constraints.
    ///
    /// # Errors
    /// [`EhrError::Invalid`] naming the attribute path (never its value).
    pub fn check(&self, resource: &Value, patient_id: &str) -> Result<()> {
        let rt = &self.resource_type;
        let link_ok = match self.patient_link {
            PatientLink::None => true,
            PatientLink::Id => resource.get("id").and_then(Value::as_str) == Some(patient_id),
            PatientLink::Subject | PatientLink::Patient => {
                let element = if self.patient_link == PatientLink::Subject {
                    "subject"
                } else {
                    "patient"
                };
                resource
                    .get(element)
                    .and_then(|r| r.get("reference"))
                    .and_then(Value::as_str)
                    .is_some_and(|r| references_patient(r, patient_id))
            }
        };
        if !link_ok {
            let what = match self.patient_link {
                PatientLink::Id => "id",
                PatientLink::Subject => "subject.reference",
                _ => "patient.reference",
            };
            return Err(EhrError::invalid(format!(
                "{rt}: `{what}` does not reference the patient of this call"
            )));
        }
        for r in &self.required {
            if !r.split('|').any(|alt| !lookup(resource, alt).is_empty()) {
                return Err(EhrError::invalid(format!(
                    "{rt}: required attribute `{r}` is missing"
                )));
            }
        }
        for c in &self.constraints {
            for v in lookup(resource, &c.path) {
                if let Some(t) = c.json_type.filter(|t| !t.matches(v)) {
                    return Err(EhrError::invalid(format!(
                        "{rt}: `{}` must be {}",
                        c.path,
                        t.as_str()
                    )));
                }
                let allowed =
                    |codes: &Vec<String>| v.as_str().is_some_and(|s| codes.iter().any(|c| c == s));
                if c.one_of.as_ref().is_some_and(|codes| !allowed(codes)) {
                    return Err(EhrError::invalid(format!(
                        "{rt}: `{}` is not one of the allowed codes",
                        c.path
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Whether a FHIR reference points at `Patient/{patient_id}`: a relative reference
/// (`Patient/{id}`), an absolute one ending in it, or the bundle-local `urn:uuid:{id}` the
/// sample data uses.
pub fn references_patient(reference: &str, patient_id: &str) -> bool {
    if let Some(id) = reference.strip_prefix("urn:uuid:") {
        return id == patient_id;
    }
    reference
        .strip_suffix(patient_id)
        .is_some_and(|head| head == "Patient/" || head.ends_with("/Patient/"))
}

fn codes(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|s| (*s).to_owned()).collect())
}

fn default(
    resource_type: &str,
    patient_link: PatientLink,
    required: &[&str],
    constraints: Vec<Constraint>,
) -> Template {
    Template {
        resource_type: resource_type.to_owned(),
        patient_link,
        required: required.iter().map(|s| (*s).to_owned()).collect(),
        constraints,
        version: 0,
        updated_by: String::new(),
        updated_at_ms: 0,
    }
}

fn typed(path: &str, t: JsonType) -> Constraint {
    Constraint {
        path: path.to_owned(),
        json_type: Some(t),
        one_of: None,
    }
}

fn coded(path: &str, list: &[&str]) -> Constraint {
    Constraint {
        path: path.to_owned(),
        json_type: None,
        one_of: codes(list),
    }
}

/// FHIR R4 `FinancialResourceStatusCodes` (Claim, ExplanationOfBenefit).
const FINANCIAL_STATUS: &[&str] = &["active", "cancelled", "draft", "entered-in-error"];

/// The built-in default templates (version 0), one per resource type of the sample data:
/// Patient, Encounter, Observation, Condition, Procedure, Immunization, MedicationRequest,
/// Claim, ExplanationOfBenefit, DiagnosticReport, CarePlan, Organization, Practitioner,
/// AllergyIntolerance, Goal, ImagingStudy. Required attributes are FHIR R4's mandatory
/// elements (plus `code` where a record without it is meaningless); code constraints are FHIR
/// R4 required value sets.
pub fn default_templates() -> Vec<Template> {
    use JsonType::*;
    use PatientLink as L;
    let quantity_value = |p: &str| typed(p, Number);
    vec![
        default(
            "Patient",
            L::Id,
            &[],
            vec![
                coded("gender", &["male", "female", "other", "unknown"]),
                typed("birthDate", String),
                typed("active", Boolean),
            ],
        ),
        default(
            "Encounter",
            L::Subject,
            &["status", "class", "subject"],
            vec![coded(
                "status",
                &[
                    "planned",
                    "arrived",
                    "triaged",
                    "in-progress",
                    "onleave",
                    "finished",
                    "cancelled",
                    "entered-in-error",
                    "unknown",
                ],
            )],
        ),
        default(
            "Observation",
            L::Subject,
            &["status", "code", "subject"],
            vec![
                coded(
                    "status",
                    &[
                        "registered",
                        "preliminary",
                        "final",
                        "amended",
                        "corrected",
                        "cancelled",
                        "entered-in-error",
                        "unknown",
                    ],
                ),
                quantity_value("valueQuantity.value"),
                quantity_value("component.valueQuantity.value"),
            ],
        ),
        default("Condition", L::Subject, &["code", "subject"], vec![]),
        default(
            "Procedure",
            L::Subject,
            &["status", "code", "subject"],
            vec![coded(
                "status",
                &[
                    "preparation",
                    "in-progress",
                    "not-done",
                    "on-hold",
                    "stopped",
                    "completed",
                    "entered-in-error",
                    "unknown",
                ],
            )],
        ),
        default(
            "Immunization",
            L::Patient,
            &[
                "status",
                "vaccineCode",
                "patient",
                "occurrenceDateTime|occurrenceString",
            ],
            vec![
                coded("status", &["completed", "entered-in-error", "not-done"]),
                typed("primarySource", Boolean),
            ],
        ),
        default(
            "MedicationRequest",
            L::Subject,
            &[
                "status",
                "intent",
                "medicationCodeableConcept|medicationReference",
                "subject",
            ],
            vec![],
        ),
        default(
            "Claim",
            L::Patient,
            &[
                "status",
                "type",
                "use",
                "patient",
                "created",
                "provider",
                "priority",
                "insurance",
            ],
            vec![
                coded("status", FINANCIAL_STATUS),
                quantity_value("total.value"),
            ],
        ),
        default(
            "ExplanationOfBenefit",
            L::Patient,
            &[
                "status",
                "type",
                "use",
                "patient",
                "created",
                "insurer",
                "provider",
                "outcome",
                "insurance",
            ],
            vec![
                coded("status", FINANCIAL_STATUS),
                quantity_value("total.amount.value"),
                quantity_value("payment.amount.value"),
            ],
        ),
        default(
            "DiagnosticReport",
            L::Subject,
            &["status", "code", "subject"],
            vec![],
        ),
        default(
            "CarePlan",
            L::Subject,
            &["status", "intent", "subject"],
            vec![],
        ),
        default("Organization", L::None, &[], vec![typed("active", Boolean)]),
        default("Practitioner", L::None, &[], vec![typed("active", Boolean)]),
        default("AllergyIntolerance", L::Patient, &["patient"], vec![]),
        default(
            "Goal",
            L::Subject,
            &["lifecycleStatus", "description", "subject"],
            vec![],
        ),
        default(
            "ImagingStudy",
            L::Subject,
            &["status", "subject"],
            vec![
                typed("numberOfSeries", Integer),
                typed("numberOfInstances", Integer),
            ],
        ),
    ]
}

/// The built-in default template of `resource_type`, if any.
pub fn default_template(resource_type: &str) -> Option<Template> {
    default_templates()
        .into_iter()
        .find(|t| t.resource_type == resource_type)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obs() -> Value {
        json!({"resourceType":"Observation","id":"o1","status":"final",
               "code":{"text":"x"},"subject":{"reference":"urn:uuid:p1"},
               "valueQuantity":{"value":5.5,"unit":"cm"},
               "component":[{"valueQuantity":{"value":1}},{"valueQuantity":{"value":2}}]})
    }

    #[test]
    fn defaults_are_valid_and_unique() {
        let all = default_templates();
        assert_eq!(all.len(), 16);
        for t in &all {
            t.validate_definition().unwrap();
            assert_eq!(
                all.iter()
                    .filter(|o| o.resource_type == t.resource_type)
                    .count(),
                1
            );
            // JSON round trip (what PutTemplate takes and GetTemplate returns).
            let back: Template = serde_json::from_slice(&serde_json::to_vec(t).unwrap()).unwrap();
            assert_eq!(&back, t);
        }
    }

    #[test]
    fn observation_checks() {
        let t = default_template("Observation").unwrap();
        t.check(&obs(), "p1").unwrap();
        // Table: (mutation, expected error fragment).
        type Mutation = fn(&mut Value);
        let cases: [(Mutation, &str); 7] = [
            (
                |v| v["subject"]["reference"] = json!("urn:uuid:p2"),
                "subject.reference",
            ),
            (
                |v| v["subject"] = json!({"display": "p1"}),
                "subject.reference",
            ),
            (
                |v| v["subject"]["reference"] = json!("Patient/p2"),
                "subject.reference",
            ),
            (
                |v| {
                    v.as_object_mut().unwrap().remove("status");
                },
                "`status` is missing",
            ),
            (|v| v["status"] = json!("done"), "`status` is not one of"),
            (
                |v| v["valueQuantity"]["value"] = json!("5.5"),
                "`valueQuantity.value` must be a number",
            ),
            (
                |v| v["component"][1]["valueQuantity"]["value"] = json!(true),
                "component.valueQuantity.value",
            ),
        ];
        for (mutate, fragment) in cases {
            let mut v = obs();
            mutate(&mut v);
            let e = t.check(&v, "p1").unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().contains(fragment), "{e} !~ {fragment}");
            // Messages never echo values.
            assert!(!e.to_string().contains("done") && !e.to_string().contains("5.5"));
        }
        let mut v = obs();
        v["subject"]["reference"] = json!("Patient/p1");
        t.check(&v, "p1").unwrap();
        v["subject"]["reference"] = json!("https://ehr.example/fhir/Patient/p1");
        t.check(&v, "p1").unwrap();
        v["subject"]["reference"] = json!("https://ehr.example/fhir/XPatient/p1");
        assert!(t.check(&v, "p1").is_err());
        // Null counts as absent; an empty array too.
        let mut v = obs();
        v["code"] = Value::Null;
        assert!(t.check(&v, "p1").is_err());
    }

    #[test]
    fn choice_alternatives_and_patient_id() {
        let t = default_template("Immunization").unwrap();
        let mut v = json!({"resourceType":"Immunization","id":"i","status":"completed",
            "vaccineCode":{},"patient":{"reference":"urn:uuid:p"},"occurrenceString":"2020"});
        t.check(&v, "p").unwrap();
        v.as_object_mut().unwrap().remove("occurrenceString");
        assert!(
            t.check(&v, "p")
                .unwrap_err()
                .to_string()
                .contains("occurrenceDateTime|occurrenceString")
        );
        let p = default_template("Patient").unwrap();
        p.check(&json!({"resourceType":"Patient","id":"p"}), "p")
            .unwrap();
        assert!(
            p.check(&json!({"resourceType":"Patient","id":"q"}), "p")
                .is_err()
        );
        let o = default_template("Organization").unwrap();
        o.check(&json!({"resourceType":"Organization","id":"x"}), "p")
            .unwrap();
    }

    #[test]
    fn definitions_are_checked() {
        let mut t = default_template("Observation").unwrap();
        t.required.push("a..b".into());
        assert!(t.validate_definition().is_err());
        let mut t = default_template("Observation").unwrap();
        t.constraints.push(Constraint {
            path: "x".into(),
            json_type: None,
            one_of: None,
        });
        assert!(t.validate_definition().is_err());
        let mut t = default_template("Observation").unwrap();
        t.resource_type = "observation".into();
        assert!(t.validate_definition().is_err());
        let e = serde_json::from_str::<Template>(
            r#"{"resource_type":"X","patient_link":"subject","extra":1}"#,
        );
        assert!(e.is_err(), "unknown fields are refused");
    }
}
