//! The tree the loader walks: one value type for every input format.
//!
//! TOML text is parsed by `toml` into a spanned tree and moved into this one
//! with byte offsets; any serde format (JSON, YAML, a value built in code)
//! is deserialized into it with no positions, so both go through the same
//! readers and get the same diagnostics.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A value and where it is. For TOML, `span` is the byte range in the file;
/// for other formats it holds the value's rank in document order (so that
/// problems still sort in the order a reader meets them).
pub(super) struct Node<'i> {
    pub(super) span: Range<usize>,
    pub(super) kind: Kind<'i>,
}

pub(super) enum Kind<'i> {
    String(Cow<'i, str>),
    /// `None`: an integer outside `i64`.
    Integer(Option<i64>),
    /// NaN when TOML's float text does not parse (it always should).
    Float(f64),
    Boolean(bool),
    Datetime,
    /// Only from non-TOML input; a `null` table entry is dropped instead
    /// (serde's convention for an absent `Option`).
    Null,
    Array(Vec<Node<'i>>),
    Table(Vec<Entry<'i>>),
}

/// A key of a table, its position and its value, in document order.
pub(super) struct Entry<'i> {
    pub(super) key: Cow<'i, str>,
    pub(super) key_at: usize,
    pub(super) value: Node<'i>,
}

impl<'i> Node<'i> {
    pub(super) fn at(&self) -> usize {
        self.span.start
    }

    /// The entries, when this is a table.
    pub(super) fn entries(&self) -> Option<&[Entry<'i>]> {
        match &self.kind {
            Kind::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value of `key`, when this is a table that has it.
    pub(super) fn get(&self, key: &str) -> Option<&Node<'i>> {
        self.entries()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// "a string", "an integer", ...: for "expected X, found Y".
    pub(super) fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::String(_) => "a string",
            Kind::Integer(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Boolean(_) => "a boolean",
            Kind::Datetime => "a date-time",
            Kind::Null => "null",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }

    /// Moves a parsed TOML document into the tree, keeping byte offsets.
    pub(super) fn from_toml(root: Spanned<DeTable<'i>>) -> Self {
        let span = root.span();
        Node {
            span,
            kind: Kind::Table(toml_entries(root.into_inner())),
        }
    }
}

fn toml_entries(table: DeTable<'_>) -> Vec<Entry<'_>> {
    table
        .into_iter()
        .map(|(key, value)| Entry {
            key_at: key.span().start,
            key: key.into_inner(),
            value: toml_node(value),
        })
        .collect()
}

fn toml_node(value: Spanned<DeValue<'_>>) -> Node<'_> {
    let span = value.span();
    let kind = match value.into_inner() {
        DeValue::String(s) => Kind::String(s),
        DeValue::Integer(i) => Kind::Integer(i64::from_str_radix(i.as_str(), i.radix()).ok()),
        DeValue::Float(f) => Kind::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Kind::Boolean(b),
        DeValue::Datetime(_) => Kind::Datetime,
        DeValue::Array(items) => Kind::Array(items.into_iter().map(toml_node).collect()),
        DeValue::Table(table) => Kind::Table(toml_entries(table)),
    };
    Node { span, kind }
}

/// Deserializes any self-describing serde input into the tree. Positions are
/// ranks in document order: `next` counts the keys and values met so far.
pub(super) struct Seeded<'n> {
    pub(super) next: &'n mut usize,
}

impl Seeded<'_> {
    /// The next rank in document order.
    pub(super) fn rank(&mut self) -> usize {
        *self.next += 1;
        *self.next
    }
}

impl<'de> de::DeserializeSeed<'de> for Seeded<'_> {
    type Value = Node<'static>;

    fn deserialize<D: Deserializer<'de>>(mut self, d: D) -> Result<Self::Value, D::Error> {
        let at = self.rank();
        let kind = d.deserialize_any(KindVisitor { next: self.next })?;
        Ok(Node { span: at..at, kind })
    }
}

struct KindVisitor<'n> {
    next: &'n mut usize,
}

impl<'de> Visitor<'de> for KindVisitor<'_> {
    type Value = Kind<'static>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a provider description: tables of strings, booleans, integers and lists")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Kind::Boolean(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Kind::Integer(Some(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Kind::Integer(i64::try_from(v).ok()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Kind::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Kind::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Kind::String(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Kind::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Kind::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Seeded { next: self.next })? {
            items.push(item);
        }
        Ok(Kind::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            *self.next += 1;
            let key_at = *self.next;
            let value = map.next_value_seed(Seeded { next: self.next })?;
            if !seen.insert(key.clone()) {
                // TOML cannot say a key twice; other formats can, and which
                // one was meant is not for the loader to guess.
                return Err(de::Error::custom(format_args!(
                    "the key `{key}` is given twice in one table: keep one"
                )));
            }
            if matches!(value.kind, Kind::Null) {
                continue;
            }
            entries.push(Entry {
                key: Cow::Owned(key),
                key_at,
                value,
            });
        }
        Ok(Kind::Table(entries))
    }
}
