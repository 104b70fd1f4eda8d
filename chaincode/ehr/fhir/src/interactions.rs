//! The FHIR interactions on today's contract (build plan §1's table): create (`POST [base]/T`),
//! the transaction and batch Bundles (`POST [base]`), read and history of a Patient
//! (`GET [base]/Patient/id`, `…/_history`).
//!
//! Clear ids travel to the custodian's peers in transient maps only (`LedgerIds`,
//! `CreateRecord`); the ledger sees ledger ids (ADR 0031). Handlers log nothing: the access log
//! has one event per request ([`crate::router`]).

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ehr_chaincode::fhir::{MAX_BUNDLE_BYTES, bundle_record_ids, parse_resource};
use ehr_chaincode::functions as f;
use ehr_chaincode::model::{PatientEntry, RecordMeta, RecordStatus};
use ehr_client::{EhrClient, EhrClientError, LedgerPatient};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::AppState;
use crate::backend::Caller;
use crate::capability::{Interaction, supports};
use crate::outcome::{FHIR_JSON, FhirError, IssueCode, Result, fhir_json, operation_outcome};

/// Whether the request's `Content-Type` is FHIR JSON (`application/fhir+json`,
/// `application/json`, or the pre-R4 `application/json+fhir`; absent is taken as JSON).
fn check_content_type(headers: &HeaderMap) -> Result<()> {
    let Some(v) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = v
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/fhir+json" | "application/json" | "application/json+fhir" => Ok(()),
        _ => Err(FhirError::UnsupportedMediaType),
    }
}

/// The body, at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| FhirError::TooLong("the body is larger than the server accepts"))
}

/// The body as a JSON object.
fn json_object(bytes: &[u8]) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(FhirError::Structure("the body is not a JSON object")),
        Err(_) => Err(FhirError::Structure("the body is not JSON")),
    }
}

/// A random UUID v4 (RFC 9562 §5.4), lowercase, for a resource created without an id.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `bytes` with `"id":"<id>"` inserted: right after a leading `"resourceType":"<type>"`
/// member if the object starts with it, else right after `{`. Every other byte is kept.
fn insert_id(bytes: &[u8], id: &str) -> Vec<u8> {
    let skip_ws = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let open = skip_ws(0);
    let after_brace = open + 1;
    let mut at = skip_ws(after_brace);
    let key = br#""resourceType""#;
    let mut insert_at = after_brace;
    let mut member = format!(r#""id":"{id}","#);
    if bytes[at..].starts_with(key) {
        at = skip_ws(at + key.len());
        if bytes.get(at) == Some(&b':') {
            at = skip_ws(at + 1);
            if bytes.get(at) == Some(&b'"') {
                // A resource type is `[A-Z][A-Za-z]*`: no escapes inside the string.
                if let Some(end) = bytes[at + 1..].iter().position(|&b| b == b'"') {
                    insert_at = at + 1 + end + 1;
                    member = format!(r#","id":"{id}""#);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(bytes.len() + member.len());
    out.extend_from_slice(&bytes[..insert_at]);
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(&bytes[insert_at..]);
    out
}

/// A resource checked for a create: exact bytes (with an id), type and id.
struct NewResource {
    bytes: Vec<u8>,
    resource_type: String,
    id: String,
}

/// Checks a resource body for a create of `expected_type` (any type if `None`): a JSON object
/// with that `resourceType`, its `id` valid or absent (then a UUID v4 is inserted), and what
/// the chaincode's own parser accepts.
fn new_resource(bytes: &[u8], expected_type: Option<&str>) -> Result<NewResource> {
    let obj = json_object(bytes)?;
    let rtype = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or(FhirError::Invalid("the resource has no resourceType"))?;
    if expected_type.is_some_and(|t| t != rtype) {
        return Err(FhirError::Invalid(
            "resourceType is not the URL's resource type",
        ));
    }
    let bytes = match obj.get("id") {
        None => insert_id(bytes, &uuid_v4()),
        Some(_) => bytes.to_vec(),
    };
    let parsed = parse_resource(&bytes)
        .map_err(|_| FhirError::Invalid("the resource's resourceType or id is not valid FHIR"))?;
    Ok(NewResource {
        resource_type: parsed.reference.resource_type.clone(),
        id: parsed.reference.id.clone(),
        bytes,
    })
}

/// The clear `Patient.id` a resource belongs to: its own id for a Patient, else the
/// `Patient/<id>` reference in `subject` or `patient`.
fn patient_of(r: &NewResource) -> Result<String> {
    if r.resource_type == "Patient" {
        return Ok(r.id.clone());
    }
    const NONE: FhirError = FhirError::Unprocessable {
        code: IssueCode::Required,
        message: "the resource must name its patient: subject or patient = Patient/<id>",
    };
    let v: Value = serde_json::from_slice(&r.bytes).map_err(|_| NONE)?;
    ["subject", "patient"]
        .iter()
        .find_map(|k| v.get(*k)?.get("reference")?.as_str())
        .and_then(|s| s.strip_prefix("Patient/"))
        .filter(|id| ehr_chaincode::ids::check_fhir_id("patient", id).is_ok())
        .map(str::to_owned)
        .ok_or(NONE)
}

/// The caller's EHR client.
fn client(state: &AppState, caller: &Caller) -> Result<EhrClient> {
    state.backend.client(caller)
}

/// The patient's registration, registering it (the caller's organization becomes custodian)
/// when `register` and absent. Refuses a patient of another custodian.
async fn patient_entry(
    client: &EhrClient,
    ledger_patient: &str,
    register: bool,
) -> Result<(PatientEntry, bool)> {
    let (entry, registered) = match client.get_patient(ledger_patient).await? {
        Some(p) => (p, false),
        None if register => (client.register_patient(ledger_patient, None).await?, true),
        None => {
            return Err(FhirError::NotFound(
                "the resource's patient is not registered",
            ));
        }
    };
    if entry.custodian_msp != client.msp_id() {
        return Err(FhirError::Forbidden(
            "the patient's custodian is another organization",
        ));
    }
    Ok((entry, registered))
}

/// `W/"<version>"`.
fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// An HTTP-date (RFC 9110 §5.6.7) of `ms` since the epoch.
fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

/// An RFC 3339 instant (FHIR `instant`) of `ms` since the epoch.
fn instant(ms: u64) -> Option<String> {
    let nanos = i128::from(ms).checked_mul(1_000_000)?;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A created (or found equal) record.
struct Created {
    /// 201, or 200 when an equal record existed.
    status: StatusCode,
    resource_type: String,
    id: String,
    version: u64,
    updated_at_ms: Option<u64>,
    bytes: Vec<u8>,
}

/// Creates one resource (build plan §1: `LedgerIds` → `GetPatient` (→ `RegisterPatient` for a
/// Patient) → `ReserveRecords` → `CreateRecord`). An existing record with the same bytes
/// answers 200; with other bytes 409 `duplicate`.
async fn create_one(client: &EhrClient, r: NewResource) -> Result<Created> {
    let patient_id = patient_of(&r)?;
    let reference = format!("{}/{}", r.resource_type, r.id);
    let ids = client.ledger_ids(None, &patient_id, &[&reference]).await?;
    let ledger_record = ids
        .records
        .first()
        .ok_or(FhirError::Ehr(EhrClientError::Decode {
            function: f::LEDGER_IDS,
        }))?;
    let (entry, registered) =
        patient_entry(client, &ids.patient, r.resource_type == "Patient").await?;
    if !registered {
        match client.record_metadata(&ids.patient, ledger_record).await {
            Ok(meta) if meta.version >= 1 => {
                if meta.sha256 != hex::encode(medledger_msp::crypto::sha256(&r.bytes)) {
                    return Err(FhirError::Duplicate(
                        "a resource with this id exists with other content",
                    ));
                }
                return Ok(Created {
                    status: StatusCode::OK,
                    resource_type: r.resource_type,
                    id: r.id,
                    version: meta.version,
                    updated_at_ms: Some(meta.updated_at_ms),
                    bytes: r.bytes,
                });
            }
            Ok(_) => {}
            Err(e) if matches!(e.chaincode_status(), Some(404 | 403)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    client
        .reserve_records(&ids.patient, &[ledger_record.as_str()])
        .await?;
    let patient = LedgerPatient {
        patient_id,
        ledger_id: ids.patient.clone(),
    };
    let committed = client
        .create_record(&patient, &entry.custodian_msp, &r.bytes)
        .await?;
    let meta: Option<RecordMeta> = serde_json::from_slice(&committed.payload).ok();
    Ok(Created {
        status: StatusCode::CREATED,
        resource_type: r.resource_type,
        id: r.id,
        version: meta.as_ref().map_or(1, |m| m.version),
        updated_at_ms: meta.map(|m| m.updated_at_ms),
        bytes: r.bytes,
    })
}

/// Adds `ETag` and `Last-Modified` (when known) to `response`.
fn version_headers(response: &mut Response, version: u64, updated_at_ms: Option<u64>) {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = updated_at_ms.and_then(|ms| HeaderValue::from_str(&http_date(ms)).ok()) {
        h.insert(header::LAST_MODIFIED, v);
    }
}

/// The exact stored bytes as a FHIR JSON response.
fn resource_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = (status, bytes).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

/// `POST [base]/{type}`: create. 201 with `Location: [base]/T/id/_history/v`, `ETag`,
/// `Last-Modified` and the stored bytes.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    if !supports(&resource_type, Interaction::Create) {
        return Err(FhirError::NotSupported(
            "this resource type cannot be created here",
        ));
    }
    check_content_type(&headers)?;
    let bytes = read_body(body, state.config.limits.max_body_bytes).await?;
    let r = new_resource(&bytes, Some(&resource_type))?;
    let client = client(&state, &caller)?;
    let c = create_one(&client, r).await?;
    let location = format!(
        "{}/{}/{}/_history/{}",
        state.config.base_url, c.resource_type, c.id, c.version
    );
    let mut response = resource_response(c.status, c.bytes);
    version_headers(&mut response, c.version, c.updated_at_ms);
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// A FHIR id in a URL: `[A-Za-z0-9-.]{1,64}`.
fn url_id(id: &str) -> Result<()> {
    ehr_chaincode::ids::check_fhir_id("id", id)
        .map_err(|_| FhirError::Value("the id in the URL is not a FHIR id"))
}

/// The ledger ids of a Patient's own record, through `LedgerIds` at the caller's organization.
async fn patient_record(client: &EhrClient, id: &str) -> Result<(String, String)> {
    let reference = format!("Patient/{id}");
    let ids = client.ledger_ids(None, id, &[&reference]).await?;
    let record = ids
        .records
        .into_iter()
        .next()
        .ok_or(FhirError::Ehr(EhrClientError::Decode {
            function: f::LEDGER_IDS,
        }))?;
    Ok((ids.patient, record))
}

/// Whether `If-None-Match` names `version` (weak comparison, RFC 9110 §13.1.2).
fn none_match(headers: &HeaderMap, version: u64) -> bool {
    let want = version.to_string();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == want || t == "*")
}

/// `GET [base]/{type}/{id}`: read. Today a Patient (other types need the contract's
/// `LocateRecords`, G4). The audited two-step read: `RequestRecordAccess` (submitted,
/// audited) then `ReadRecord` (evaluated on the custodian's peer): the exact stored bytes,
/// with `ETag`/`Last-Modified` when the caller may read the record's metadata (until G2 pins
/// them in the access decision); `If-None-Match` → 304 after the audited decision.
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    if !supports(&resource_type, Interaction::Read) {
        return Err(FhirError::NotSupported(
            "read is not supported for this resource type",
        ));
    }
    url_id(&id)?;
    let client = client(&state, &caller)?;
    let (ledger_patient, ledger_record) = patient_record(&client, &id).await?;
    let entry = client
        .get_patient(&ledger_patient)
        .await?
        .ok_or(FhirError::NotFound("no such resource"))?;
    let purpose = caller.purpose.unwrap_or(state.config.default_purpose);
    let decision = client
        .request_record_access(&ledger_patient, &ledger_record, purpose)
        .await?;
    if decision.decision != ehr_chaincode::model::Decision::Granted {
        return Err(EhrClientError::AccessDenied {
            access_id: decision.access_id,
        }
        .into());
    }
    // Until G2 answers the version in the decision: the metadata, if this caller may read it.
    let meta = match client
        .record_metadata(&ledger_patient, &ledger_record)
        .await
    {
        Ok(m) => Some(m),
        Err(e) if e.chaincode_status() == Some(403) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(m) = &meta {
        if m.status == RecordStatus::Purged {
            return Err(FhirError::Ehr(EhrClientError::Chaincode {
                function: f::READ_RECORD,
                status: 410,
                message: String::new(),
            }));
        }
        if none_match(&headers, m.version) {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            version_headers(&mut r, m.version, Some(m.updated_at_ms));
            return Ok(r);
        }
    }
    let bytes = client
        .read_record_with(&ledger_patient, &decision.access_id, &entry.custodian_msp)
        .await?;
    let mut response = resource_response(StatusCode::OK, bytes);
    if let Some(m) = meta {
        version_headers(&mut response, m.version, Some(m.updated_at_ms));
    }
    Ok(response)
}

/// `GET [base]/{type}/{id}/_history`: the record's versions from `GetRecordHistory` as a
/// `history` Bundle, newest first; entries carry `request`/`response` (status, `etag`,
/// `lastModified`) and no resource bodies (`entry.resource` is 0..1): no PHI, no audit entry.
pub(crate) async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path((resource_type, id)): Path<(String, String)>,
) -> Result<Response> {
    if !supports(&resource_type, Interaction::HistoryInstance) {
        return Err(FhirError::NotSupported(
            "history is not supported for this resource type",
        ));
    }
    url_id(&id)?;
    let client = client(&state, &caller)?;
    let (ledger_patient, ledger_record) = patient_record(&client, &id).await?;
    let versions = client
        .record_history(&ledger_patient, &ledger_record)
        .await?;
    let url = format!("{resource_type}/{id}");
    let entries: Vec<Value> = versions
        .iter()
        .filter(|v| v.version >= 1)
        .map(|v| {
            let mut response = json!({
                "status": if v.version == 1 { "201 Created" } else { "200 OK" },
                "etag": etag(v.version),
            });
            if let Some(t) = v.timestamp_ms.and_then(instant) {
                response["lastModified"] = json!(t);
            }
            json!({
                "fullUrl": format!("{}/{url}", state.config.base_url),
                "request": {
                    "method": if v.version == 1 { "POST" } else { "PUT" },
                    "url": if v.version == 1 { resource_type.clone() } else { url.clone() },
                },
                "response": response,
            })
        })
        .collect();
    if entries.is_empty() {
        return Err(FhirError::NotFound("no such resource"));
    }
    Ok(fhir_json(
        StatusCode::OK,
        &json!({
            "resourceType": "Bundle",
            "type": "history",
            "total": entries.len(),
            "entry": entries,
        }),
    ))
}

/// A Bundle as this server reads it: its type and entries, each kept as exact bytes.
#[derive(Deserialize)]
struct BundleIn<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(borrow, default)]
    entry: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct EntryIn<'a> {
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
    request: Option<RequestIn>,
}

#[derive(Deserialize)]
struct RequestIn {
    method: Option<String>,
    #[serde(rename = "ifNoneExist")]
    if_none_exist: Option<String>,
    #[serde(rename = "ifMatch")]
    if_match: Option<String>,
}

/// Checks one entry's `request`: a create (`POST`), not conditional.
fn entry_request(entry: &EntryIn<'_>) -> Result<()> {
    const UNSUPPORTED: FhirError = FhirError::Unprocessable {
        code: IssueCode::NotSupported,
        message: "only unconditional POST (create) entries are supported",
    };
    let r = entry.request.as_ref().ok_or(FhirError::Invalid(
        "a transaction or batch entry needs a request",
    ))?;
    if r.method.as_deref() != Some("POST") || r.if_none_exist.is_some() || r.if_match.is_some() {
        return Err(UNSUPPORTED);
    }
    Ok(())
}

/// `POST [base]`: a `transaction` or `batch` Bundle.
pub(crate) async fn system(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    check_content_type(&headers)?;
    let bytes = read_body(body, state.config.limits.max_body_bytes).await?;
    let obj = json_object(&bytes)?;
    if obj.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(FhirError::Invalid("POST [base] takes a Bundle"));
    }
    let text =
        std::str::from_utf8(&bytes).map_err(|_| FhirError::Structure("the body is not UTF-8"))?;
    let bundle: BundleIn<'_> = serde_json::from_str(text)
        .map_err(|_| FhirError::Structure("the Bundle's type or entries are malformed"))?;
    if bundle.entry.len() > state.config.limits.max_bundle_entries {
        return Err(FhirError::TooLong(
            "the Bundle has more entries than the server accepts",
        ));
    }
    let entries: Vec<EntryIn<'_>> = bundle
        .entry
        .iter()
        .map(|raw| serde_json::from_str(raw.get()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| FhirError::Structure("a Bundle entry is malformed"))?;
    let client = client(&state, &caller)?;
    match bundle.kind.as_deref() {
        Some("transaction") => transaction(&client, &bytes, &entries).await,
        Some("batch") => Ok(batch(&client, &entries).await),
        _ => Err(FhirError::Invalid(
            "Bundle.type must be transaction or batch",
        )),
    }
}

/// The chaincode's answer to `CreateRecordsFromBundle`.
#[derive(Deserialize)]
struct BundleAnswer {
    records: Vec<RecordSummary>,
}

#[derive(Deserialize)]
struct RecordSummary {
    version: u64,
}

/// A transaction: every entry a create of one patient's resources, validated first, then
/// `LedgerIds`, `RegisterPatient` if absent, `ReserveRecords`, and **one**
/// `CreateRecordsFromBundle` with the Bundle's exact bytes: all or nothing. Entries equal to
/// stored records answer 200, new ones 201.
async fn transaction(
    client: &EhrClient,
    bytes: &[u8],
    entries: &[EntryIn<'_>],
) -> Result<Response> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(FhirError::TooLong(
            "a transaction Bundle is limited to 1 MiB (the chaincode's limit)",
        ));
    }
    if entries.is_empty() {
        return Err(FhirError::Invalid("the transaction has no entries"));
    }
    for e in entries {
        entry_request(e)?;
        if e.resource.is_none() {
            return Err(FhirError::Invalid("a transaction entry has no resource"));
        }
    }
    let refs = bundle_record_ids(bytes)
        .map_err(|_| FhirError::Invalid("an entry's resource has no valid resourceType and id"))?;
    let mut patients = refs.iter().filter(|r| r.resource_type == "Patient");
    let (Some(patient), None) = (patients.next(), patients.next()) else {
        return Err(FhirError::Unprocessable {
            code: IssueCode::BusinessRule,
            message: "a transaction Bundle holds exactly one Patient and its resources",
        });
    };
    let clear: Vec<String> = refs.iter().map(ToString::to_string).collect();
    let clear_refs: Vec<&str> = clear.iter().map(String::as_str).collect();
    let ids = client.ledger_ids(None, &patient.id, &clear_refs).await?;
    if ids.records.len() != clear.len() {
        return Err(EhrClientError::Decode {
            function: f::LEDGER_IDS,
        }
        .into());
    }
    let (entry, registered) = patient_entry(client, &ids.patient, true).await?;
    let existing: HashMap<String, RecordMeta> = if registered {
        HashMap::new()
    } else {
        client
            .all_records(&ids.patient)
            .await?
            .into_iter()
            .filter(|m| m.version >= 1)
            .map(|m| (m.record_id.clone(), m))
            .collect()
    };
    // Compared here, before any transaction: an entry that differs from its stored record
    // is a conflict (as the chaincode would find), and a Bundle whose every entry is stored
    // already writes nothing (a read-only transaction endorsed by the custodian alone would
    // fail the chaincode's endorsement policy).
    let raw = ehr_chaincode::fhir::bundle_resources(bytes)
        .map_err(|_| FhirError::Invalid("an entry's resource is not valid"))?;
    let mut all_stored = true;
    for (ledger, r) in ids.records.iter().zip(&raw) {
        match existing.get(ledger) {
            Some(m) if m.sha256 != hex::encode(medledger_msp::crypto::sha256(r)) => {
                return Err(FhirError::Duplicate(
                    "an entry's id exists with other content",
                ));
            }
            Some(_) => {}
            None => all_stored = false,
        }
    }
    if all_stored {
        let out: Vec<Value> = refs
            .iter()
            .zip(&ids.records)
            .filter_map(|(r, ledger)| existing.get(ledger).map(|m| (r, m)))
            .map(|(r, m)| {
                let mut response = json!({
                    "status": "200 OK",
                    "location": format!("{r}/_history/{}", m.version),
                    "etag": etag(m.version),
                });
                if let Some(t) = instant(m.updated_at_ms) {
                    response["lastModified"] = json!(t);
                }
                json!({ "response": response })
            })
            .collect();
        return Ok(transaction_response(out));
    }
    let mut to_reserve: Vec<&str> = ids
        .records
        .iter()
        .map(String::as_str)
        .filter(|r| !existing.contains_key(*r))
        .collect();
    to_reserve.sort_unstable();
    to_reserve.dedup();
    if !to_reserve.is_empty() {
        client.reserve_records(&ids.patient, &to_reserve).await?;
    }
    let committed = client
        .submit(
            f::CREATE_RECORDS_FROM_BUNDLE,
            &[&ids.patient],
            &[
                (ehr_chaincode::TRANSIENT_BUNDLE, bytes),
                (ehr_chaincode::TRANSIENT_PATIENT, patient.id.as_bytes()),
            ],
            Some(&entry.custodian_msp),
        )
        .await?;
    let answer: BundleAnswer =
        serde_json::from_slice(&committed.payload).map_err(|_| EhrClientError::Decode {
            function: f::CREATE_RECORDS_FROM_BUNDLE,
        })?;
    if answer.records.len() != refs.len() {
        return Err(EhrClientError::Decode {
            function: f::CREATE_RECORDS_FROM_BUNDLE,
        }
        .into());
    }
    let out: Vec<Value> = refs
        .iter()
        .zip(&ids.records)
        .zip(&answer.records)
        .map(|((r, ledger), s)| {
            let existed = existing.contains_key(ledger);
            json!({"response": {
                "status": if existed { "200 OK" } else { "201 Created" },
                "location": format!("{r}/_history/{}", s.version),
                "etag": etag(s.version),
            }})
        })
        .collect();
    Ok(transaction_response(out))
}

/// A `transaction-response` Bundle of `entries`.
fn transaction_response(entries: Vec<Value>) -> Response {
    fhir_json(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "transaction-response", "entry": entries}),
    )
}

/// A batch: each entry created on its own (as `POST [base]/T`), in order; each answers its
/// status, with an OperationOutcome when it failed. Always 200.
async fn batch(client: &EhrClient, entries: &[EntryIn<'_>]) -> Response {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let result = async {
            entry_request(e)?;
            let raw = e
                .resource
                .ok_or(FhirError::Invalid("a batch entry has no resource"))?;
            let r = new_resource(raw.get().as_bytes(), None)?;
            if !supports(&r.resource_type, Interaction::Create) {
                return Err(FhirError::NotSupported(
                    "this resource type cannot be created here",
                ));
            }
            create_one(client, r).await
        }
        .await;
        out.push(match result {
            Ok(c) => json!({"response": {
                "status": if c.status == StatusCode::OK { "200 OK" } else { "201 Created" },
                "location": format!("{}/{}/_history/{}", c.resource_type, c.id, c.version),
                "etag": etag(c.version),
            }}),
            Err(err) => {
                let m = err.mapped();
                json!({"response": {
                    "status": format!("{} {}", m.status.as_u16(), m.status.canonical_reason().unwrap_or("")),
                    "outcome": operation_outcome(m.code, &m.diagnostics),
                }})
            }
        });
    }
    fhir_json(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "batch-response", "entry": out}),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ids_are_inserted_after_resource_type() {
        let id = "0f0e";
        assert_eq!(
            insert_id(br#"{"resourceType":"Patient","gender":"f"}"#, id),
            br#"{"resourceType":"Patient","id":"0f0e","gender":"f"}"#
        );
        assert_eq!(
            insert_id(b" { \"resourceType\" : \"Patient\" }", id),
            b" { \"resourceType\" : \"Patient\",\"id\":\"0f0e\" }"
        );
        assert_eq!(
            insert_id(br#"{"gender":"f","resourceType":"Patient"}"#, id),
            br#"{"id":"0f0e","gender":"f","resourceType":"Patient"}"#
        );
        let v = uuid_v4();
        assert_eq!(v.len(), 36);
        assert_eq!(&v[14..15], "4");
        let r = new_resource(br#"{"resourceType":"Patient"}"#, Some("Patient")).unwrap();
        assert_eq!(r.id.len(), 36);
    }

    #[test]
    fn bad_bodies() {
        assert!(matches!(
            new_resource(b"{", None),
            Err(FhirError::Structure(_))
        ));
        assert!(matches!(
            new_resource(b"[]", None),
            Err(FhirError::Structure(_))
        ));
        assert!(matches!(
            new_resource(
                br#"{"resourceType":"Observation","id":"a"}"#,
                Some("Patient")
            ),
            Err(FhirError::Invalid(_))
        ));
        assert!(matches!(
            new_resource(br#"{"resourceType":"Patient","id":"a b"}"#, Some("Patient")),
            Err(FhirError::Invalid(_))
        ));
        let obs = new_resource(
            br#"{"resourceType":"Observation","id":"o","subject":{"reference":"Patient/p1"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(patient_of(&obs).unwrap(), "p1");
        let orphan = new_resource(br#"{"resourceType":"Observation","id":"o"}"#, None).unwrap();
        assert!(patient_of(&orphan).is_err());
    }

    #[test]
    fn dates_and_etags() {
        assert_eq!(etag(3), "W/\"3\"");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(instant(1_500).unwrap(), "1970-01-01T00:00:01.5Z");
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("W/\"2\", \"5\""),
        );
        assert!(none_match(&h, 2) && none_match(&h, 5) && !none_match(&h, 3));
    }
}
