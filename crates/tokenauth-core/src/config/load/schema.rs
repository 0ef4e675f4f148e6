//! The JSON Schema of `providers.toml`, generated from the readers: run over
//! empty tables, they record every key with its shape, doc and whether it
//! is required ([`Table`](super::table::Table)), and this turns the record
//! into JSON Schema (draft-07). `providers.schema.json` at the repository
//! root is this output (`tokenauth schema`); a test fails when it drifts.
//!
//! The schema says what a JSON Schema can: keys, types, patterns, required
//! keys, the parts of `[inject]`. The loader checks more (templates, https outside
//! loopback, an expiry source, ...).

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::report::Ctx;
use super::table::{Rule, Shape, TableSchema};
use super::tree::{Kind, Node};

/// The schema as pretty-printed JSON, ending in a newline.
pub(crate) fn json_schema() -> String {
    let mut ctx = Ctx::describing();
    let empty = Node {
        span: 0..0,
        kind: Kind::Table(Vec::new()),
    };
    let (_, root) = super::read_root(&mut ctx, &empty);
    let mut schema = vec![
        ("$schema", s("http://json-schema.org/draft-07/schema#")),
        ("$id", s("https://tokenauth.invalid/providers.schema.json")),
        ("title", s("tokenauth providers.toml")),
        (
            "description",
            s(
                "Provider descriptions for tokenauth. Generated from the loader by `tokenauth schema` (do not edit: tests/schema.rs fails when it drifts).",
            ),
        ),
    ];
    schema.extend(table(&root));
    let mut text = serde_json::to_string_pretty(&J::Obj(schema)).unwrap_or_default();
    text.push('\n');
    text
}

/// JSON with its object keys in the order written (serde_json's own map
/// sorts them unless a feature says otherwise; this output must not depend
/// on which features the build unified).
enum J {
    Str(String),
    Int(i64),
    Bool(bool),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
    /// An object whose keys are not static (`properties`).
    Named(Vec<(String, J)>),
}

fn s(text: &str) -> J {
    J::Str(text.to_owned())
}

fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> J {
    J::Arr(items.into_iter().map(s).collect())
}

impl Serialize for J {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Str(v) => ser.serialize_str(v),
            J::Int(v) => ser.serialize_i64(*v),
            J::Bool(v) => ser.serialize_bool(*v),
            J::Arr(items) => {
                let mut seq = ser.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            J::Obj(entries) => {
                let mut map = ser.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            J::Named(entries) => {
                let mut map = ser.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// The members of an object schema for a table.
fn table(schema: &TableSchema) -> Vec<(&'static str, J)> {
    let keys: Vec<_> = schema.keys.iter().filter(|k| !k.misplaced).collect();
    let mut out = vec![
        ("type", s("object")),
        ("additionalProperties", J::Bool(false)),
    ];
    let required: Vec<&str> = keys.iter().filter(|k| k.required).map(|k| k.name).collect();
    if !required.is_empty() {
        out.push(("required", strs(required)));
    }
    out.push((
        "properties",
        J::Named(
            keys.iter()
                .map(|k| {
                    let shape = k.shape.as_ref().map_or_else(Vec::new, value);
                    (k.name.to_owned(), with_description(shape, k.doc))
                })
                .collect(),
        ),
    ));
    let mut rules: Vec<J> = schema.rules.iter().map(rule).collect();
    match rules.len() {
        0 => {}
        1 => {
            if let Some(J::Obj(members)) = rules.pop() {
                out.extend(members);
            }
        }
        _ => out.push(("allOf", J::Arr(rules))),
    }
    out
}

fn with_description(mut members: Vec<(&'static str, J)>, doc: &str) -> J {
    if doc.is_empty() {
        return J::Obj(members);
    }
    match members.iter_mut().find(|(k, _)| *k == "description") {
        // The value type's own note follows the key's doc.
        Some((_, J::Str(note))) => *note = format!("{doc} {note}"),
        _ => members.push(("description", s(doc))),
    }
    J::Obj(members)
}

/// The members of a value's schema.
fn value(shape: &Shape) -> Vec<(&'static str, J)> {
    match shape {
        Shape::Str { pattern, note } => {
            let mut out = vec![("type", s("string"))];
            if let Some(p) = pattern {
                out.push(("pattern", s(p)));
            }
            if let Some(n) = note {
                out.push(("description", s(n)));
            }
            out
        }
        Shape::Choice(names) => vec![("type", s("string")), ("enum", strs(names.iter().copied()))],
        Shape::Bool => vec![("type", s("boolean"))],
        Shape::Integer { min, max } => vec![
            ("type", s("integer")),
            ("minimum", J::Int(*min)),
            ("maximum", J::Int(*max)),
        ],
        Shape::OneOrList { item, non_empty } => {
            let mut list = vec![("type", s("array")), ("items", J::Obj(value(item)))];
            if *non_empty {
                list.push(("minItems", J::Int(1)));
            }
            vec![("oneOf", J::Arr(vec![J::Obj(value(item)), J::Obj(list)]))]
        }
        Shape::Table(schema) => table(schema),
        Shape::AnyOf(shapes) => vec![(
            "anyOf",
            J::Arr(shapes.iter().map(|s| J::Obj(value(s))).collect()),
        )],
        Shape::Types(types) => vec![("type", strs(types.iter().copied()))],
        Shape::TableOrEmpty(schema, empty_doc) => vec![(
            "anyOf",
            J::Arr(vec![
                J::Obj(table(schema)),
                J::Obj(vec![
                    ("type", s("object")),
                    ("maxProperties", J::Int(0)),
                    ("description", s(empty_doc)),
                ]),
            ]),
        )],
        Shape::Map { names, values } => {
            let mut out = vec![("type", s("object"))];
            if let Some(p) = names {
                out.push(("propertyNames", J::Obj(vec![("pattern", s(p))])));
            }
            out.push(("additionalProperties", J::Obj(value(values))));
            out
        }
    }
}

fn required(keys: &[&str]) -> J {
    J::Obj(vec![("required", strs(keys.iter().copied()))])
}

fn rule(rule: &Rule) -> J {
    match rule {
        Rule::OneModeOf(modes) => J::Obj(vec![(
            "oneOf",
            J::Arr(
                modes
                    .iter()
                    .map(|(mode, companions)| {
                        let mut needs = vec![*mode];
                        needs.extend(companions.iter());
                        let others: Vec<J> = modes
                            .iter()
                            .filter(|(other, _)| other != mode)
                            .flat_map(|(other, with)| std::iter::once(other).chain(with.iter()))
                            .map(|key| required(&[key]))
                            .collect();
                        J::Obj(vec![
                            ("required", strs(needs)),
                            ("not", J::Obj(vec![("anyOf", J::Arr(others))])),
                        ])
                    })
                    .collect(),
            ),
        )]),
        Rule::AtLeastOneOf(keys) => J::Obj(vec![(
            "anyOf",
            J::Arr(keys.iter().map(|key| required(&[key])).collect()),
        )]),
        Rule::Together(a, b) => J::Obj(vec![(
            "dependencies",
            J::Named(vec![
                ((*a).to_owned(), strs([*b])),
                ((*b).to_owned(), strs([*a])),
            ]),
        )]),
        Rule::ForbiddenWhenTrue { flag, key } => J::Obj(vec![(
            "not",
            J::Obj(vec![
                ("required", strs([*flag, *key])),
                (
                    "properties",
                    J::Named(vec![(
                        (*flag).to_owned(),
                        J::Obj(vec![("const", J::Bool(true))]),
                    )]),
                ),
            ]),
        )]),
    }
}
