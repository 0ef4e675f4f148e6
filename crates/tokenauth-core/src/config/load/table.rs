//! The one helper every table reader takes its keys through (in the manner
//! of toml-span's `TableHelper`).
//!
//! A reader asks the [`Table`] for each key it knows, with the key's shape and
//! a one-line doc. The table records every key asked for; when the reader is
//! done, [`Table::finish`] reports each key nobody asked for, with a
//! did-you-mean drawn from that record. So a table's key names live in one
//! place, the code that reads them, and the same record, gathered by running
//! the readers over empty tables ([`Ctx::describing`]), is the language's
//! JSON Schema (`schema.rs`).

use std::ops::Range;
use std::rc::Rc;

use super::report::{Ctx, Help};
use super::tree::{Entry, Kind, Node};

/// What a key holds, as far as a JSON Schema can say it.
#[derive(Clone, Debug)]
pub(super) enum Shape {
    /// A string; `pattern` (a regex) and `note` say more when given.
    Str {
        pattern: Option<&'static str>,
        note: Option<&'static str>,
    },
    /// One of these strings.
    Choice(Vec<&'static str>),
    Bool,
    /// An integer from `min` to `max`.
    Integer {
        min: i64,
        max: i64,
    },
    /// One value, or a list of them (non-empty when `non_empty`).
    OneOrList {
        item: Box<Shape>,
        non_empty: bool,
    },
    Table(TableSchema),
    /// A table, or `{}` meaning "none".
    TableOrEmpty(TableSchema, &'static str),
    /// Any one of these shapes (a token source: a pointer or a table;
    /// `inject.query`: one parameter as a table, or a table of parameters).
    AnyOf(Vec<Shape>),
    /// A value of one of these JSON types (`object`, `array`, ...), any content.
    Types(&'static [&'static str]),
    /// A table of free-form keys (matching `names`, a regex), each holding
    /// a `values`.
    Map {
        names: Option<&'static str>,
        values: Box<Shape>,
    },
}

/// A rule between the keys of one table that the schema states (the loader
/// checks it in the reader, with its own message).
#[derive(Clone, Debug)]
pub(super) enum Rule {
    /// Exactly one of the modes is written; each mode's companions go only
    /// with it (and are required with it).
    OneModeOf(&'static [(&'static str, &'static [&'static str])]),
    /// At least one of these keys is written.
    AtLeastOneOf(&'static [&'static str]),
    /// These two keys are written together or not at all.
    Together(&'static str, &'static str),
    /// `key` is not allowed when `flag` is `true`.
    ForbiddenWhenTrue {
        flag: &'static str,
        key: &'static str,
    },
}

/// One key as a reader asked for it.
#[derive(Clone, Debug)]
pub(super) struct KeyRecord {
    pub(super) name: &'static str,
    pub(super) doc: &'static str,
    /// Filled in describe mode only (a nested table's schema comes from
    /// running its reader); `None` while reading a file.
    pub(super) shape: Option<Shape>,
    pub(super) required: bool,
    /// Known here only to say it belongs elsewhere: offered as a
    /// did-you-mean, but not part of the schema.
    pub(super) misplaced: bool,
}

/// Everything one table's reader asked for.
#[derive(Clone, Debug, Default)]
pub(super) struct TableSchema {
    pub(super) keys: Vec<KeyRecord>,
    pub(super) rules: Vec<Rule>,
}

/// A table being read: its entries, which of them were taken, its position,
/// key path and the record of the keys its reader asked for.
pub(super) struct Table<'a, 'i> {
    entries: &'a [Entry<'i>],
    taken: Vec<bool>,
    pub(super) at: usize,
    pub(super) path: String,
    /// How the table is named in "X accepts: ..." (`a [login] table`).
    what: &'static str,
    schema: TableSchema,
}

impl<'a, 'i> Table<'a, 'i> {
    /// Opens `node` as a table, or reports that it is not one.
    pub(super) fn open(
        ctx: &mut Ctx<'_>,
        node: &'a Node<'i>,
        path: String,
        what: &'static str,
    ) -> Option<Self> {
        match &node.kind {
            Kind::Table(entries) => Some(Table {
                entries,
                taken: vec![false; entries.len()],
                at: node.at(),
                path,
                what,
                schema: TableSchema::default(),
            }),
            _ => {
                ctx.error(
                    node.at(),
                    &path,
                    format!("expected a table, found {}", node.type_name()),
                    Some(format!("write it as `[{path}]` with keys below it, or as an inline table `{{ key = \"value\" }}`")),
                );
                None
            }
        }
    }

    /// An empty table, for describing the language.
    pub(super) fn empty(path: String, what: &'static str) -> Self {
        Table {
            entries: &[],
            taken: Vec::new(),
            at: 0,
            path,
            what,
            schema: TableSchema::default(),
        }
    }

    pub(super) fn child_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key` without taking it: for rules that ask whether a
    /// key is written.
    pub(super) fn peek(&self, key: &str) -> Option<&'a Node<'i>> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// Whether `key` is written in the sub-table `sub`, counting a `sub` that
    /// is not a table at all (it has its own error, which must not be
    /// followed by one saying that `key` is missing).
    pub(super) fn written_in(&self, sub: &str, key: &str) -> bool {
        match self.peek(sub) {
            Some(node) => node.entries().is_none() || node.get(key).is_some(),
            None => false,
        }
    }

    /// Takes `key`: records it with its shape and doc and returns its value.
    pub(super) fn take(
        &mut self,
        ctx: &Ctx<'_>,
        key: &'static str,
        doc: &'static str,
        shape: impl FnOnce() -> Shape,
    ) -> Option<&'a Node<'i>> {
        self.record(ctx, key, doc, shape, false)
    }

    /// Takes a key that is known only to say it belongs elsewhere (`rotate`
    /// outside `[refresh]`): not part of the schema, but not "unknown".
    pub(super) fn misplaced(&mut self, ctx: &Ctx<'_>, key: &'static str) -> Option<&'a Node<'i>> {
        self.record(ctx, key, "", || Shape::Bool, true)
    }

    fn record(
        &mut self,
        ctx: &Ctx<'_>,
        name: &'static str,
        doc: &'static str,
        shape: impl FnOnce() -> Shape,
        misplaced: bool,
    ) -> Option<&'a Node<'i>> {
        self.schema.keys.push(KeyRecord {
            name,
            doc,
            shape: ctx.is_describing().then(shape),
            required: false,
            misplaced,
        });
        let i = self.entries.iter().position(|e| e.key == name)?;
        self.taken[i] = true;
        Some(&self.entries[i].value)
    }

    /// Marks `key` (already taken) as required in the schema, and reports it
    /// missing, with `help`, when it is not written. `value` passes through.
    pub(super) fn require<T>(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &str,
        value: Option<T>,
        help: &str,
    ) -> Option<T> {
        self.required(key);
        if value.is_none() && self.peek(key).is_none() {
            ctx.error(
                self.at,
                &self.path,
                format!("missing key `{key}`"),
                Some(help.to_owned()),
            );
        }
        value
    }

    /// Marks `key` (already taken) as required in the schema; the reader
    /// reports its absence itself, with a message that knows more.
    pub(super) fn required(&mut self, key: &str) {
        if let Some(k) = self.schema.keys.iter_mut().find(|k| k.name == key) {
            k.required = true;
        }
    }

    /// States a rule between keys for the schema (the reader checks it).
    pub(super) fn rule(&mut self, rule: Rule) {
        self.schema.rules.push(rule);
    }

    /// Takes a sub-table key and reads it with `read` now: `None` when it is
    /// absent or not a table (reported).
    pub(super) fn table<T>(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
        what: &'static str,
        read: impl Fn(&mut Ctx<'_>, &mut Table<'a, 'i>) -> T,
    ) -> Option<T> {
        let node = self.declare_table(ctx, (key, doc), what, None, &read)?;
        read_table(ctx, node, self.child_path(key), what, &read)
    }

    /// Takes a sub-table key whose reading depends on other keys: returns
    /// its value unread, to be read later with [`read_table`] and the same
    /// `read`. Describing, runs `read` over an empty table for the schema.
    /// `empty_means`: the table may also be written `{}`, which means this
    /// (e.g. "no client authentication").
    pub(super) fn declare_table<T>(
        &mut self,
        ctx: &mut Ctx<'_>,
        (key, doc): (&'static str, &'static str),
        what: &'static str,
        empty_means: Option<&'static str>,
        read: &impl Fn(&mut Ctx<'_>, &mut Table<'a, 'i>) -> T,
    ) -> Option<&'a Node<'i>> {
        let schema = describe(ctx, self.child_path(key), what, read);
        self.take(ctx, key, doc, || {
            let schema = schema.unwrap_or_default();
            match empty_means {
                Some(empty) => Shape::TableOrEmpty(schema, empty),
                None => Shape::Table(schema),
            }
        })
    }

    /// Takes a key holding a table of free-form names, each a table read by
    /// `read` (`inputs`, `providers`). Returns the entries to walk; each
    /// entry's table is read with [`read_table`] and the same `read`.
    pub(super) fn map_of_tables<T>(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
        names: &'static str,
        what: &'static str,
        read: &impl Fn(&mut Ctx<'_>, &mut Table<'a, 'i>) -> T,
    ) -> Option<Map<'a, 'i>> {
        let schema = describe(ctx, self.child_path(key), what, read);
        let node = self.take(ctx, key, doc, || Shape::Map {
            names: Some(names),
            values: Box::new(Shape::Table(schema.unwrap_or_default())),
        })?;
        Map::open(ctx, node, self.child_path(key))
    }

    /// Takes a key holding a table of free-form names (matching `names`, a
    /// regex, when given), each a value of `values`: `fields`, `headers`.
    pub(super) fn map(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        doc: &'static str,
        names: Option<&'static str>,
        values: impl FnOnce() -> Shape,
    ) -> Option<Map<'a, 'i>> {
        let node = self.take(ctx, key, doc, || Shape::Map {
            names,
            values: Box::new(values()),
        })?;
        Map::open(ctx, node, self.child_path(key))
    }

    /// Reports every key the reader did not take, with a did-you-mean from
    /// the keys it did, and returns the record.
    pub(super) fn finish(self, ctx: &mut Ctx<'_>) -> TableSchema {
        let mut expected: Option<Rc<[&'static str]>> = None;
        for (entry, taken) in self.entries.iter().zip(&self.taken) {
            if *taken {
                continue;
            }
            let expected = expected
                .get_or_insert_with(|| self.schema.keys.iter().map(|k| k.name).collect())
                .clone();
            let name: &str = &entry.key;
            ctx.problem(
                entry.key_at,
                &self.child_path(name),
                format!("unknown key `{name}`"),
                Help::Suggest {
                    name: name.to_owned(),
                    expected,
                    what: self.what,
                },
            );
        }
        self.schema
    }
}

/// Reads `node` as a table with `read`, then reports its unknown keys.
pub(super) fn read_table<'a, 'i: 'a, T>(
    ctx: &mut Ctx<'_>,
    node: &'a Node<'i>,
    path: String,
    what: &'static str,
    read: &impl Fn(&mut Ctx<'_>, &mut Table<'a, 'i>) -> T,
) -> Option<T> {
    let mut table = Table::open(ctx, node, path, what)?;
    let value = read(ctx, &mut table);
    table.finish(ctx);
    Some(value)
}

/// Describing the language: runs `read` over an empty table and returns
/// what it asked for. `None` when reading a file.
pub(super) fn describe<'a, 'i: 'a, T>(
    ctx: &mut Ctx<'_>,
    path: String,
    what: &'static str,
    read: &impl Fn(&mut Ctx<'_>, &mut Table<'a, 'i>) -> T,
) -> Option<TableSchema> {
    if !ctx.is_describing() {
        return None;
    }
    let mut table = Table::empty(path, what);
    read(ctx, &mut table);
    Some(table.finish(ctx))
}

/// A table of free-form names (`inputs`, `fields`, `providers`), opened.
pub(super) struct Map<'a, 'i> {
    pub(super) entries: &'a [Entry<'i>],
    pub(super) path: String,
}

impl<'a, 'i> Map<'a, 'i> {
    fn open(ctx: &mut Ctx<'_>, node: &'a Node<'i>, path: String) -> Option<Self> {
        let table = Table::open(ctx, node, path, "")?;
        Some(Map {
            entries: table.entries,
            path: table.path,
        })
    }

    pub(super) fn child_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The entries whose names are identifiers (see [`is_identifier`]); each
    /// other one is reported as "not a valid `noun`", with `help`.
    pub(super) fn named_entries(
        &self,
        ctx: &mut Ctx<'_>,
        noun: &str,
        help: &str,
    ) -> Vec<(&'a str, &'a Entry<'i>)> {
        let mut out = Vec::new();
        for entry in self.entries {
            let name: &str = &entry.key;
            if is_identifier(name) {
                out.push((name, entry));
            } else {
                ctx.error(
                    entry.key_at,
                    &self.child_path(name),
                    format!("`{name}` is not a valid {noun}"),
                    Some(help.to_owned()),
                );
            }
        }
        out
    }
}

/// A string value and its span.
pub(super) type Str<'a> = (&'a str, Range<usize>);

/// Letters, digits, `_` and `-`, at least one: what ids, input names and
/// bare path segments may be.
pub(super) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The regex form of [`is_identifier`], for the schema.
pub(super) const IDENTIFIER_PATTERN: &str = "^[A-Za-z0-9_-]+$";

pub(super) fn join(path: &str, key: &str) -> String {
    let key = if is_identifier(key) {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}
