//! Collecting problems: each is kept at its byte offset while the tree is
//! walked; line and column are worked out once, for the reported ones, in
//! [`Ctx::finish`] (so that reporting stays linear in the size of the file
//! even with thousands of problems on one long line).

use std::rc::Rc;

use crate::config::error::{ConfigErrors, Diagnostic};

/// At most this many problems are listed; the rest are counted
/// ([`ConfigErrors::omitted`]).
pub(crate) const MAX_REPORTED: usize = 200;

/// A problem found while walking the tree, still at its offset.
#[derive(PartialEq, Eq)]
struct Pending {
    at: usize,
    path: String,
    message: String,
    help: Help,
}

/// A problem's help line. A did-you-mean is only worked out for the problems
/// that are reported, not for every one of thousands of unknown keys.
#[derive(PartialEq, Eq)]
pub(super) enum Help {
    Text(Option<String>),
    /// `name` is not one of `expected`, the keys `what` accepts.
    Suggest {
        name: String,
        expected: Rc<[&'static str]>,
        what: &'static str,
    },
}

impl Help {
    fn render(self) -> Option<String> {
        match self {
            Help::Text(text) => text,
            Help::Suggest {
                name,
                expected,
                what,
            } => Some(match did_you_mean(&name, &expected) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("{what} accepts: {}", expected.join(", ")),
            }),
        }
    }
}

/// The state of one load: where the input came from and what is wrong so far.
pub(super) struct Ctx<'s> {
    file: &'s str,
    /// The TOML text, for positions; `None` for input without positions
    /// (serde formats), whose offsets are ranks in document order.
    src: Option<&'s str>,
    /// The byte offset where each line starts, computed once.
    line_starts: Vec<usize>,
    pending: Vec<Pending>,
    /// Describing the language rather than reading a file: the readers run
    /// over empty tables to record their keys, and problems are dropped.
    describing: bool,
}

impl<'s> Ctx<'s> {
    pub(super) fn for_text(file: &'s str, src: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Ctx {
            file,
            src: Some(src),
            line_starts,
            pending: Vec::new(),
            describing: false,
        }
    }

    /// For input without positions: serde formats, values built in code.
    pub(super) fn without_positions(file: &'s str) -> Self {
        Ctx {
            file,
            src: None,
            line_starts: Vec::new(),
            pending: Vec::new(),
            describing: false,
        }
    }

    /// For running the readers to describe the language (see `schema`).
    pub(super) fn describing() -> Ctx<'static> {
        Ctx {
            describing: true,
            ..Ctx::without_positions("")
        }
    }

    pub(super) fn is_describing(&self) -> bool {
        self.describing
    }

    /// The 1-based line of a byte offset (a binary search of the line index).
    pub(super) fn line(&self, offset: usize) -> usize {
        let len = self.src.map_or(0, str::len);
        self.line_starts.partition_point(|&s| s <= offset.min(len))
    }

    pub(super) fn error(
        &mut self,
        at: usize,
        path: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        self.problem(at, path, message.into(), Help::Text(help));
    }

    pub(super) fn problem(&mut self, at: usize, path: &str, message: String, help: Help) {
        if self.describing {
            return;
        }
        self.pending.push(Pending {
            at: self.src.map_or(at, |src| at.min(src.len())),
            path: path.to_owned(),
            message,
            help,
        });
    }

    /// The number of problems found so far.
    pub(super) fn errors(&self) -> usize {
        self.pending.len()
    }

    /// The source text of a span, for deciding where inside a string an
    /// error is; empty without a source.
    pub(super) fn raw(&self, span: &std::ops::Range<usize>) -> &str {
        self.src.and_then(|s| s.get(span.clone())).unwrap_or("")
    }

    /// Sorts the problems into file order, drops repeats, keeps the first
    /// [`MAX_REPORTED`] and gives those their line and column (0 and 0 for
    /// input without positions).
    pub(super) fn finish(self) -> ConfigErrors {
        let Ctx {
            file,
            src,
            line_starts,
            mut pending,
            ..
        } = self;
        // Stable: problems at one position keep the order they were found in.
        pending.sort_by_key(|p| p.at);
        pending.dedup();
        let omitted = pending.len().saturating_sub(MAX_REPORTED);
        pending.truncate(MAX_REPORTED);
        let mut cursor = src.map(|src| Cursor::new(src, &line_starts));
        let diagnostics = pending
            .into_iter()
            .map(|p| {
                let (line, column) = cursor.as_mut().map_or((0, 0), |c| c.position(p.at));
                Diagnostic {
                    file: file.to_owned(),
                    line,
                    column,
                    path: p.path,
                    message: p.message,
                    help: p.help.render(),
                }
            })
            .collect();
        ConfigErrors {
            diagnostics,
            omitted,
        }
    }
}

/// Turns byte offsets into line and column, for offsets given in increasing
/// order: each character of the file is counted at most once over all calls.
struct Cursor<'c> {
    src: &'c str,
    line_starts: &'c [usize],
    /// The current 1-based line, the offset reached and its 1-based column.
    line: usize,
    at: usize,
    column: usize,
}

impl<'c> Cursor<'c> {
    fn new(src: &'c str, line_starts: &'c [usize]) -> Self {
        Cursor {
            src,
            line_starts,
            line: 1,
            at: 0,
            column: 1,
        }
    }

    /// Line and column (in characters) of `offset`; `offset` must not be
    /// below the previous call's.
    fn position(&mut self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        if line != self.line || offset < self.at {
            self.line = line;
            self.at = self.line_starts[line - 1];
            self.column = 1;
        }
        self.column += self.src[self.at..offset].chars().count();
        self.at = offset;
        (self.line, self.column)
    }
}

/// The candidate closest to `name` (ignoring case and `-` vs `_`), if it is
/// close enough to be a likely typo.
pub(super) fn did_you_mean<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let wanted = norm(name);
    candidates
        .iter()
        .map(|c| (c, strsim::damerau_levenshtein(&wanted, &norm(c))))
        .filter(|(c, d)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(_, d)| *d)
        .map(|(c, _)| *c)
}
