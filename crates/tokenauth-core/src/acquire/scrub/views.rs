//! Decoded views of a text, for finding secrets in whatever encoding an
//! endpoint echoed them.
//!
//! A [`View`] is the text with one kind of escape decoded (percent escapes,
//! HTML character references, backslash escapes), each decoded byte knowing
//! the range of the original text it came from. A secret found anywhere in a
//! view is therefore found in the original text as well, as the exact range
//! to redact: the whole escape sequences, never half of one. Views compose
//! (HTML-escaped text inside a JSON string, a percent-encoded value with its
//! `/` escaped by a JSON encoder), so the scrubber searches the text itself,
//! every decoding of it, and every decoding of those.
//!
//! The decoders accept more than any one encoder emits (upper- and lower-case
//! hex, needlessly encoded characters, named and numeric references with and
//! without the `x`), which is what makes the search independent of how the
//! endpoint chose to encode.

use std::ops::Range;

/// A decoding of an original text: `bytes[i]` came from `spans[i]`.
pub(super) struct View {
    pub(super) bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl View {
    /// The original range that `bytes[range]` came from.
    pub(super) fn original(&self, range: Range<usize>) -> Range<usize> {
        self.spans[range.start].0..self.spans[range.end - 1].1
    }
}

/// One kind of escape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decoder {
    /// `%HH` (either case), and `+` as a space (form encoding).
    PercentPlus,
    /// `%HH` (either case), `+` left alone (path and query encoding).
    Percent,
    /// HTML character references: `&amp;`, `&lt;`, `&#39;`, `&#x27;`, the
    /// named references of ASCII punctuation, `&nbsp;`.
    Html,
    /// Backslash escapes of JSON (`\"`, `\/`, `\u00e9`, surrogate pairs),
    /// JavaScript and Python (`\'`, `\xHH`).
    Backslash,
}

pub(super) const DECODERS: [Decoder; 4] = [
    Decoder::PercentPlus,
    Decoder::Percent,
    Decoder::Html,
    Decoder::Backslash,
];

impl Decoder {
    /// Whether decoding `bytes` can change anything.
    fn applies(self, bytes: &[u8]) -> bool {
        match self {
            Decoder::PercentPlus => bytes.iter().any(|b| matches!(b, b'%' | b'+')),
            Decoder::Percent => bytes.contains(&b'%'),
            Decoder::Html => bytes.contains(&b'&'),
            Decoder::Backslash => bytes.contains(&b'\\'),
        }
    }

    /// The escape at the start of `s`: the bytes it stands for and how many
    /// bytes of `s` it takes. `None` when `s` does not start with one.
    fn escape(self, s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        match self {
            Decoder::PercentPlus | Decoder::Percent => match s {
                [b'%', h, l, ..] => {
                    out.push((hex(*h)? << 4) | hex(*l)?);
                    Some(3)
                }
                [b'+', ..] if self == Decoder::PercentPlus => {
                    out.push(b' ');
                    Some(1)
                }
                _ => None,
            },
            Decoder::Html => html(s, out),
            Decoder::Backslash => backslash(s, out),
        }
    }

    /// Decodes `view` (the original text when `None`); `None` when there is
    /// nothing to decode.
    pub(super) fn decode(self, text: &[u8], view: Option<&View>) -> Option<View> {
        let input = view.map_or(text, |v| &v.bytes[..]);
        if !self.applies(input) {
            return None;
        }
        let span = |i: usize| view.map_or((i, i + 1), |v| v.spans[i]);
        let mut out = View {
            bytes: Vec::with_capacity(input.len()),
            spans: Vec::with_capacity(input.len()),
        };
        let mut decoded = Vec::with_capacity(4);
        let mut i = 0;
        let mut changed = false;
        while i < input.len() {
            decoded.clear();
            match self.escape(&input[i..], &mut decoded) {
                Some(n) => {
                    let from = (span(i).0, span(i + n - 1).1);
                    for b in &decoded {
                        out.bytes.push(*b);
                        out.spans.push(from);
                    }
                    changed = true;
                    i += n;
                }
                None => {
                    out.bytes.push(input[i]);
                    out.spans.push(span(i));
                    i += 1;
                }
            }
        }
        changed.then_some(out)
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `c` as UTF-8 into `out`.
fn push_char(c: char, out: &mut Vec<u8>) {
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// The number made of the leading digits (base `radix`, at most `max`
/// of them) of `s`, and how many there were.
fn number(s: &[u8], radix: u32, max: usize) -> Option<(u32, usize)> {
    let n = s
        .iter()
        .take(max)
        .take_while(|b| (**b as char).is_digit(radix))
        .count();
    if n == 0 {
        return None;
    }
    let digits = std::str::from_utf8(&s[..n]).ok()?;
    Some((u32::from_str_radix(digits, radix).ok()?, n))
}

/// The named references HTML defines for ASCII punctuation and white space
/// (what an escaper may emit for a character it chose to encode), and
/// `&nbsp;`.
const NAMED: &[(&str, char)] = &[
    ("amp", '&'),
    ("AMP", '&'),
    ("lt", '<'),
    ("LT", '<'),
    ("gt", '>'),
    ("GT", '>'),
    ("quot", '"'),
    ("QUOT", '"'),
    ("apos", '\''),
    ("nbsp", '\u{a0}'),
    ("excl", '!'),
    ("num", '#'),
    ("dollar", '$'),
    ("percnt", '%'),
    ("lpar", '('),
    ("rpar", ')'),
    ("ast", '*'),
    ("midast", '*'),
    ("plus", '+'),
    ("comma", ','),
    ("period", '.'),
    ("sol", '/'),
    ("colon", ':'),
    ("semi", ';'),
    ("equals", '='),
    ("quest", '?'),
    ("commat", '@'),
    ("lsqb", '['),
    ("lbrack", '['),
    ("bsol", '\\'),
    ("rsqb", ']'),
    ("rbrack", ']'),
    ("Hat", '^'),
    ("lowbar", '_'),
    ("UnderBar", '_'),
    ("grave", '`'),
    ("DiacriticalGrave", '`'),
    ("lcub", '{'),
    ("lbrace", '{'),
    ("verbar", '|'),
    ("vert", '|'),
    ("VerticalLine", '|'),
    ("rcub", '}'),
    ("rbrace", '}'),
    ("Tab", '\t'),
    ("NewLine", '\n'),
];

/// An HTML character reference at the start of `s`. Numeric references need
/// their `;` (without it, text glued to the reference would change what it
/// means); of the named ones, the four legacy ones (`&amp`, `&lt`, `&gt`,
/// `&quot`) are also read without it, as browsers do.
fn html(s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let rest = s.strip_prefix(b"&")?;
    if let Some(num) = rest.strip_prefix(b"#") {
        let (radix, digits, skip) = match num.first() {
            Some(b'x' | b'X') => (16, &num[1..], 1),
            _ => (10, num, 0),
        };
        let (code, n) = number(digits, radix, 8)?;
        if digits.get(n) != Some(&b';') {
            return None;
        }
        let c = char::from_u32(code).filter(|c| *c != '\0')?;
        push_char(c, out);
        return Some(2 + skip + n + 1);
    }
    let name_len = rest
        .iter()
        .take(24)
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    let name = &rest[..name_len];
    let &(_, c) = NAMED.iter().find(|(n, _)| n.as_bytes() == name)?;
    if rest.get(name_len) == Some(&b';') {
        push_char(c, out);
        Some(1 + name_len + 1)
    } else if matches!(name, b"amp" | b"lt" | b"gt" | b"quot") {
        push_char(c, out);
        Some(1 + name_len)
    } else {
        None
    }
}

/// A backslash escape at the start of `s`.
fn backslash(s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let rest = s.strip_prefix(b"\\")?;
    let simple = match rest.first()? {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        b'/' => Some(b'/'),
        b'\'' => Some(b'\''),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        _ => None,
    };
    if let Some(b) = simple {
        out.push(b);
        return Some(2);
    }
    let u4 = |s: &[u8]| -> Option<u32> {
        match s {
            [b'\\', b'u', a, b, c, d, ..] => Some(
                (u32::from(hex(*a)?) << 12)
                    | (u32::from(hex(*b)?) << 8)
                    | (u32::from(hex(*c)?) << 4)
                    | u32::from(hex(*d)?),
            ),
            _ => None,
        }
    };
    match rest.first()? {
        b'u' => {
            let hi = u4(s)?;
            let (code, n) = if (0xd800..0xdc00).contains(&hi) {
                let lo = u4(&s[6..]).filter(|lo| (0xdc00..0xe000).contains(lo))?;
                (0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00), 12)
            } else {
                (hi, 6)
            };
            push_char(char::from_u32(code)?, out);
            Some(n)
        }
        b'x' => match rest {
            [b'x', h, l, ..] => {
                push_char(char::from((hex(*h)? << 4) | hex(*l)?), out);
                Some(4)
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(d: Decoder, text: &str) -> String {
        let v = d.decode(text.as_bytes(), None).expect("something decoded");
        String::from_utf8(v.bytes).unwrap()
    }

    #[test]
    fn decoders() {
        assert_eq!(
            decoded(Decoder::PercentPlus, "a%2a+b%2B%e2%82%ac"),
            "a* b+€"
        );
        assert_eq!(decoded(Decoder::Percent, "a%2A+b%zz%4"), "a*+b%zz%4");
        assert_eq!(
            decoded(
                Decoder::Html,
                "&amp;&lt&#39;&#x27;&#X41;&quot;&ast;&#233;&#0;&bogus;&#39"
            ),
            "&<''A\"*é&#0;&bogus;&#39"
        );
        assert_eq!(
            decoded(
                Decoder::Backslash,
                r#"\"\/\u00e9\ud83d\ude00\ud83d\x41\'\q"#
            ),
            "\"/é😀\\ud83dA'\\q"
        );
    }

    #[test]
    fn spans_cover_whole_escapes_and_compose() {
        // `%26amp%3B` is `&amp;` percent-encoded: `&` after both decodings.
        let text = b"x%26amp%3By";
        let once = Decoder::Percent.decode(text, None).unwrap();
        assert_eq!(once.bytes, b"x&amp;y");
        let twice = Decoder::Html.decode(text, Some(&once)).unwrap();
        assert_eq!(twice.bytes, b"x&y");
        assert_eq!(twice.original(1..2), 1..10);
        assert_eq!(twice.original(0..3), 0..11);
    }
}
