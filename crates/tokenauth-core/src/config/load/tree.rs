//! The tree the loader walks: one value type for every input format.
//!
//! TOML text is parsed by `toml` into a spanned tree and moved into this one
//! with byte offsets; any serde format (JSON, YAML, a value built in code)
//! is deserialized into it with no positions, so both go through the same
//! readers and get the same diagnostics.

use std::borrow::Cow;
use std::ops::Range;

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
    Float,
    Boolean(bool),
    Datetime,
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
            Kind::Float => "a float",
            Kind::Boolean(_) => "a boolean",
            Kind::Datetime => "a date-time",
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
        DeValue::Float(_) => Kind::Float,
        DeValue::Boolean(b) => Kind::Boolean(b),
        DeValue::Datetime(_) => Kind::Datetime,
        DeValue::Array(items) => Kind::Array(items.into_iter().map(toml_node).collect()),
        DeValue::Table(table) => Kind::Table(toml_entries(table)),
    };
    Node { span, kind }
}
