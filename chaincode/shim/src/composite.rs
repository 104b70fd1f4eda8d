//! Fabric's composite keys (`shim.CreateCompositeKey` / `SplitCompositeKey`): U+0000, the
//! object type, then each attribute, each followed by U+0000. Keys in this namespace sort
//! by object type then attributes, so a range over a prefix lists one object type.

use crate::error::{ChaincodeError, Result};

const NS: char = '\u{0}';
const MIN_RUNE: char = '\u{0}';
const MAX_RUNE: char = '\u{10FFFF}';

fn check(part: &str) -> Result<()> {
    if part.contains(MIN_RUNE) || part.contains(MAX_RUNE) {
        return Err(ChaincodeError::InvalidArgument(
            "composite key parts must not contain U+0000 or U+10FFFF".into(),
        ));
    }
    Ok(())
}

/// `\0objectType\0attr1\0attr2\0...`.
///
/// # Errors
/// [`ChaincodeError::InvalidArgument`] if a part contains U+0000 or U+10FFFF, or the object
/// type is empty.
pub fn create(object_type: &str, attributes: &[&str]) -> Result<String> {
    if object_type.is_empty() {
        return Err(ChaincodeError::InvalidArgument("empty object type".into()));
    }
    check(object_type)?;
    let mut key = String::with_capacity(
        2 + object_type.len() + attributes.iter().map(|a| a.len() + 1).sum::<usize>(),
    );
    key.push(NS);
    key.push_str(object_type);
    key.push(MIN_RUNE);
    for a in attributes {
        check(a)?;
        key.push_str(a);
        key.push(MIN_RUNE);
    }
    Ok(key)
}

/// Splits a composite key into object type and attributes; `None` if `key` is not one.
pub fn split(key: &str) -> Option<(String, Vec<String>)> {
    let rest = key.strip_prefix(NS)?;
    let rest = rest.strip_suffix(MIN_RUNE)?;
    let mut parts = rest.split(MIN_RUNE).map(str::to_owned);
    let object_type = parts.next()?;
    Some((object_type, parts.collect()))
}

/// The `[start, end)` range of all composite keys with this object type and attribute prefix
/// (Fabric's `GetStateByPartialCompositeKey`).
///
/// # Errors
/// As [`create`].
pub fn partial_range(object_type: &str, attributes: &[&str]) -> Result<(String, String)> {
    let start = create(object_type, attributes)?;
    let mut end = start.clone();
    end.push(MAX_RUNE);
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fabric_layout() {
        let k = create("consent", &["patient-1", "Org2MSP"]).unwrap();
        assert_eq!(k, "\u{0}consent\u{0}patient-1\u{0}Org2MSP\u{0}");
        assert_eq!(
            split(&k),
            Some(("consent".into(), vec!["patient-1".into(), "Org2MSP".into()]))
        );
        assert_eq!(split("plain"), None);
        assert!(create("x", &["a\u{0}b"]).is_err());
        assert!(create("", &[]).is_err());
        let (s, e) = partial_range("consent", &["patient-1"]).unwrap();
        assert!(s.as_str() < k.as_str() && k.as_str() < e.as_str());
        let other = create("consent", &["patient-2", "Org2MSP"]).unwrap();
        assert!(other.as_str() > e.as_str());
    }
}
