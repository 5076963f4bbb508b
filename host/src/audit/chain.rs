//! The chain itself: the canonical form of a record, its hash, and the
//! checks one line must pass on its own.
//!
//! **Canonical form.** A record is a flat JSON object. Its canonical bytes
//! are compact JSON (no whitespace, serde_json's string escaping) with the
//! keys `seq`, `time`, `prev`, `hash`, `kind` first, in that order, and every
//! other key after them sorted bytewise. The ordering is done here, not left
//! to `serde_json::Map`, so it does not depend on serde_json's
//! `preserve_order` feature. Floating-point numbers are refused: they do not
//! reliably survive a parse and re-print, and no record needs one.
//!
//! **Hash.** `hash = hex(sha256(prev ‖ "\n" ‖ canonical(record without "hash")))`,
//! where `prev` is the previous record's `hash` in hex ([`GENESIS`] for the first).
//!
//! **Line.** What is written is `canonical(record with "hash") ‖ "\n"`, and a
//! line is accepted only if it is exactly the canonical form of what it
//! parses to. Whitespace, key order, escapes and duplicate keys therefore
//! cannot be varied: a reader that keeps the first of two duplicate keys and
//! one that keeps the last always see the same record.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Keys written first, in this order; the rest follow sorted.
const HEAD: [&str; 5] = ["seq", "time", "prev", "hash", "kind"];

/// Keys the chain owns; an event must not carry them.
const RESERVED: [&str; 4] = ["seq", "time", "prev", "hash"];

/// What a line that passed [`check_line`] says about the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub seq: u64,
    pub prev: String,
    pub hash: String,
}

/// The canonical bytes of `map`, leaving out the top-level key `skip`.
pub(crate) fn canonical(map: &Map<String, Value>, skip: Option<&str>) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(512);
    write_object(map, skip, &mut out)?;
    Ok(out)
}

fn write_object(map: &Map<String, Value>, skip: Option<&str>, out: &mut Vec<u8>) -> Result<(), String> {
    let rank = |k: &str| HEAD.iter().position(|h| *h == k).unwrap_or(HEAD.len());
    let mut keys: Vec<&String> = map.keys().filter(|k| Some(k.as_str()) != skip).collect();
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    out.push(b'{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out)?;
        out.push(b':');
        match &map[key.as_str()] {
            Value::Object(inner) => write_object(inner, None, out)?,
            value => write_value(key, value, out)?,
        }
    }
    out.push(b'}');
    Ok(())
}

fn write_value(key: &str, value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) if n.is_f64() => {
            return Err(format!(
                "field {key:?} holds a floating-point number, which records may not"
            ));
        }
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match item {
                    Value::Object(inner) => write_object(inner, None, out)?,
                    other => write_value(key, other, out)?,
                }
            }
            out.push(b']');
        }
        Value::Object(inner) => write_object(inner, None, out)?,
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) -> Result<(), String> {
    serde_json::to_writer(out, s).map_err(|e| format!("encoding a string: {e}"))
}

/// `hex(sha256(prev ‖ "\n" ‖ body))`.
pub(crate) fn chain_hash(prev: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// The canonical bytes of an event (`{"kind":…,…}`): straight from its
/// `Serialize` impl when it is flat (every record is), else through a
/// `serde_json::Value`. Refuses a float and a key the chain reserves.
pub(crate) fn encode_event<T: serde::Serialize>(event: &T) -> Result<Vec<u8>, String> {
    match super::flat::canonical_record(event, &RESERVED) {
        Ok(bytes) => Ok(bytes),
        Err(super::flat::NotFlat::Refused(reason)) => Err(reason),
        Err(super::flat::NotFlat::Shape) => match serde_json::to_value(event) {
            Ok(Value::Object(map)) => {
                if let Some(key) = RESERVED.iter().find(|k| map.contains_key(**k)) {
                    return Err(format!("the event has a field {key:?}, which the chain reserves"));
                }
                canonical(&map, None)
            }
            Ok(_) => Err("the event is not a JSON object".to_string()),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// Build the line for `fields` (an event's JSON object) as record `seq`
/// following `prev`. Returns the line, newline included, and its hash.
/// (Tests forge records with it; the log seals [`encode_event`]'s bytes.)
#[cfg(test)]
pub(crate) fn seal(
    fields: Map<String, Value>,
    seq: u64,
    time: String,
    prev: &str,
) -> Result<(Vec<u8>, String), String> {
    if let Some(key) = RESERVED.iter().find(|k| fields.contains_key(**k)) {
        return Err(format!("the event has a field {key:?}, which the chain reserves"));
    }
    Ok(seal_encoded(&canonical(&fields, None)?, seq, &time, prev))
}

/// [`seal`] for an event already in canonical form ([`encode_event`]).
///
/// The chain's keys sort before every event key, so the record is the
/// event's canonical bytes with a prefix spliced in: the event is encoded
/// once (the hashed form and the line differ only by `"hash"`), which halves
/// what an append costs (perf: `seal` was half of `AuditLog::append`).
pub(crate) fn seal_encoded(event: &[u8], seq: u64, time: &str, prev: &str) -> (Vec<u8>, String) {
    // `event` is `{...}`; what follows the chain's keys is `,...}` or `}`.
    let rest: &[u8] = if event.len() > 2 { &event[1..] } else { b"}" };
    let separator: &[u8] = if event.len() > 2 { b"," } else { b"" };
    let mut head = Vec::with_capacity(event.len() + 200);
    head.extend_from_slice(b"{\"seq\":");
    head.extend_from_slice(seq.to_string().as_bytes());
    head.extend_from_slice(b",\"time\":");
    push_json_string(time, &mut head);
    head.extend_from_slice(b",\"prev\":");
    push_json_string(prev, &mut head);

    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    hasher.update(&head);
    hasher.update(separator);
    hasher.update(rest);
    let hash = hex::encode(hasher.finalize());

    let mut line = head;
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(hash.as_bytes());
    line.push(b'"');
    line.extend_from_slice(separator);
    line.extend_from_slice(rest);
    line.push(b'\n');
    (line, hash)
}

/// A string as serde_json writes it (which cannot fail into a `Vec`).
fn push_json_string(s: &str, out: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// Check one line (without its newline) on its own: JSON, canonical, the
/// chain fields well formed, and the hash matching the content. Linking it to
/// its neighbours is the caller's job. The error is the reason, without a line number.
pub(crate) fn check_line(line: &[u8]) -> Result<Link, String> {
    if line.is_empty() {
        return Err("empty line".into());
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        if e.is_eof() {
            format!(
                "not JSON: ends early at column {} (a torn or truncated write?)",
                e.column()
            )
        } else {
            format!("not JSON: invalid at column {}", e.column())
        }
    })?;
    let Value::Object(map) = value else {
        return Err("not a JSON object".into());
    };
    if canonical(&map, None)? != line {
        return Err("not in the log's canonical form (edited by hand?)".into());
    }
    let hex_field = |key: &str| match map.get(key) {
        Some(Value::String(s)) if is_hex_digest(s) => Ok(s.clone()),
        _ => Err(format!("{key:?} is missing or not a lowercase hex sha256")),
    };
    let hash = hex_field("hash")?;
    let prev = hex_field("prev")?;
    let seq = map
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| "\"seq\" is missing or not a non-negative integer".to_string())?;
    if chain_hash(&prev, &canonical(&map, Some("hash"))?) != hash {
        return Err("hash does not match its content (edited?)".into());
    }
    Ok(Link { seq, prev, hash })
}

fn is_hex_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `t` as RFC 3339 in UTC with milliseconds, e.g. `2026-05-01T09:30:00.123Z`.
/// Times before 1970 (a badly set clock) are written as the epoch.
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// (year, month, day) of the proleptic Gregorian calendar, `days` after 1970-01-01.
///
/// Counts in 400-year eras (146 097 days each) of years that start on March 1st,
/// so that the leap day is the last day of its year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> String {
        rfc3339_millis(UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis))
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_709_210_096, 789), "2024-02-29T12:34:56.789Z");
        assert_eq!(at(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn calendar_matches_a_day_by_day_count_for_three_centuries() {
        let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..(300 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let month_len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                (d, m) = (1, m + 1);
            }
            if m > 12 {
                (m, y) = (1, y + 1);
            }
        }
    }

    fn object(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json) {
            Ok(Value::Object(map)) => map,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn canonical_form_orders_keys_and_round_trips() {
        let map =
            object(r#"{"zeta":1,"kind":"admin","alpha":{"b":null,"a":[true,"x\ny"]},"seq":3,"hash":"h"}"#);
        let bytes = canonical(&map, None).expect("canonical");
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"seq":3,"hash":"h","kind":"admin","alpha":{"a":[true,"x\ny"],"b":null},"zeta":1}"#
        );
        let again = canonical(&object(&String::from_utf8_lossy(&bytes)), None).expect("canonical");
        assert_eq!(again, bytes);
        let without = canonical(&map, Some("hash")).expect("canonical");
        assert!(!String::from_utf8_lossy(&without).contains("\"hash\""));
    }

    #[test]
    fn canonical_form_refuses_floats() {
        let err = canonical(&object(r#"{"ms":1.5}"#), None).expect_err("float");
        assert!(err.contains("\"ms\""), "{err}");
    }

    /// `seal` splices the chain's keys in front of the event's canonical
    /// bytes; the result must be byte for byte what encoding the whole
    /// record as one map gives (keys that sort before and after `kind`,
    /// nested objects, escapes, and an event with `kind` only).
    #[test]
    fn a_sealed_line_is_the_canonical_form_of_the_whole_record() {
        for event in [
            r#"{"kind":"decision","agent":"a\"b","zeta":{"y":1,"x":[null]},"aardvark":true}"#,
            r#"{"kind":"admin"}"#,
        ] {
            let (line, hash) =
                seal(object(event), 42, "2026-01-01T00:00:00.000Z".into(), GENESIS).expect("seal");
            let mut whole = object(event);
            whole.insert("seq".into(), Value::from(42));
            whole.insert("time".into(), Value::from("2026-01-01T00:00:00.000Z"));
            whole.insert("prev".into(), Value::from(GENESIS));
            assert_eq!(
                hash,
                chain_hash(GENESIS, &canonical(&whole, None).expect("canonical"))
            );
            whole.insert("hash".into(), Value::from(hash.clone()));
            let mut expected = canonical(&whole, None).expect("canonical");
            expected.push(b'\n');
            assert_eq!(String::from_utf8_lossy(&line), String::from_utf8_lossy(&expected));
        }
    }

    #[test]
    fn a_sealed_line_checks_and_any_variation_of_it_does_not() {
        let fields = object(r#"{"kind":"admin","action":"a","actor":"é\u0001","subject":"s","detail":null}"#);
        let (line, hash) = seal(fields, 1, "t".into(), GENESIS).expect("seal");
        let body = &line[..line.len() - 1];
        let link = check_line(body).expect("check");
        assert_eq!(
            link,
            Link {
                seq: 1,
                prev: GENESIS.into(),
                hash
            }
        );

        let text = String::from_utf8_lossy(body).into_owned();
        let variants = [
            text.replacen(',', ", ", 1),                                    // whitespace
            text.replacen("{\"seq\":1,", "{\"seq\":1,\"seq\":1,", 1),       // duplicate key
            text.replacen("\"action\":\"a\"", "\"action\":\"\\u0061\"", 1), // another escape
            text.replacen("\"action\":\"a\"", "\"action\":\"b\"", 1),       // an edit
        ];
        for variant in variants {
            assert_ne!(variant, text);
            assert!(check_line(variant.as_bytes()).is_err(), "accepted {variant}");
        }
    }

    #[test]
    fn seal_refuses_reserved_keys() {
        let err = seal(object(r#"{"kind":"x","prev":"y"}"#), 1, "t".into(), GENESIS).expect_err("reserved");
        assert!(err.contains("\"prev\""), "{err}");
    }
}
