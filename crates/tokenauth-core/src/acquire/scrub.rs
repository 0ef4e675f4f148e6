//! Removing secrets from reply bodies before they go into an error message.

use serde_json::Value;

/// How many characters of a body an error message keeps.
pub(crate) const EXCERPT_CHARS: usize = 200;

const REDACTED: &str = "[redacted]";

/// Removes known secret values and token-looking values from text.
pub(crate) struct Scrubber<'a> {
    secrets: Vec<&'a str>,
}

impl<'a> Scrubber<'a> {
    pub(crate) fn new(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut secrets: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Scrubber { secrets }
    }

    /// A short, single-line excerpt of `body` with secrets removed.
    pub(crate) fn excerpt(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let text = match serde_json::from_str::<Value>(&text) {
            Ok(mut json) => {
                redact_json(&mut json);
                json.to_string()
            }
            // Not JSON, but maybe JSON cut short (a reply truncated in the
            // middle of a token): redact quoted values of secret-looking keys.
            Err(_) => redact_pairs(&redact_broken_json(&text)),
        };
        let text = self.scrub(&text);
        let mut out = String::with_capacity(EXCERPT_CHARS + 4);
        for (i, c) in text.chars().enumerate() {
            if i == EXCERPT_CHARS {
                out.push('…');
                break;
            }
            out.push(if c.is_control() { ' ' } else { c });
        }
        out.trim().to_owned()
    }

    /// Replaces every secret (raw, JSON-escaped and form-encoded) in `text`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            let json = serde_json::to_string(secret).unwrap_or_default();
            let json = json.trim_matches('"');
            let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            for variant in [*secret, json, form.as_str()] {
                if !variant.is_empty() && text.contains(variant) {
                    text = text.replace(variant, REDACTED);
                }
            }
        }
        text
    }
}

/// True for JSON keys / form names whose values are credentials.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k == "token_type" {
        return false;
    }
    k == "code"
        || [
            "token",
            "secret",
            "password",
            "passwd",
            "assertion",
            "api_key",
            "apikey",
            "credential",
        ]
        .iter()
        .any(|needle| k.contains(needle))
}

fn redact_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_key(k) && !v.is_null() {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// Redacts the quoted value after every `"secret-looking key":` in text
/// that is JSON-like but does not parse (cut short, or damaged), up to its
/// closing quote or, when the text ends inside it, to the end.
fn redact_broken_json(text: &str) -> String {
    /// The end (index of the closing quote, or `s.len()`) of a JSON string
    /// whose content starts at `from`.
    fn string_end(s: &[u8], from: usize) -> usize {
        let mut i = from;
        while i < s.len() {
            match s[i] {
                b'\\' => i += 2,
                b'"' => return i,
                _ => i += 1,
            }
        }
        s.len()
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let key_end = string_end(bytes, i + 1);
        if key_end >= bytes.len() {
            break;
        }
        let key = &text[i + 1..key_end];
        let mut j = key_end + 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if !(j < bytes.len() && bytes[j] == b':') {
            i = key_end + 1;
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b'"' && is_secret_key(key) {
            let value_end = string_end(bytes, j + 1);
            out.push_str(&text[copied..=j]);
            out.push_str(REDACTED);
            copied = value_end.min(bytes.len());
            i = value_end + 1;
        } else {
            i = key_end + 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Redacts `name=value` pairs with secret-looking names (form bodies, query
/// strings, `key: value` text is left to the secret-value pass).
fn redact_pairs(text: &str) -> String {
    if !text.contains('=') {
        return text.to_owned();
    }
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_key(name.trim()) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_json_tokens_and_secret_values() {
        let s = Scrubber::new(["hunter2", "p/w\"x"]);
        let body = br#"{"error":"invalid_grant","access_token":"AT","refresh_token":"RT","detail":"bad password hunter2 p\/w\"x","token_type":"bearer"}"#;
        let out = s.excerpt(body);
        assert!(
            !out.contains("AT\"") && !out.contains("RT") && !out.contains("hunter2"),
            "{out}"
        );
        assert!(!out.contains("p/w"), "{out}");
        assert!(
            out.contains("invalid_grant") && out.contains("bearer"),
            "{out}"
        );
    }

    #[test]
    fn scrubs_form_pairs_and_text() {
        let s = Scrubber::new(["s3cr3t"]);
        assert_eq!(
            s.excerpt(b"access_token=abc&x=1&note=s3cr3t"),
            "access_token=[redacted]&x=1&note=[redacted]"
        );
        assert_eq!(
            s.excerpt(b"<html>\nyour s3cr3t\n</html>"),
            "<html> your [redacted] </html>"
        );
    }

    #[test]
    fn scrubs_json_cut_short() {
        let s = Scrubber::new([]);
        let cut =
            br#"{"access_token":"AT-0123456789","token_type":"bearer","refresh_token":"RT-01"#;
        let out = s.excerpt(cut);
        assert_eq!(
            out,
            r#"{"access_token":"[redacted]","token_type":"bearer","refresh_token":"[redacted]"#
        );
        let escaped = br#"{"password" : "a\"b\\", "x": "keep", "api_key":"#;
        let out = s.excerpt(escaped);
        assert_eq!(
            out,
            r#"{"password" : "[redacted]", "x": "keep", "api_key":"#
        );
        assert_eq!(s.excerpt(br#"{"access_tok"#), r#"{"access_tok"#);
    }

    #[test]
    fn truncates_after_scrubbing() {
        let secret = "x".repeat(150);
        let body = format!("{}{}", "a".repeat(100), secret);
        let s = Scrubber::new([secret.as_str()]);
        let out = s.excerpt(body.as_bytes());
        assert!(out.ends_with("[redacted]"), "{out}");
        let long = "b".repeat(500);
        assert_eq!(
            Scrubber::new([]).excerpt(long.as_bytes()).chars().count(),
            EXCERPT_CHARS + 1
        );
    }
}
