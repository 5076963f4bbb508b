//! The canonical bytes of a flat record, encoded straight from its
//! `Serialize` impl.
//!
//! Every audit record is one JSON object of scalar fields. Going through a
//! `serde_json::Value` (a map entry, a key `String` and a value per field)
//! and then re-encoding it was a quarter of an append (perf, 64
//! connections). Here each field is encoded once, by serde_json itself (so
//! strings and integers come out exactly as [`super::chain::canonical`]
//! writes them), and the fields are ordered as the canonical form orders
//! them. A record with a nested value takes the `Value` path instead.

use serde::Serialize;
use serde::ser::{self, Impossible};

/// Why the fast path could not encode a record.
#[derive(Debug)]
pub(crate) enum NotFlat {
    /// A nested value, or not a struct at all: use the general path.
    Shape,
    /// A float, a reserved key, an encoding error: refuse the record.
    Refused(String),
}

impl std::fmt::Display for NotFlat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotFlat::Shape => f.write_str("not a flat record"),
            NotFlat::Refused(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for NotFlat {}

impl ser::Error for NotFlat {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        NotFlat::Refused(msg.to_string())
    }
}

/// `{"kind":…,…}` with the other keys sorted bytewise, as
/// [`super::chain::canonical`] would write the record's `Value`.
pub(crate) fn canonical_record<T: Serialize>(record: &T, reserved: &[&str]) -> Result<Vec<u8>, NotFlat> {
    let mut fields = Fields::default();
    record.serialize(&mut fields)?;
    if let Some((key, _)) = fields.0.iter().find(|(k, _)| reserved.contains(k)) {
        return Err(NotFlat::Refused(format!(
            "the event has a field {key:?}, which the chain reserves"
        )));
    }
    fields
        .0
        .sort_unstable_by(|(a, _), (b, _)| (*a != "kind").cmp(&(*b != "kind")).then_with(|| a.cmp(b)));
    let mut out = Vec::with_capacity(fields.0.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 2);
    out.push(b'{');
    for (i, (key, value)) in fields.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).map_err(|e| NotFlat::Refused(e.to_string()))?;
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.push(b'}');
    Ok(out)
}

/// The fields of one struct: key and encoded value.
#[derive(Default)]
struct Fields(Vec<(&'static str, Vec<u8>)>);

impl ser::SerializeStruct for &mut Fields {
    type Ok = ();
    type Error = NotFlat;

    fn serialize_field<V: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), NotFlat> {
        let encoded = serde_json::to_vec(value).map_err(|e| NotFlat::Refused(e.to_string()))?;
        match encoded.first() {
            Some(b'{' | b'[') => return Err(NotFlat::Shape),
            Some(b'"') | None => {}
            // A number with a fraction or an exponent is a float.
            Some(_) if encoded.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) => {
                return Err(NotFlat::Refused(format!(
                    "field {key:?} holds a floating-point number, which records may not"
                )));
            }
            Some(_) => {}
        }
        self.0.push((key, encoded));
        Ok(())
    }

    fn end(self) -> Result<(), NotFlat> {
        Ok(())
    }
}

/// Only a struct (an internally tagged enum's variant serializes as one)
/// is taken; anything else is [`NotFlat::Shape`].
macro_rules! not_flat {
    ($($name:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $name(self, $(_: $arg),*) -> Result<$ret, NotFlat> { Err(NotFlat::Shape) })*
    };
}

impl<'a> ser::Serializer for &'a mut Fields {
    type Ok = ();
    type Error = NotFlat;
    type SerializeSeq = Impossible<(), NotFlat>;
    type SerializeTuple = Impossible<(), NotFlat>;
    type SerializeTupleStruct = Impossible<(), NotFlat>;
    type SerializeTupleVariant = Impossible<(), NotFlat>;
    type SerializeMap = Impossible<(), NotFlat>;
    type SerializeStruct = &'a mut Fields;
    type SerializeStructVariant = Impossible<(), NotFlat>;

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Self, NotFlat> {
        self.0.reserve(len);
        Ok(self)
    }

    fn serialize_some<V: Serialize + ?Sized>(self, _: &V) -> Result<(), NotFlat> {
        Err(NotFlat::Shape)
    }

    fn serialize_newtype_struct<V: Serialize + ?Sized>(self, _: &'static str, _: &V) -> Result<(), NotFlat> {
        Err(NotFlat::Shape)
    }

    fn serialize_newtype_variant<V: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &V,
    ) -> Result<(), NotFlat> {
        Err(NotFlat::Shape)
    }

    not_flat! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::Value;

    use super::super::chain::{canonical, encode_event};
    use super::super::record::{AdminRecord, AuditEvent, DecisionRecord, OutcomeRecord};

    /// What the general path writes: the record's `Value`, canonically.
    fn through_value<T: Serialize>(record: &T) -> Vec<u8> {
        match serde_json::to_value(record).expect("to_value") {
            Value::Object(map) => canonical(&map, None).expect("canonical"),
            other => panic!("not an object: {other}"),
        }
    }

    /// The fast path gives byte for byte what the `Value` path gives, for
    /// every kind of record, with escapes, unicode, nulls and numbers.
    #[test]
    fn every_record_kind_encodes_as_its_value_does() {
        let decision = AuditEvent::Decision(DecisionRecord {
            decision_id: "dec_1".into(),
            agent: "a\"gent\\\n\u{1}é😀".into(),
            role: "crash-tracker".into(),
            path: "/crashes/42?x=<y>".into(),
            verdict: "allow".into(),
            fuel: Some(2_528),
            latency_micros: u64::MAX,
            upstream_status: Some(200),
            on_behalf_of: None,
            ..DecisionRecord::default()
        });
        let outcome = AuditEvent::Outcome(OutcomeRecord {
            decision_id: "dec_1".into(),
            upstream_status: Some(502),
            bytes: Some(0),
            error: Some("upstream_unavailable".into()),
            latency_micros: 7,
        });
        let admin = AuditEvent::Admin(AdminRecord {
            action: "session.create".into(),
            actor: "admin".into(),
            subject: "ses_1".into(),
            detail: None,
        });
        for event in [decision, outcome, admin] {
            let fast = super::canonical_record(&event, &["seq", "time", "prev", "hash"]).expect("flat");
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&through_value(&event))
            );
            assert_eq!(encode_event(&event).expect("encode"), fast);
        }
    }

    #[derive(Serialize)]
    struct Nested {
        kind: &'static str,
        inner: Vec<u32>,
        zeta: u8,
    }

    #[derive(Serialize)]
    struct Float {
        kind: &'static str,
        ms: f64,
    }

    #[derive(Serialize)]
    struct Reserved {
        kind: &'static str,
        seq: u64,
    }

    /// A nested value takes the general path, to the same bytes; a float and
    /// a reserved key are refused on both.
    #[test]
    fn nested_values_fall_back_and_floats_and_reserved_keys_are_refused() {
        let nested = Nested {
            kind: "x",
            inner: vec![1, 2],
            zeta: 3,
        };
        assert!(matches!(
            super::canonical_record(&nested, &[]),
            Err(super::NotFlat::Shape)
        ));
        assert_eq!(encode_event(&nested).expect("encode"), through_value(&nested));
        let float = encode_event(&Float { kind: "x", ms: 1.5 }).expect_err("a float");
        assert!(float.contains("\"ms\""), "{float}");
        let reserved = encode_event(&Reserved { kind: "x", seq: 1 }).expect_err("reserved");
        assert!(reserved.contains("\"seq\""), "{reserved}");
    }
}
