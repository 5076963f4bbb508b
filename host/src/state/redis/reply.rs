//! Reading the scripts' replies: nested arrays of strings and integers.
//! Anything of another shape is a bug of ours or a foreign server, reported
//! as a store error rather than guessed at.

use std::collections::BTreeMap;

use redis::Value;

use super::super::StateError;

fn bad(what: &str) -> StateError {
    StateError(format!("redis: unexpected reply ({what})"))
}

/// The items of an array reply.
pub(super) fn array(v: Value) -> Result<Vec<Value>, StateError> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err(bad("not an array")),
    }
}

/// A string reply; `None` for nil (an absent hash field).
pub(super) fn opt_text(v: Value) -> Result<Option<String>, StateError> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => String::from_utf8(b).map(Some).map_err(|_| bad("not UTF-8")),
        Value::SimpleString(s) => Ok(Some(s)),
        Value::Okay => Ok(Some("OK".into())),
        Value::Int(n) => Ok(Some(n.to_string())),
        _ => Err(bad("not a string")),
    }
}

pub(super) fn text(v: Value) -> Result<String, StateError> {
    opt_text(v)?.ok_or_else(|| bad("nil where a string was due"))
}

pub(super) fn int(v: Value) -> Result<i64, StateError> {
    match v {
        Value::Int(n) => Ok(n),
        other => text(other)?.parse().map_err(|_| bad("not an integer")),
    }
}

/// An HGETALL-style flat `[field, value, ...]` array as a map.
pub(super) fn map(v: Value) -> Result<BTreeMap<String, String>, StateError> {
    let items = array(v)?;
    if items.len() % 2 != 0 {
        return Err(bad("odd-length field list"));
    }
    let mut out = BTreeMap::new();
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.insert(text(k)?, text(v)?);
    }
    Ok(out)
}

/// Pops items off the front of an array reply, in order.
pub(super) struct Items(std::vec::IntoIter<Value>);

impl Items {
    pub(super) fn of(v: Value) -> Result<Items, StateError> {
        Ok(Items(array(v)?.into_iter()))
    }

    pub(super) fn next(&mut self) -> Result<Value, StateError> {
        self.0.next().ok_or_else(|| bad("too few items"))
    }

    pub(super) fn text(&mut self) -> Result<String, StateError> {
        text(self.next()?)
    }

    pub(super) fn int(&mut self) -> Result<i64, StateError> {
        int(self.next()?)
    }

    pub(super) fn map(&mut self) -> Result<BTreeMap<String, String>, StateError> {
        map(self.next()?)
    }
}

/// A field of a hash the host wrote: missing means the record is damaged.
pub(super) fn field<'a>(h: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, StateError> {
    h.get(name)
        .map(String::as_str)
        .ok_or_else(|| StateError(format!("redis: record without field {name:?}")))
}

pub(super) fn num(h: &BTreeMap<String, String>, name: &str) -> Result<u64, StateError> {
    field(h, name)?
        .parse()
        .map_err(|_| StateError(format!("redis: field {name:?} is not a number")))
}
