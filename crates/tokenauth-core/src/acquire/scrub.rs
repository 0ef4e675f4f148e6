//! Removing secrets from reply bodies before they go into an error message.
//!
//! Two kinds of removal:
//! - **Known secrets** (the connection's secret inputs, the refresh token
//!   sent, the base64 of the request's Basic credentials) are removed in any
//!   encoding an endpoint may echo them in: the text is searched as it is and
//!   through its decoded [`views`] (percent escapes with `+` as a space
//!   or not, HTML character references, JSON/JavaScript backslash escapes,
//!   and each of these decoded once more), and every range of the original
//!   text a secret was found in is redacted whole.
//! - **Token-looking values** (the values of secret-looking JSON keys and
//!   form names) are redacted by structure, since the engine cannot know a
//!   token it has not read yet.

mod views;

use std::ops::Range;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use views::{DECODERS, View};

/// How many characters of a body an error message keeps.
pub(crate) const EXCERPT_CHARS: usize = 200;

const REDACTED: &str = "[redacted]";

/// Removes known secret values and token-looking values from text.
pub(crate) struct Scrubber<'a> {
    secrets: Vec<&'a str>,
    /// Secrets computed from others (the base64 of Basic credentials).
    derived: Vec<SecretString>,
}

impl<'a> Scrubber<'a> {
    pub(crate) fn new(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let secrets = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        Scrubber {
            secrets,
            derived: Vec::new(),
        }
    }

    /// Also removes the HTTP Basic credentials `user:password` as sent: their
    /// base64, in the standard and the URL-safe alphabet, with and without
    /// padding.
    pub(crate) fn with_basic(mut self, user: &str, password: &str) -> Self {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let raw = SecretString::from(format!("{user}:{password}"));
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            let encoded = engine.encode(raw.expose_secret());
            if !self.derived.iter().any(|d| d.expose_secret() == encoded) {
                self.derived.push(SecretString::from(encoded));
            }
        }
        self
    }

    fn all(&self) -> impl Iterator<Item = &[u8]> {
        self.secrets
            .iter()
            .map(|s| s.as_bytes())
            .chain(self.derived.iter().map(|d| d.expose_secret().as_bytes()))
    }

    /// A short, single-line excerpt of `body` with secrets removed.
    ///
    /// Only the start of the body is read: enough for the excerpt however
    /// the secrets in it are encoded (an encoding is at most 12 times longer
    /// than the secret), so that a hostile 1 MiB reply costs no more than a
    /// short one. A JSON body cut there is redacted as JSON cut short.
    pub(crate) fn excerpt(&self, body: &[u8]) -> String {
        const READ_AT_LEAST: usize = 4096;
        let longest = self.all().map(<[u8]>::len).max().unwrap_or(0);
        let read = READ_AT_LEAST.saturating_add(longest.saturating_mul(12));
        let body = &body[..body.len().min(read)];
        // Known secrets first, on the text as received: the structural
        // passes below may cut an encoded secret apart (at a `&`, a quote).
        let text = self.scrub(&String::from_utf8_lossy(body));
        let text = match serde_json::from_str::<Value>(&text) {
            Ok(mut json) => {
                redact_json(&mut json);
                // Each string once more, as the parser decoded it: a secret
                // encoded twice inside a JSON string is three deep.
                self.scrub_json(&mut json);
                json.to_string()
            }
            // Not JSON, but maybe JSON cut short (a reply truncated in the
            // middle of a token): redact quoted values of secret-looking keys.
            Err(_) => redact_pairs(&redact_broken_json(&text)),
        };
        let mut out = String::with_capacity(EXCERPT_CHARS + 4);
        for (i, c) in text.chars().enumerate() {
            if i == EXCERPT_CHARS {
                out.push('…');
                break;
            }
            out.push(if c.is_control() { ' ' } else { c });
        }
        // Again on the excerpt (cheap), in case re-encoding the JSON turned
        // something into a secret's form.
        self.scrub(out.trim())
    }

    /// Scrubs every string and key of a parsed JSON value.
    fn scrub_json(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = self.scrub(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_json(v)),
            Value::Object(map) => {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, mut v)| {
                        self.scrub_json(&mut v);
                        (self.scrub(&k), v)
                    })
                    .collect();
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Replaces every known secret in `text`, in whichever encoding it is
    /// there (raw, JSON- or backslash-escaped, percent-encoded in any way,
    /// HTML-escaped, and these combined two deep).
    pub(crate) fn scrub(&self, text: &str) -> String {
        let secrets: Vec<&[u8]> = self.all().collect();
        if secrets.is_empty() {
            return text.to_owned();
        }
        let bytes = text.as_bytes();
        let mut found: Vec<Range<usize>> = Vec::new();
        let mut search = |view: Option<&View>| {
            let hay = view.map_or(bytes, |v| &v.bytes[..]);
            for secret in &secrets {
                for at in occurrences(hay, secret) {
                    let r = at..at + secret.len();
                    found.push(view.map_or_else(|| r.clone(), |v| v.original(r.clone())));
                }
            }
        };
        search(None);
        for first in DECODERS {
            let Some(once) = first.decode(bytes, None) else {
                continue;
            };
            search(Some(&once));
            for second in DECODERS {
                if let Some(twice) = second.decode(bytes, Some(&once)) {
                    search(Some(&twice));
                }
            }
        }
        redact(text, found)
    }
}

/// Where `needle` (not empty) starts in `hay`, overlapping occurrences
/// included.
fn occurrences<'h>(hay: &'h [u8], needle: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
    hay.windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// `text` with each of `ranges` (widened to character boundaries, merged
/// where they overlap or touch) replaced by [`REDACTED`].
fn redact(text: &str, mut ranges: Vec<Range<usize>>) -> String {
    if ranges.is_empty() {
        return text.to_owned();
    }
    for r in &mut ranges {
        while !text.is_char_boundary(r.start) {
            r.start -= 1;
        }
        while !text.is_char_boundary(r.end) {
            r.end += 1;
        }
    }
    ranges.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < ranges.len() {
        let start = ranges[i].start;
        let mut end = ranges[i].end;
        i += 1;
        while i < ranges.len() && ranges[i].start <= end {
            end = end.max(ranges[i].end);
            i += 1;
        }
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
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
    fn scrubs_every_percent_encoding() {
        let secret = "pa ss*wörd+&=/";
        let s = Scrubber::new([secret]);
        for encoded in [
            // Form encoding (`+` for a space), the old pass.
            "pa+ss*w%C3%B6rd%2B%26%3D%2F",
            // `%20` for a space, `*` needlessly encoded, `/` left alone.
            "pa%20ss%2Aw%C3%B6rd%2B%26%3D/",
            // Lower-case hex.
            "pa%20ss%2aw%c3%b6rd%2b%26%3d%2f",
            // Every byte encoded.
            "%70%61%20%73%73%2A%77%C3%B6%72%64%2B%26%3D%2F",
            // `+` left as it is (a path), spaces as `%20`.
            "pa%20ss*w%C3%B6rd+%26%3D%2F",
            // Encoded twice.
            "pa%2520ss%252Aw%25C3%25B6rd%252B%2526%253D%252F",
        ] {
            let out = s.scrub(&format!("error: bad client_secret {encoded}; try again"));
            assert_eq!(
                out, "error: bad client_secret [redacted]; try again",
                "{encoded}"
            );
        }
    }

    #[test]
    fn scrubs_html_and_backslash_escapes() {
        let secret = r#"a&b<c>'d"e\f/"#;
        let s = Scrubber::new([secret]);
        for encoded in [
            r#"a&amp;b&lt;c&gt;&#39;d&quot;e\f/"#,
            r#"a&amp;b&lt;c&gt;&#x27;d&#34;e\f/"#,
            r#"a&AMP;b&#60;c&#x3E;&apos;d&QUOT;e&bsol;f&sol;"#,
            r#"a&b<c>'d\"e\\f\/"#,
            r#"a\u0026b\u003cc\u003e\u0027d\u0022e\u005cf\u002f"#,
            r#"a\x26b<c>\'d\"e\\f/"#,
            // HTML-escaped, then put in a JSON string.
            r#"a&amp;b&lt;c&gt;&#39;d&quot;e\\f\/"#,
            // Form-encoded, and HTML-escaped after that.
            r#"a%26b%3Cc%3E%27d%22e%5Cf%2F"#,
            r#"a%26amp%3Bb%26lt%3Bc%3E%27d%22e%5Cf%2F"#,
        ] {
            let out = s.scrub(&format!("<p>bad secret: {encoded}</p>"));
            assert_eq!(out, "<p>bad secret: [redacted]</p>", "{encoded}");
        }
    }

    #[test]
    fn scrubs_the_base64_of_basic_credentials() {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        // `?>>` makes the standard and URL-safe alphabets differ.
        let (user, pass) = ("client-id", "s?>>cret~");
        let s = Scrubber::new([pass]).with_basic(user, pass);
        let raw = format!("{user}:{pass}");
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            let b64 = engine.encode(&raw);
            let out = s.scrub(&format!("got Authorization: Basic {b64} from you"));
            assert_eq!(out, "got Authorization: Basic [redacted] from you", "{b64}");
            let encoded: String = url::form_urlencoded::byte_serialize(b64.as_bytes()).collect();
            let out = s.excerpt(format!(r#"{{"echo":"{encoded}"}}"#).as_bytes());
            assert_eq!(out, r#"{"echo":"[redacted]"}"#, "{encoded}");
        }
    }

    #[test]
    fn redactions_merge_and_keep_character_boundaries() {
        let s = Scrubber::new(["abc", "bcd", "é"]);
        assert_eq!(s.scrub("xabcdy"), "x[redacted]y");
        assert_eq!(s.scrub("abcabc"), "[redacted]");
        assert_eq!(
            s.scrub("%C3%A9 &#233; \u{e9}"),
            "[redacted] [redacted] [redacted]"
        );
        assert_eq!(Scrubber::new([]).scrub("%41&amp;"), "%41&amp;");
        // Ranges that end inside a character are widened to it, and ranges
        // inside a widened one add nothing.
        assert_eq!(redact("aéb", vec![1..2, 2..3]), "a[redacted]b");
        assert_eq!(redact("aébc", vec![3..4, 1..2]), "a[redacted]c");
    }

    #[test]
    fn only_the_start_of_a_huge_body_is_read() {
        let secret = "s3cr3t-value";
        let s = Scrubber::new([secret]);
        // The secret, percent-encoded, right at the start; then 1 MiB of
        // escapes that would cost seconds to decode.
        let encoded: String = secret.bytes().map(|b| format!("%{b:02X}")).collect();
        let body = format!("{encoded} {}", "%41&amp;\\u0041".repeat(80_000));
        let out = s.excerpt(body.as_bytes());
        assert!(out.starts_with("[redacted]"), "{out}");
        assert!(!out.contains(secret));
        // A JSON body longer than what is read is redacted as JSON cut short.
        let json = format!(r#"{{"access_token":"AT-{}","x":1}}"#, "a".repeat(10_000));
        let out = s.excerpt(json.as_bytes());
        assert_eq!(out, r#"{"access_token":"[redacted]"#);
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

    /// Property: a known secret embedded in arbitrary text, in any of the
    /// encodings an endpoint may echo it in, never survives `scrub` or
    /// `excerpt`. `PROPTEST_CASES` raises the number of cases.
    mod properties {
        use super::super::*;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        use proptest::prelude::*;

        /// Secrets of 4 to 24 characters, heavy in the ones that need
        /// encoding: spaces, `*`, `&`, `<`, quotes, `%`, `+`, `\`, tabs and
        /// non-ASCII.
        fn secret() -> impl Strategy<Value = String> {
            let special = prop::sample::select(vec![
                " ", "*", "&", "<", ">", "\"", "'", "%", "+", "/", "\\", "=", ";", "#", "?", "\t",
                "é", "€", "😀", "~", ":",
            ])
            .prop_map(str::to_owned);
            let char = prop_oneof![
                3 => "[A-Za-z0-9]",
                2 => special,
                1 => "\\PC",
            ];
            prop::collection::vec(char, 4..24).prop_map(|v| v.concat())
        }

        /// Arbitrary text around the echo, and a delimiter between: text
        /// cannot glue onto the echo's first escape (`%4` before an echo
        /// that starts with `1`), as no real echo does either.
        fn around() -> impl Strategy<Value = String> {
            (
                prop_oneof!["\\PC{0,30}", ".{0,30}", "[%&\\\\a-f0-9;#x+ ]{0,30}"],
                prop::sample::select(vec![" ", "=", ": ", "\"", "(", ",", "\n", "> "]),
            )
                .prop_map(|(text, delim)| format!("{text}{delim}"))
        }

        #[derive(Clone, Copy, Debug)]
        enum Encoding {
            Raw,
            Json,
            Form,
            Percent20,
            LowerHex,
            AllBytes,
            Html,
            HtmlNumeric,
            HtmlThenJson,
            FormThenJson,
            Basic,
        }

        impl Encoding {
            const ALL: [Encoding; 11] = [
                Encoding::Raw,
                Encoding::Json,
                Encoding::Form,
                Encoding::Percent20,
                Encoding::LowerHex,
                Encoding::AllBytes,
                Encoding::Html,
                Encoding::HtmlNumeric,
                Encoding::HtmlThenJson,
                Encoding::FormThenJson,
                Encoding::Basic,
            ];
        }

        fn encoding() -> impl Strategy<Value = Encoding> {
            prop::sample::select(Encoding::ALL.to_vec())
        }

        fn percent(s: &str, keep: impl Fn(u8) -> bool, upper: bool) -> String {
            s.bytes()
                .map(|b| match b {
                    _ if keep(b) => char::from(b).to_string(),
                    _ if upper => format!("%{b:02X}"),
                    _ => format!("%{b:02x}"),
                })
                .collect()
        }

        fn json(s: &str) -> String {
            let quoted = serde_json::to_string(s).unwrap();
            quoted[1..quoted.len() - 1].to_owned()
        }

        /// HTML-escapes `& < > " '` (in one of their spellings, picked by
        /// `rng`), or every character as a numeric reference.
        fn html(s: &str, rng: &mut fastrand::Rng, all: bool) -> String {
            s.chars()
                .map(|c| {
                    let numeric = |rng: &mut fastrand::Rng| {
                        if rng.bool() {
                            format!("&#{};", c as u32)
                        } else {
                            format!("&#x{:x};", c as u32)
                        }
                    };
                    let named = match c {
                        '&' => "&amp;",
                        '<' => "&lt;",
                        '>' => "&gt;",
                        '"' => "&quot;",
                        '\'' => "&apos;",
                        _ if all => return numeric(rng),
                        _ => return c.to_string(),
                    };
                    if all || rng.bool() {
                        numeric(rng)
                    } else {
                        named.to_owned()
                    }
                })
                .collect()
        }

        /// `secret` encoded (as the password of `user` for Basic).
        fn encode(secret: &str, user: &str, how: Encoding, seed: u64) -> String {
            let mut rng = fastrand::Rng::with_seed(seed);
            let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            let form =
                || url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>();
            match how {
                Encoding::Raw => secret.to_owned(),
                Encoding::Json => json(secret),
                Encoding::Form => form(),
                Encoding::Percent20 => percent(secret, unreserved, true),
                Encoding::LowerHex => percent(secret, unreserved, false),
                Encoding::AllBytes => percent(secret, |_| false, rng.bool()),
                Encoding::Html => html(secret, &mut rng, false),
                Encoding::HtmlNumeric => html(secret, &mut rng, true),
                Encoding::HtmlThenJson => json(&html(secret, &mut rng, false)),
                Encoding::FormThenJson => json(&form()).replace('/', "\\/"),
                Encoding::Basic => {
                    let raw = format!("{user}:{secret}");
                    match rng.usize(..4) {
                        0 => STANDARD.encode(raw),
                        1 => STANDARD_NO_PAD.encode(raw),
                        2 => URL_SAFE.encode(raw),
                        _ => URL_SAFE_NO_PAD.encode(raw),
                    }
                }
            }
        }

        /// `out` without the redaction markers holds neither form.
        fn survives(out: &str, secret: &str, encoded: &str) -> bool {
            let out = out.replace(REDACTED, "\u{0}");
            out.contains(secret) || out.contains(encoded)
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2048),
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn an_echoed_secret_never_survives(
                secret in secret(),
                user in "[a-z0-9_.-]{1,12}",
                how in encoding(),
                seed in any::<u64>(),
                before in around(),
                after in around(),
            ) {
                let encoded = encode(&secret, &user, how, seed);
                // The engine adds the Basic credentials of every request that
                // had them: here, always.
                let scrubber = Scrubber::new([secret.as_str()]).with_basic(&user, &secret);
                let text = format!("{before}{encoded}{after}");
                let out = scrubber.scrub(&text);
                prop_assert!(!survives(&out, &secret, &encoded), "{how:?} {encoded:?}: scrub gave {out:?}");
                let out = scrubber.excerpt(text.as_bytes());
                prop_assert!(!survives(&out, &secret, &encoded), "{how:?} {encoded:?}: excerpt gave {out:?}");
                // The same inside a JSON error reply.
                let body = serde_json::json!({ "error": "invalid_client", "error_description": text }).to_string();
                let out = scrubber.excerpt(body.as_bytes());
                prop_assert!(!survives(&out, &secret, &encoded), "{how:?} {encoded:?}: excerpt gave {out:?}");
            }
        }
    }
}
