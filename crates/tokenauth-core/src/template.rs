//! Logic-free `{{ ... }}` templates, parsed once when the description is loaded.
//!
//! A template is literal text with placeholders. There are exactly four kinds
//! of placeholder, and nothing else (no filters, no conditionals, no escapes):
//!
//! | placeholder             | replaced by                                        |
//! |-------------------------|----------------------------------------------------|
//! | `{{ inputs.NAME }}`     | the connection's value of the declared input NAME  |
//! | `{{ token.access }}`    | the current access token (inject templates only)   |
//! | `{{ token.refresh }}`   | the current refresh token (refresh fields only)    |
//! | `{{ assertion }}`       | a freshly signed JWT (token requests of a provider |
//! |                         | with a `login.assertion` table only)               |
//!
//! Whitespace inside the braces is optional. Literal text is kept byte for byte,
//! so `bearer {{ token.access }}` renders with a lower-case `bearer`.
//!
//! ```
//! use tokenauth_core::{Template, Var};
//!
//! let t = Template::parse("bearer {{ token.access }}").unwrap();
//! let rendered = t.render(|var| match var {
//!     Var::TokenAccess => Some("abc"),
//!     _ => None,
//! });
//! assert_eq!(rendered.unwrap(), "bearer abc");
//! ```

use std::fmt;

/// A value a placeholder refers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    /// `{{ inputs.NAME }}`: an input of the connection.
    Input(String),
    /// `{{ token.access }}`: the access token.
    TokenAccess,
    /// `{{ token.refresh }}`: the refresh token.
    TokenRefresh,
    /// `{{ assertion }}`: a JWT signed for this token request (RFC 7523),
    /// from the provider's `login.assertion` table.
    Assertion,
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Input(name) => write!(f, "inputs.{name}"),
            Var::TokenAccess => f.write_str("token.access"),
            Var::TokenRefresh => f.write_str("token.refresh"),
            Var::Assertion => f.write_str("assertion"),
        }
    }
}

/// A piece of a parsed template.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Literal(String),
    Var(Var),
}

/// A parsed template. Cheap to render: no parsing happens at request time.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Why a template could not be parsed. `offset` is the byte offset inside the
/// template string where the problem starts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Byte offset of the problem inside the template text.
    pub offset: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Template {
    /// Parses `source`. Fails on an unclosed `{{`, a stray `}}`, an empty
    /// placeholder or a name outside the `inputs.*` / `token.*` namespaces.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut offset = 0;
        while !rest.is_empty() {
            let open = rest.find("{{");
            let close = rest.find("}}");
            match (open, close) {
                (_, Some(c)) if open.is_none_or(|o| c < o) => {
                    return Err(TemplateError {
                        offset: offset + c,
                        message: "`}}` without a matching `{{`: placeholders look like `{{ inputs.name }}`".into(),
                    });
                }
                (None, _) => {
                    parts.push(Part::Literal(rest.to_owned()));
                    break;
                }
                (Some(o), _) => {
                    if o > 0 {
                        parts.push(Part::Literal(rest[..o].to_owned()));
                    }
                    let after = &rest[o + 2..];
                    let Some(end) = after.find("}}") else {
                        return Err(TemplateError {
                            offset: offset + o,
                            message: "`{{` is never closed: add `}}` after the name, as in `{{ inputs.name }}`".into(),
                        });
                    };
                    let inner = &after[..end];
                    let var = parse_var(inner.trim()).map_err(|message| TemplateError {
                        offset: offset + o,
                        message,
                    })?;
                    parts.push(Part::Var(var));
                    let consumed = o + 2 + end + 2;
                    offset += consumed;
                    rest = &rest[consumed..];
                }
            }
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// A template that is only literal text (no placeholders, whatever it
    /// holds).
    pub(crate) fn literal(text: &str) -> Self {
        Template {
            source: text.to_owned(),
            parts: vec![Part::Literal(text.to_owned())],
        }
    }

    /// The template text exactly as written in the file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The placeholders, in order of appearance.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Literal(_) => None,
        })
    }

    /// The literal pieces and placeholders, in order.
    pub(crate) fn parts(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter()
    }

    /// True when the template has no placeholder at all.
    pub fn is_literal(&self) -> bool {
        self.vars().next().is_none()
    }

    /// Renders the template, asking `lookup` for each placeholder's value.
    /// Returns the first placeholder `lookup` had no value for as the error.
    pub fn render<'a, F>(&self, mut lookup: F) -> Result<String, Var>
    where
        F: FnMut(&Var) -> Option<&'a str>,
    {
        let mut out = String::with_capacity(self.source.len() + 32);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(var) => out.push_str(lookup(var).ok_or_else(|| var.clone())?),
            }
        }
        Ok(out)
    }
}

fn parse_var(name: &str) -> Result<Var, String> {
    if name.is_empty() {
        return Err("empty placeholder `{{ }}`: name an input (`{{ inputs.name }}`) or a token (`{{ token.access }}`)".into());
    }
    match name {
        "token.access" => return Ok(Var::TokenAccess),
        "token.refresh" => return Ok(Var::TokenRefresh),
        "assertion" => return Ok(Var::Assertion),
        _ => {}
    }
    if let Some(input) = name.strip_prefix("inputs.") {
        if !input.is_empty()
            && input
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Ok(Var::Input(input.to_owned()));
        }
        return Err(format!(
            "`{name}` is not a valid input name: use letters, digits, `_` or `-`, as in `{{{{ inputs.client_id }}}}`"
        ));
    }
    if name.starts_with("input.") || name.starts_with("env.") {
        let input = name.split_once('.').map_or("", |(_, n)| n);
        return Err(format!(
            "unknown placeholder `{name}`: did you mean `inputs.{input}`?"
        ));
    }
    if name.starts_with("token") {
        let refresh_closer =
            strsim::levenshtein(name, "token.refresh") < strsim::levenshtein(name, "token.access");
        let guess = if refresh_closer {
            "token.refresh"
        } else {
            "token.access"
        };
        return Err(format!(
            "unknown placeholder `{name}`: did you mean `{guess}`? (the token placeholders are `token.access` and `token.refresh`)"
        ));
    }
    Err(format!(
        "unknown placeholder `{name}`: placeholders are `inputs.NAME`, `token.access`, `token.refresh` and `assertion`"
    ))
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The source holds only literals and placeholder names, never a
        // rendered secret, so it is safe to show.
        write!(f, "Template({:?})", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_all(t: &Template) -> String {
        t.render(|v| match v {
            Var::Input(n) if n == "user" => Some("alice"),
            Var::TokenAccess => Some("AT"),
            Var::TokenRefresh => Some("RT"),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn renders_literals_and_placeholders_in_order() {
        let t =
            Template::parse("a {{inputs.user}} b {{ token.access }}{{ token.refresh }}!").unwrap();
        assert_eq!(render_all(&t), "a alice b ATRT!");
        assert_eq!(
            t.vars().cloned().collect::<Vec<_>>(),
            vec![
                Var::Input("user".into()),
                Var::TokenAccess,
                Var::TokenRefresh
            ]
        );
    }

    #[test]
    fn literal_only_and_empty() {
        assert!(Template::parse("password").unwrap().is_literal());
        assert_eq!(render_all(&Template::parse("").unwrap()), "");
        assert_eq!(
            render_all(&Template::parse("grant-type").unwrap()),
            "grant-type"
        );
    }

    #[test]
    fn missing_value_names_the_placeholder() {
        let t = Template::parse("{{ inputs.other }}").unwrap();
        assert_eq!(t.render(|_| None), Err(Var::Input("other".into())));
    }

    #[test]
    fn rejects_malformed_templates_with_offsets() {
        let cases = [
            ("x {{ inputs.a", 2, "never closed"),
            ("x }} y", 2, "without a matching"),
            ("{{ }}", 0, "empty placeholder"),
            ("ab{{ input.user }}", 2, "did you mean `inputs.user`"),
            ("{{ token.id }}", 0, "token.access"),
            ("{{ inputs.a b }}", 0, "not a valid input name"),
            ("{{ secrets.x }}", 0, "unknown placeholder"),
        ];
        for (src, offset, needle) in cases {
            let err = Template::parse(src).unwrap_err();
            assert_eq!(err.offset, offset, "{src}");
            assert!(err.message.contains(needle), "{src}: {}", err.message);
        }
    }
}
