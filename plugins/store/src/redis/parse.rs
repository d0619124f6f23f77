//! Reading Redis replies back into the store's types. Nothing here panics on
//! what the server answers: anything unexpected is [`StoreError::Corrupt`].

use redis::Value;

use crate::{OpsEntry, StoreError};

pub(super) fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) => "a bulk string",
        Value::Array(_) => "an array",
        Value::SimpleString(_) | Value::Okay => "a status",
        Value::ServerError(_) => "an error",
        _ => "an unexpected reply",
    }
}

/// A bulk string's bytes.
pub(super) fn bytes_field(key: &str, value: &Value) -> Result<Vec<u8>, StoreError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes.clone()),
        other => Err(corrupt(key, format!("expected bytes, got {}", kind(other)))),
    }
}

/// A decimal u64, as a bulk string (how the store writes numbers) or an integer.
pub(super) fn u64_value(key: &str, value: &Value) -> Result<u64, StoreError> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(32)]).into_owned();
                corrupt(key, format!("{shown:?} is not a tick number"))
            }),
        Value::Int(n) => u64::try_from(*n).map_err(|_| corrupt(key, format!("{n} is negative"))),
        other => Err(corrupt(
            key,
            format!("expected a number, got {}", kind(other)),
        )),
    }
}

/// A `PTTL` reply in whole seconds, rounded up: `-2` (absent) is `None`, `-1`
/// (no expiry) is `Some(u64::MAX)`.
pub(super) fn ttl_secs(key: &str, value: &Value) -> Result<Option<u64>, StoreError> {
    match value {
        Value::Int(-2) => Ok(None),
        Value::Int(-1) => Ok(Some(u64::MAX)),
        Value::Int(ms) if *ms >= 0 => Ok(Some((*ms as u64).div_ceil(1_000).max(1))),
        other => Err(corrupt(key, format!("PTTL answered {}", kind(other)))),
    }
}

/// The entries of an `XRANGE`/`XREVRANGE` reply, in reply order.
pub(super) fn ops_entries(key: &str, reply: Value) -> Result<Vec<OpsEntry>, StoreError> {
    let Value::Array(entries) = reply else {
        return Err(corrupt(key, format!("XRANGE answered {}", kind(&reply))));
    };
    entries.iter().map(|e| ops_entry(key, e)).collect()
}

/// One stream entry: `[id, [field, value, ...]]` with fields `tick`, `from`,
/// `data` and id `<tick>-1`.
fn ops_entry(key: &str, entry: &Value) -> Result<OpsEntry, StoreError> {
    let Value::Array(parts) = entry else {
        return Err(corrupt(key, format!("a stream entry is {}", kind(entry))));
    };
    let [id, Value::Array(fields)] = parts.as_slice() else {
        return Err(corrupt(key, "a stream entry is not [id, fields]"));
    };
    let id = bytes_field(key, id)?;
    let id = String::from_utf8_lossy(&id);
    let entry_key = format!("{key} entry {id}");
    let (mut tick, mut from, mut data) = (None, None, None);
    for pair in fields.chunks(2) {
        let [name, value] = pair else {
            return Err(corrupt(&entry_key, "odd number of field values"));
        };
        match bytes_field(&entry_key, name)?.as_slice() {
            b"tick" => tick = Some(u64_value(&entry_key, value)?),
            b"from" => from = Some(u64_value(&entry_key, value)?),
            b"data" => data = Some(bytes_field(&entry_key, value)?),
            _ => {} // fields a later version may add
        }
    }
    let missing = |name: &str| corrupt(&entry_key, format!("field {name} is missing"));
    let tick = tick.ok_or_else(|| missing("tick"))?;
    let entry = OpsEntry {
        from: from.ok_or_else(|| missing("from"))?,
        tick,
        data: data.ok_or_else(|| missing("data"))?,
    };
    if id != format!("{tick}-1") {
        return Err(corrupt(
            &entry_key,
            format!("the id does not match tick {tick}"),
        ));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn stream_entries_parse() {
        let reply = Value::Array(vec![entry(
            "7-1",
            &["tick", "7", "from", "5", "data", "xyz"],
        )]);
        let parsed = ops_entries("k", reply).unwrap();
        assert_eq!(
            parsed,
            vec![OpsEntry {
                from: 5,
                tick: 7,
                data: b"xyz".to_vec()
            }]
        );
    }

    #[test]
    fn garbled_stream_entries_are_corrupt_not_panics() {
        let garbled = [
            Value::Int(3),
            Value::Array(vec![Value::Nil]),
            Value::Array(vec![bulk("7-1")]),
            Value::Array(vec![entry("7-1", &["tick", "7", "from"])]),
            Value::Array(vec![entry("7-1", &["tick", "7", "data", "x"])]),
            Value::Array(vec![entry(
                "7-1",
                &["tick", "seven", "from", "1", "data", "x"],
            )]),
            Value::Array(vec![entry("8-1", &["tick", "7", "from", "1", "data", "x"])]),
            Value::Array(vec![Value::Array(vec![
                bulk("7-1"),
                Value::Array(vec![bulk("tick"), Value::Int(-7)]),
            ])]),
        ];
        for reply in garbled {
            let shown = format!("{reply:?}");
            let err = ops_entries("k", reply).expect_err(&shown);
            assert!(matches!(err, StoreError::Corrupt { .. }), "{shown}: {err}");
        }
    }

    #[test]
    fn ttls_round_up_and_map_the_special_values() {
        assert_eq!(ttl_secs("k", &Value::Int(-2)).unwrap(), None);
        assert_eq!(ttl_secs("k", &Value::Int(-1)).unwrap(), Some(u64::MAX));
        assert_eq!(ttl_secs("k", &Value::Int(0)).unwrap(), Some(1));
        assert_eq!(ttl_secs("k", &Value::Int(599_001)).unwrap(), Some(600));
        assert!(ttl_secs("k", &Value::Int(-3)).is_err());
        assert!(ttl_secs("k", &Value::Nil).is_err());
    }
}
