//! FHIR R4 Bundles as the importer reads them: the resources of a bundle file as their exact
//! bytes (ADR 0021), and the chunks (Bundles of at most N bytes and entries) a set of them is
//! sent in.
//!
//! Parsing reuses the chaincode's own code ([`ehr_chaincode::fhir`]), so the client and the
//! contract agree byte for byte on what a resource is and on its record id.

use std::path::{Path, PathBuf};

use ehr_chaincode::fhir::{
    MAX_BUNDLE_BYTES, MAX_BUNDLE_ENTRIES, bundle_resources, parse_resource, split_bundle,
};

/// One entry's resource of a bundle file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleResource {
    /// `ResourceType/id`.
    pub record_id: String,
    /// FHIR resource type.
    pub resource_type: String,
    /// Hex SHA-256 of [`Self::bytes`] (what the chaincode stores as the record's hash).
    pub sha256: String,
    /// The resource's exact bytes in the file.
    pub bytes: Vec<u8>,
}

/// A bundle file's resources and the patient they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientBundle {
    /// `Patient.id` of the bundle's (first) Patient resource.
    pub patient_id: String,
    /// Every entry's resource, in entry order.
    pub resources: Vec<BundleResource>,
}

impl PatientBundle {
    /// The strings that name the patient in clear, per FHIR R4 Patient: every Patient
    /// resource's `name[].family`, `name[].given[]` and `identifier[].value` (Synthea puts
    /// medical record, social security, driver's licence and passport numbers there), each once, in resource order. Privacy checks look for them: none may reach the
    /// ledger (ADR 0031), another organization's store or a log. Fields that are absent or
    /// not strings are skipped; an empty list means the bundle names nobody.
    pub fn patient_identifiers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let patients = self
            .resources
            .iter()
            .filter(|r| r.resource_type == "Patient");
        for r in patients {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.bytes) else {
                continue;
            };
            let strings = |v: &serde_json::Value| -> Vec<String> {
                match v {
                    serde_json::Value::String(s) => vec![s.clone()],
                    serde_json::Value::Array(a) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                }
            };
            for name in v["name"].as_array().into_iter().flatten() {
                out.extend(strings(&name["family"]));
                out.extend(strings(&name["given"]));
            }
            for ident in v["identifier"].as_array().into_iter().flatten() {
                out.extend(strings(&ident["value"]));
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|s| !s.is_empty() && seen.insert(s.clone()));
        out
    }
}

/// Why a bundle file could not be read. Messages name JSON positions, entry numbers and
/// limits, never a value of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a FHIR Bundle the chaincode accepts (JSON error position, Bundle.type, methods).
    #[error("not an importable FHIR Bundle: {0}")]
    Invalid(String),
    /// The bundle has no Patient resource, so there is no patient to file it under.
    #[error("the bundle has no Patient resource")]
    NoPatient,
}

/// Hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(medledger_msp::crypto::sha256(bytes))
}

/// Reads a FHIR Bundle (`transaction`, `batch` or `collection`, any size): each entry's
/// `resource` as its exact bytes with its record id and SHA-256, and the patient id of its
/// Patient resource.
///
/// # Errors
/// [`BundleError::Invalid`] as the chaincode would refuse it (not JSON, not a Bundle, an
/// entry without resource or with a method other than POST, a resource without a valid
/// `resourceType`/`id` or over 1 MiB); [`BundleError::NoPatient`].
pub fn read_bundle(bytes: &[u8]) -> Result<PatientBundle, BundleError> {
    let invalid = |e: ehr_chaincode::EhrError| BundleError::Invalid(e.to_string());
    // Chunks of at most the chaincode's limits, so `bundle_resources` accepts each.
    let chunks = split_bundle(bytes, MAX_BUNDLE_BYTES, MAX_BUNDLE_ENTRIES).map_err(invalid)?;
    let mut resources = Vec::new();
    for chunk in &chunks {
        for raw in bundle_resources(chunk).map_err(invalid)? {
            let parsed = parse_resource(raw).map_err(invalid)?;
            resources.push(BundleResource {
                record_id: parsed.reference.to_string(),
                resource_type: parsed.reference.resource_type.clone(),
                sha256: sha256_hex(raw),
                bytes: raw.to_vec(),
            });
        }
    }
    let patient_id = resources
        .iter()
        .find(|r| r.resource_type == "Patient")
        .and_then(|r| r.record_id.split_once('/'))
        .map(|(_, id)| id.to_owned())
        .ok_or(BundleError::NoPatient)?;
    Ok(PatientBundle {
        patient_id,
        resources,
    })
}

/// Bytes a chunk adds around its entries' resources: the Bundle head and tail, and
/// `{"resource":…}` plus a comma per entry.
const CHUNK_HEAD: &str = r#"{"resourceType":"Bundle","type":"transaction","entry":["#;
const CHUNK_TAIL: &str = "]}";
const ENTRY_OVERHEAD: usize = r#"{"resource":},"#.len();

/// Whether `resource` fits alone in a chunk of at most `max_bytes`.
pub fn fits_in_chunk(resource: &BundleResource, max_bytes: usize) -> bool {
    CHUNK_HEAD.len() + CHUNK_TAIL.len() + ENTRY_OVERHEAD + resource.bytes.len() <= max_bytes
}

/// FHIR `transaction` Bundles holding `resources` (byte for byte, in order), each at most
/// `max_bytes` long with at most `max_entries` entries: the transient `bundle` of one
/// `CreateRecordsFromBundle` call each. Split with the chaincode's
/// [`ehr_chaincode::fhir::split_bundle`].
///
/// # Errors
/// [`BundleError::Invalid`] if one resource alone does not fit in `max_bytes` (check with
/// [`fits_in_chunk`] first).
pub fn chunk_resources(
    resources: &[&BundleResource],
    max_bytes: usize,
    max_entries: usize,
) -> Result<Vec<Vec<u8>>, BundleError> {
    if resources.is_empty() {
        return Ok(Vec::new());
    }
    let mut bundle = CHUNK_HEAD.as_bytes().to_vec();
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            bundle.push(b',');
        }
        bundle.extend_from_slice(br#"{"resource":"#);
        bundle.extend_from_slice(&r.bytes);
        bundle.push(b'}');
    }
    bundle.extend_from_slice(CHUNK_TAIL.as_bytes());
    split_bundle(&bundle, max_bytes, max_entries.max(1))
        .map_err(|e| BundleError::Invalid(e.to_string()))
}

/// The sample FHIR bundles (README, "Sample data"): `$MEDLEDGER_EHR_BUNDLES` if set, else the
/// first `shared/data/ehr/bundles` folder in `start` or one of its parents; `None` if neither.
pub fn find_sample_bundles(start: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MEDLEDGER_EHR_BUNDLES") {
        return Some(PathBuf::from(dir));
    }
    start
        .ancestors()
        .map(|a| a.join("shared/data/ehr/bundles"))
        .find(|d| d.is_dir())
}

/// The bundle files named by `paths`: files as given, directories' `*.json` files (not
/// recursive), sorted by path within each directory.
///
/// # Errors
/// An I/O error naming nothing but its kind if a path cannot be listed.
pub fn bundle_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BUNDLE: &str = r#"{"resourceType":"Bundle","type":"transaction","entry":[
        {"fullUrl":"urn:uuid:p1","resource":{"resourceType":"Patient","id":"p1","x":1.50},"request":{"method":"POST","url":"Patient"}},
        {"resource":{"id":"o1","resourceType":"Observation","v":1e2,"subject":{"reference":"urn:uuid:p1"}}},
        {"resource":{"resourceType":"Observation","id":"o2","s":"\u00e9","subject":{"reference":"urn:uuid:p1"}}}]}"#;

    #[test]
    fn reads_exact_bytes_ids_hashes_and_patient() {
        let b = read_bundle(BUNDLE.as_bytes()).unwrap();
        assert_eq!(b.patient_id, "p1");
        let ids: Vec<&str> = b.resources.iter().map(|r| r.record_id.as_str()).collect();
        assert_eq!(ids, ["Patient/p1", "Observation/o1", "Observation/o2"]);
        assert_eq!(
            b.resources[1].bytes,
            br#"{"id":"o1","resourceType":"Observation","v":1e2,"subject":{"reference":"urn:uuid:p1"}}"#
        );
        assert_eq!(b.resources[2].resource_type, "Observation");
        assert_eq!(
            b.resources[0].sha256,
            sha256_hex(br#"{"resourceType":"Patient","id":"p1","x":1.50}"#)
        );
    }

    #[test]
    fn patient_identifiers_are_names_and_identifier_values() {
        let b = read_bundle(BUNDLE.as_bytes()).unwrap();
        assert!(b.patient_identifiers().is_empty());
        let named = r#"{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient","id":"p",
            "name":[{"family":"Doe","given":["Jane","Q"]},{"family":"Doe"}],
            "identifier":[{"value":"p"},{"system":"ssn","value":"999-12-3456"},{"value":7}]}},
            {"resource":{"resourceType":"Observation","id":"o","name":[{"family":"Other"}]}}]}"#;
        let b = read_bundle(named.as_bytes()).unwrap();
        assert_eq!(
            b.patient_identifiers(),
            ["Doe", "Jane", "Q", "p", "999-12-3456"]
        );
        let Some(dir) = sample_dir() else { return };
        for file in std::fs::read_dir(dir).unwrap().take(3) {
            let b = read_bundle(&std::fs::read(file.unwrap().path()).unwrap()).unwrap();
            let ids = b.patient_identifiers();
            assert!(ids.len() >= 3, "{} strings", ids.len());
        }
    }

    #[test]
    fn refuses_what_the_chaincode_refuses_without_values() {
        let no_patient = r#"{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Observation","id":"o"}}]}"#;
        assert_eq!(
            read_bundle(no_patient.as_bytes()),
            Err(BundleError::NoPatient)
        );
        let put = r#"{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient","id":"p"},"request":{"method":"PUT","url":"x"}}]}"#;
        assert!(
            matches!(read_bundle(put.as_bytes()), Err(BundleError::Invalid(m)) if m.contains("POST"))
        );
        let bad = r#"{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient","id":"Secret Name"}}]}"#;
        let e = read_bundle(bad.as_bytes()).unwrap_err().to_string();
        assert!(!e.contains("Secret"), "{e}");
        assert!(read_bundle(b"{\"resourceType\":\"Bundle\"").is_err());
    }

    #[test]
    fn chunks_respect_limits_and_keep_bytes() {
        let b = read_bundle(BUNDLE.as_bytes()).unwrap();
        let all: Vec<&BundleResource> = b.resources.iter().collect();
        for (max_bytes, max_entries, n) in [(10_000, 500, 1), (10_000, 2, 2), (10_000, 1, 3)] {
            let chunks = chunk_resources(&all, max_bytes, max_entries).unwrap();
            assert_eq!(chunks.len(), n, "{max_bytes} {max_entries}");
            let mut again = Vec::new();
            for c in &chunks {
                assert!(c.len() <= max_bytes);
                let parsed = read_bundle_resources(c);
                assert!(parsed.len() <= max_entries);
                again.extend(parsed);
            }
            let want: Vec<Vec<u8>> = b.resources.iter().map(|r| r.bytes.clone()).collect();
            assert_eq!(again, want);
        }
        // A limit just big enough for the largest resource alone: one per chunk.
        let largest = b.resources.iter().map(|r| r.bytes.len()).max().unwrap();
        let tight = CHUNK_HEAD.len() + CHUNK_TAIL.len() + ENTRY_OVERHEAD + largest;
        assert!(b.resources.iter().all(|r| fits_in_chunk(r, tight)));
        assert!(!fits_in_chunk(&b.resources[0], 40));
        assert!(chunk_resources(&all, tight, 500).is_ok());
        assert!(chunk_resources(&all, 40, 500).is_err());
        assert!(chunk_resources(&[], 40, 500).unwrap().is_empty());
    }

    fn read_bundle_resources(chunk: &[u8]) -> Vec<Vec<u8>> {
        bundle_resources(chunk)
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn sample_bundle_when_present() {
        // The real sample data, if this checkout has it: every file reads, the largest
        // (638 kB) splits into chunks of at most 128 KiB with every resource kept.
        let Some(dir) = sample_dir() else { return };
        let files = bundle_files(&[dir]).unwrap();
        assert_eq!(files.len(), 60);
        let mut total = 0;
        for f in &files {
            let b = read_bundle(&std::fs::read(f).unwrap()).unwrap();
            let refs: Vec<&BundleResource> = b.resources.iter().collect();
            let chunks = chunk_resources(&refs, 128 << 10, 500).unwrap();
            let n: usize = chunks.iter().map(|c| read_bundle_resources(c).len()).sum();
            assert_eq!(n, b.resources.len());
            total += n;
        }
        assert_eq!(total, 9572, "README: 9,572 resources");
    }

    fn sample_dir() -> Option<PathBuf> {
        find_sample_bundles(Path::new(env!("CARGO_MANIFEST_DIR")))
    }
}
