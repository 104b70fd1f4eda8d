//! Helpers shared by the contract functions: parameters, time, JSON state, pages, events.

use std::time::UNIX_EPOCH;

use medledger_chaincode::ChaincodeStub;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{EhrError, Result};
use crate::ids::patient_key;
use crate::model::PatientEntry;

/// Default page size of list functions.
pub const DEFAULT_PAGE_SIZE: i32 = 50;
/// Largest page size of list functions.
pub const MAX_PAGE_SIZE: i32 = 200;

/// Latest transaction time accepted, ms (9999-12-31T23:59:59.999Z, protobuf `Timestamp`'s
/// limit), so sums of times and durations never overflow.
pub(crate) const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// Parameter `i`, or 400 with the function's usage.
pub(crate) fn param<'a>(args: &'a [String], i: usize, usage: &str) -> Result<&'a str> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| EhrError::invalid(format!("usage: {usage}")))
}

/// Optional parameter `i` (absent or empty = `None`).
pub(crate) fn opt_param(args: &[String], i: usize) -> Option<&str> {
    args.get(i).map(String::as_str).filter(|s| !s.is_empty())
}

/// Parses parameter `i` as JSON.
pub(crate) fn json_param<T: DeserializeOwned>(args: &[String], i: usize, usage: &str) -> Result<T> {
    let raw = param(args, i, usage)?;
    serde_json::from_str(raw).map_err(|e| {
        EhrError::invalid(format!(
            "parameter {i} is not valid JSON for this function (line {}, column {}); usage: {usage}",
            e.line(),
            e.column()
        ))
    })
}

/// Page size (parameter `i`, default [`DEFAULT_PAGE_SIZE`]) and bookmark (parameter `i + 1`).
pub(crate) fn page_params(args: &[String], i: usize) -> Result<(i32, String)> {
    let size = match opt_param(args, i) {
        None => DEFAULT_PAGE_SIZE,
        Some(s) => s
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| EhrError::invalid(format!("page size must be 1 to {MAX_PAGE_SIZE}")))?,
    };
    Ok((size, opt_param(args, i + 1).unwrap_or_default().to_owned()))
}

/// The transaction timestamp in ms since the Unix epoch (the same on every endorser).
pub(crate) fn now_ms(stub: &dyn ChaincodeStub) -> Result<u64> {
    let t = stub
        .tx_timestamp()
        .map_err(|_| EhrError::invalid("the proposal has no timestamp"))?;
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| EhrError::invalid("the proposal timestamp is before 1970"))?
        .as_millis();
    u64::try_from(ms)
        .ok()
        .filter(|ms| *ms <= MAX_TIME_MS)
        .ok_or_else(|| EhrError::invalid("the proposal timestamp is after year 9999"))
}

/// Reads and decodes a JSON entry.
pub(crate) fn get_json<T: DeserializeOwned>(
    stub: &dyn ChaincodeStub,
    key: &str,
    what: &'static str,
) -> Result<Option<T>> {
    match stub.get_state(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| EhrError::Corrupt(what)),
    }
}

/// Encodes `value` as JSON.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|_| EhrError::Corrupt("response"))
}

/// Writes a JSON entry.
pub(crate) fn put_json<T: Serialize>(stub: &dyn ChaincodeStub, key: &str, value: &T) -> Result<()> {
    stub.put_state(key, &to_json(value)?)?;
    Ok(())
}

/// The registered patient, or 404.
pub(crate) fn load_patient(stub: &dyn ChaincodeStub, patient_id: &str) -> Result<PatientEntry> {
    get_json(stub, &patient_key(patient_id)?, "patient")?
        .ok_or_else(|| EhrError::not_found("patient", patient_id))
}

/// One page of JSON entries in `[start, end)`, decoded.
pub(crate) fn page<T: DeserializeOwned>(
    stub: &dyn ChaincodeStub,
    (start, end): (String, String),
    size: i32,
    bookmark: &str,
    what: &'static str,
) -> Result<(Vec<T>, String)> {
    let in_range = start.as_str() <= bookmark && bookmark < end.as_str();
    if !bookmark.is_empty() && !in_range {
        return Err(EhrError::invalid("bookmark is not from this list"));
    }
    let page = stub.get_state_by_range_with_pagination(&start, &end, size, bookmark)?;
    let items = page
        .results
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).map_err(|_| EhrError::Corrupt(what)))
        .collect::<Result<Vec<T>>>()?;
    Ok((items, page.bookmark))
}

/// All JSON entries in `[start, end)`, decoded (for submitted transactions: unpaged range
/// queries are what Fabric allows there).
pub(crate) fn all<T: DeserializeOwned>(
    stub: &dyn ChaincodeStub,
    (start, end): (String, String),
    what: &'static str,
) -> Result<Vec<T>> {
    stub.get_state_by_range(&start, &end)?
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).map_err(|_| EhrError::Corrupt(what)))
        .collect()
}

/// The chaincode events of one transaction. Fabric keeps one event per transaction, so one
/// event is set under its own name; several are set as one [`EVENTS`] event whose payload is
/// `{"events":[{"name":…,"payload":{…}},…]}`. Payloads hold ids only.
#[derive(Debug, Default)]
pub(crate) struct Events(Vec<(&'static str, Value)>);

/// Name of the event carrying several events of one transaction.
pub const EVENTS: &str = "EhrEvents";

impl Events {
    pub(crate) fn push(&mut self, name: &'static str, payload: Value) {
        self.0.push((name, payload));
    }

    pub(crate) fn extend(&mut self, other: Events) {
        self.0.extend(other.0);
    }

    pub(crate) fn emit(self, stub: &dyn ChaincodeStub) -> Result<()> {
        match self.0.as_slice() {
            [] => Ok(()),
            [(name, payload)] => Ok(stub.set_event(name, &to_json(payload)?)?),
            many => {
                let list: Vec<Value> = many
                    .iter()
                    .map(|(name, payload)| serde_json::json!({"name": name, "payload": payload}))
                    .collect();
                Ok(stub.set_event(EVENTS, &to_json(&serde_json::json!({ "events": list }))?)?)
            }
        }
    }
}
