//! FHIR R4 JSON as the contract handles it: one resource, or a transaction Bundle whose
//! entries are kept as the exact bytes submitted.
//!
//! Byte-exactness: a bundle entry's `resource` is sliced from the submitted text with
//! [`serde_json::value::RawValue`], never re-serialized, so the stored PHI and its SHA-256 are
//! those of the resource's original bytes (key order, number spellings and escapes kept).

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{EhrError, Result};
use crate::ids::{ResourceRef, check_fhir_id};

/// Largest resource accepted by `CreateRecord` / `UpdateRecord`, bytes (1 MiB).
pub const MAX_RESOURCE_BYTES: usize = 1 << 20;
/// Largest bundle accepted by `CreateRecordsFromBundle`, bytes (1 MiB). The transient map
/// travels in the proposal to the peer and in the shim's `TRANSACTION` message, both within
/// gRPC's default 4 MiB; larger bundles are split by the client ([`split_bundle`]).
pub const MAX_BUNDLE_BYTES: usize = 1 << 20;
/// Most entries in one `CreateRecordsFromBundle` call. Each entry writes ~0.5 kB of public
/// metadata and hashes into the block, so 500 entries stay well below a block's 2 MiB.
pub const MAX_BUNDLE_ENTRIES: usize = 500;

/// A resource parsed for validation, with its exact bytes.
#[derive(Debug, Clone)]
pub struct Resource<'a> {
    /// `ResourceType/id`, as in the resource (clear: never written to the shared ledger).
    pub reference: ResourceRef,
    /// The parsed JSON (for template checks).
    pub value: Value,
    /// The bytes as submitted (what is stored and hashed).
    pub bytes: &'a [u8],
}

/// Parses one resource: a JSON object with a string `resourceType` and a FHIR `id`.
///
/// # Errors
/// [`EhrError::Invalid`] if it is larger than [`MAX_RESOURCE_BYTES`], not JSON, not an
/// object, or lacks a valid `resourceType` / `id`. Messages give only the JSON error's line
/// and column.
pub fn parse_resource(bytes: &[u8]) -> Result<Resource<'_>> {
    if bytes.len() > MAX_RESOURCE_BYTES {
        return Err(EhrError::invalid(format!(
            "resource is larger than {MAX_RESOURCE_BYTES} bytes"
        )));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        EhrError::invalid(format!(
            "resource is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let obj = value
        .as_object()
        .ok_or_else(|| EhrError::invalid("resource is not a JSON object"))?;
    let resource_type = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| EhrError::invalid("resource has no resourceType"))?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| EhrError::invalid("resource has no id"))?;
    check_fhir_id("resource id", id)?;
    let reference = ResourceRef::new(resource_type, id)?;
    Ok(Resource {
        reference,
        value,
        bytes,
    })
}

#[derive(Deserialize)]
struct BundleIn<'a> {
    #[serde(rename = "resourceType")]
    resource_type: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow, default)]
    entry: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct EntryIn<'a> {
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
    #[serde(default)]
    request: Option<RequestIn>,
}

#[derive(Deserialize)]
struct RequestIn {
    method: String,
}

fn parse_bundle(text: &str) -> Result<(String, Vec<&RawValue>)> {
    let bundle: BundleIn<'_> = serde_json::from_str(text).map_err(|e| {
        EhrError::invalid(format!(
            "bundle is not a FHIR Bundle in JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if bundle.resource_type != "Bundle" {
        return Err(EhrError::invalid("resourceType is not Bundle"));
    }
    if !matches!(bundle.kind.as_str(), "transaction" | "batch" | "collection") {
        return Err(EhrError::invalid(
            "Bundle.type must be transaction, batch or collection",
        ));
    }
    Ok((bundle.kind, bundle.entry))
}

fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| EhrError::invalid("bundle is not UTF-8"))
}

/// The resources of a FHIR Bundle (`transaction`, `batch` or `collection`), each as the exact
/// bytes of its entry's `resource`, in entry order. Entries with a `request` must use `POST`
/// (create): updates go through `UpdateRecord`.
///
/// # Errors
/// [`EhrError::Invalid`] if the bundle exceeds [`MAX_BUNDLE_BYTES`] or
/// [`MAX_BUNDLE_ENTRIES`], is not a Bundle, or an entry has no resource or another method.
pub fn bundle_resources(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(EhrError::invalid(format!(
            "bundle is larger than {MAX_BUNDLE_BYTES} bytes; split it into several calls"
        )));
    }
    let (_, entries) = parse_bundle(utf8(bytes)?)?;
    if entries.len() > MAX_BUNDLE_ENTRIES {
        return Err(EhrError::invalid(format!(
            "bundle has more than {MAX_BUNDLE_ENTRIES} entries; split it into several calls"
        )));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let entry: EntryIn<'_> = serde_json::from_str(raw.get())
                .map_err(|_| EhrError::invalid(format!("bundle entry {i} is not an object")))?;
            if entry.request.as_ref().is_some_and(|r| r.method != "POST") {
                return Err(EhrError::invalid(format!(
                    "bundle entry {i}: only POST (create) entries are accepted"
                )));
            }
            entry
                .resource
                .map(|r| r.get().as_bytes())
                .ok_or_else(|| EhrError::invalid(format!("bundle entry {i} has no resource")))
        })
        .collect()
}

/// The references (`ResourceType/id`) of a Bundle's entries, in entry order: what a client
/// turns into ledger ids (`LedgerIds`) to pass to `ReserveRecords` before
/// `CreateRecordsFromBundle`.
///
/// # Errors
/// As [`bundle_resources`] and [`parse_resource`].
pub fn bundle_record_ids(bytes: &[u8]) -> Result<Vec<ResourceRef>> {
    bundle_resources(bytes)?
        .into_iter()
        .map(|r| parse_resource(r).map(|r| r.reference))
        .collect()
}

/// Splits a Bundle into Bundles of the same `type`, each at most `max_bytes` long and with at
/// most `max_entries` entries, for clients to submit in several `CreateRecordsFromBundle`
/// calls. Entries are copied byte for byte, so every resource keeps its exact bytes (and
/// hash).
///
/// # Errors
/// [`EhrError::Invalid`] if the input is not a Bundle, or one entry alone does not fit in
/// `max_bytes`.
pub fn split_bundle(bytes: &[u8], max_bytes: usize, max_entries: usize) -> Result<Vec<Vec<u8>>> {
    let (kind, entries) = parse_bundle(utf8(bytes)?)?;
    let head = format!(r#"{{"resourceType":"Bundle","type":"{kind}","entry":["#);
    let tail = "]}";
    let empty = head.len() + tail.len();
    let mut chunks = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut size = empty;
    let flush = |current: &mut Vec<&str>, chunks: &mut Vec<Vec<u8>>| {
        if !current.is_empty() {
            let mut out = head.clone().into_bytes();
            out.extend_from_slice(current.join(",").as_bytes());
            out.extend_from_slice(tail.as_bytes());
            chunks.push(out);
            current.clear();
        }
    };
    for (i, raw) in entries.iter().enumerate() {
        let entry = raw.get();
        if empty + entry.len() > max_bytes {
            return Err(EhrError::invalid(format!(
                "bundle entry {i} alone is larger than {max_bytes} bytes"
            )));
        }
        let added = entry.len() + usize::from(!current.is_empty());
        if !current.is_empty() && (size + added > max_bytes || current.len() >= max_entries) {
            flush(&mut current, &mut chunks);
            size = empty;
        }
        size += entry.len() + usize::from(!current.is_empty());
        current.push(entry);
    }
    flush(&mut current, &mut chunks);
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = r#"{"resourceType":"Bundle","type":"transaction","entry":[
        {"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient","id":"a","x":1.50,"s":"\u00e9"},"request":{"method":"POST","url":"Patient"}},
        {"resource":{"id":"b","resourceType":"Observation","v":1e2}}]}"#;

    #[test]
    fn bundle_resources_are_exact_slices() {
        let rs = bundle_resources(BUNDLE.as_bytes()).unwrap();
        assert_eq!(
            rs,
            vec![
                br#"{"resourceType":"Patient","id":"a","x":1.50,"s":"\u00e9"}"#.as_slice(),
                br#"{"id":"b","resourceType":"Observation","v":1e2}"#.as_slice(),
            ]
        );
        let r = parse_resource(rs[1]).unwrap();
        assert_eq!(r.reference.to_string(), "Observation/b");
    }

    #[test]
    fn bad_bundles() {
        for (bad, fragment) in [
            (
                r#"{"resourceType":"Patient","type":"transaction"}"#,
                "not Bundle",
            ),
            (
                r#"{"resourceType":"Bundle","type":"searchset","entry":[]}"#,
                "Bundle.type",
            ),
            (
                r#"{"resourceType":"Bundle","type":"batch","entry":[{"fullUrl":"x"}]}"#,
                "no resource",
            ),
            (
                r#"{"resourceType":"Bundle","type":"batch","entry":[{"resource":{},"request":{"method":"DELETE","url":"x"}}]}"#,
                "POST",
            ),
            (r#"{"resourceType":"Bundle","#, "line 1"),
        ] {
            let e = bundle_resources(bad.as_bytes()).unwrap_err();
            assert!(e.to_string().contains(fragment), "{e}");
        }
        let big = vec![b' '; MAX_BUNDLE_BYTES + 1];
        assert!(
            bundle_resources(&big)
                .unwrap_err()
                .to_string()
                .contains("split")
        );
    }

    #[test]
    fn bad_resources() {
        for (bad, fragment) in [
            (&b"[1]"[..], "not a JSON object"),
            (b"{\"id\":\"a\"}", "no resourceType"),
            (b"{\"resourceType\":\"Patient\"}", "no id"),
            (b"{\"resourceType\":\"Patient\",\"id\":\"a b\"}", "FHIR id"),
            (
                b"{\"resourceType\":\"patient\",\"id\":\"a\"}",
                "resource type",
            ),
            (
                b"{\"resourceType\":\"Patient\",\"id\":\"Secret Name\"",
                "line 1",
            ),
        ] {
            let e = parse_resource(bad).unwrap_err();
            assert!(e.to_string().contains(fragment), "{e}");
            assert!(!e.to_string().contains("Secret"));
        }
    }

    #[test]
    fn split_keeps_entries_byte_exact() {
        let rs = bundle_resources(BUNDLE.as_bytes()).unwrap();
        for (max_bytes, max_entries, n) in [(10_000, 500, 1), (10_000, 1, 2), (200, 500, 2)] {
            let chunks = split_bundle(BUNDLE.as_bytes(), max_bytes, max_entries).unwrap();
            assert_eq!(chunks.len(), n);
            let mut again = Vec::new();
            for c in &chunks {
                assert!(c.len() <= max_bytes);
                again.extend(bundle_resources(c).unwrap().into_iter().map(<[u8]>::to_vec));
            }
            assert_eq!(again, rs.iter().map(|r| r.to_vec()).collect::<Vec<_>>());
        }
        assert!(split_bundle(BUNDLE.as_bytes(), 100, 500).is_err());
    }
}
