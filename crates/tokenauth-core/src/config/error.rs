//! Errors found while loading a description: each names the file, line,
//! column and key path, says what is wrong and how to fix it.

use std::fmt;
use std::path::PathBuf;

/// One problem in a description file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Diagnostic {
    /// The file name as given to the loader (empty for a description
    /// deserialized with serde).
    pub file: String,
    /// 1-based line; 0 for input without positions (a description from
    /// serde or built in code), where it is not printed.
    #[serde(skip_serializing_if = "is_zero")]
    pub line: usize,
    /// 1-based column, in characters; 0 with `line`.
    #[serde(skip_serializing_if = "is_zero")]
    pub column: usize,
    /// The key path, e.g. `providers.reobtimaal.login.fields.Password`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is more to say than the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Input without positions gets none made up.
        match (self.line, self.file.is_empty()) {
            (0, true) => {}
            (0, false) => write!(f, "{}: ", self.file)?,
            _ => write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?,
        }
        if !self.path.is_empty() {
            write!(f, "`{}`: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// The problems found in one description file, in file order: the first
/// 200 with their positions, and how many more there were.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigErrors {
    /// The problems, sorted by position: at most the first 200 of the file.
    pub diagnostics: Vec<Diagnostic>,
    /// How many further problems were found but not listed (0 when
    /// `diagnostics` holds them all). A file with thousands of mistakes is
    /// usually one mistake repeated: fix the listed ones and check again.
    pub omitted: usize,
}

impl ConfigErrors {
    /// The number of problems found: listed plus omitted.
    pub fn total(&self) -> usize {
        self.diagnostics.len() + self.omitted
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.total();
        let file = self
            .diagnostics
            .first()
            .map(|d| d.file.as_str())
            .filter(|f| !f.is_empty())
            .unwrap_or("the description");
        writeln!(
            f,
            "{file} is not a valid provider description ({n} error{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        if self.omitted > 0 {
            writeln!(
                f,
                "... and {} more error{} not shown (only the first {} are listed): fix these and check again",
                self.omitted,
                if self.omitted == 1 { "" } else { "s" },
                self.diagnostics.len()
            )?;
        }
        Ok(())
    }
}

/// Why a description could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read provider description {}: {source} (check the path; Providers::from_env and the tokenauth CLI read the file named by $TOKENAUTH_CONFIG, else ./providers.toml)", path.display())]
    Io {
        /// The path that was tried.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not valid; all problems are listed.
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

impl LoadError {
    /// The diagnostics, when the file was read but is invalid (at most the
    /// first 200; see [`LoadError::omitted`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadError::Invalid(e) => &e.diagnostics,
            LoadError::Io { .. } => &[],
        }
    }

    /// How many problems were found but not listed in
    /// [`diagnostics`](LoadError::diagnostics).
    pub fn omitted(&self) -> usize {
        match self {
            LoadError::Invalid(e) => e.omitted,
            LoadError::Io { .. } => 0,
        }
    }
}
