//! Plain JSON `embedding_data`: a hand-rolled scanner for `[num, num, ...]`,
//! serde_json only to explain a rejection.

use super::{excerpt, BadRowReason};

/// Decodes a plain JSON array of numbers into little-endian f32 bytes, or says
/// why it cannot be decoded.
pub(super) fn decode_json(text: &str) -> Result<Vec<u8>, BadRowReason> {
    scan_json_array(text).map_err(|rejection| classify_rejected_json(text, rejection))
}

/// Why the fast scanner did not produce a vector.
enum Rejection {
    /// The whole text is a well-formed JSON array of number tokens, so the
    /// reason is final (out of range, empty).
    Final(BadRowReason),
    /// The text is not known to be valid JSON; `hint` is the reason if it is.
    Unverified(Option<BadRowReason>),
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The JSON type of a value that starts with `b`.
fn json_kind(b: u8) -> Option<&'static str> {
    match b {
        b'n' => Some("null"),
        b't' | b'f' => Some("boolean"),
        b'"' => Some("string"),
        b'[' => Some("array"),
        b'{' => Some("object"),
        b'-' | b'0'..=b'9' => Some("number"),
        _ => None,
    }
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(is_json_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Consumes digits; true if there was at least one.
    fn digits(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Consumes one token of `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.') && !self.digits() {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _sign = self.eat(b'+') || self.eat(b'-');
            if !self.digits() {
                return None;
            }
        }
        self.text.get(start..self.pos)
    }
}

/// The fast path: a JSON array of numbers straight into little-endian f32
/// bytes, each token correctly rounded (`fast_float2`, Eisel-Lemire with an
/// exact fallback: the same result as `str::parse::<f32>`, faster).
fn scan_json_array(text: &str) -> Result<Vec<u8>, Rejection> {
    let mut s = Scanner { text, pos: 0 };
    s.skip_whitespace();
    if !s.eat(b'[') {
        let found = s.peek().and_then(json_kind);
        return Err(Rejection::Unverified(
            found.map(|found| BadRowReason::NotAnArray { found }),
        ));
    }
    s.skip_whitespace();
    if s.eat(b']') {
        s.skip_whitespace();
        return Err(if s.peek().is_none() {
            Rejection::Final(BadRowReason::Empty)
        } else {
            Rejection::Unverified(None)
        });
    }

    // Exact for well-formed input; bounded by the text length for junk.
    let commas = text.bytes().filter(|&b| b == b',').count();
    let elements = commas.saturating_add(1).min(text.len() / 2 + 1);
    let mut out = Vec::with_capacity(elements.saturating_mul(4));
    let mut out_of_range: Option<BadRowReason> = None;
    let mut index = 0usize;
    loop {
        let start = s.peek();
        let Some(token) = s.number() else {
            let non_numeric = start
                .and_then(json_kind)
                .filter(|&found| found != "number")
                .map(|found| BadRowReason::NonNumericElement { index, found });
            return Err(Rejection::Unverified(out_of_range.or(non_numeric)));
        };
        match fast_float2::parse::<f32, _>(token.as_bytes()) {
            Ok(value) if value.is_finite() => out.extend_from_slice(&value.to_le_bytes()),
            Ok(_) => {
                if out_of_range.is_none() {
                    out_of_range = Some(BadRowReason::OutOfRange {
                        index,
                        text: excerpt(token),
                    });
                }
            }
            Err(_) => return Err(Rejection::Unverified(out_of_range)),
        }
        index += 1;
        s.skip_whitespace();
        if s.eat(b',') {
            s.skip_whitespace();
        } else if s.eat(b']') {
            break;
        } else {
            return Err(Rejection::Unverified(out_of_range));
        }
    }
    s.skip_whitespace();
    if s.peek().is_some() {
        return Err(Rejection::Unverified(out_of_range));
    }
    match out_of_range {
        Some(reason) => Err(Rejection::Final(reason)),
        None => Ok(out),
    }
}

/// Says why the scanner rejected `text`; never says "fine".
fn classify_rejected_json(text: &str, rejection: Rejection) -> BadRowReason {
    let hint = match rejection {
        Rejection::Final(reason) => return reason,
        Rejection::Unverified(hint) => hint,
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Err(e) => BadRowReason::InvalidJson {
            detail: e.to_string(),
        },
        Ok(value) => hint.unwrap_or_else(|| classify_value(&value)),
    }
}

fn value_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Fallback for valid JSON the scanner gave no reason for (should not happen:
/// the scanner accepts every JSON array of in-range numbers).
fn classify_value(value: &serde_json::Value) -> BadRowReason {
    let serde_json::Value::Array(items) = value else {
        return BadRowReason::NotAnArray {
            found: value_kind(value),
        };
    };
    if items.is_empty() {
        return BadRowReason::Empty;
    }
    for (index, item) in items.iter().enumerate() {
        match item {
            serde_json::Value::Number(n) => {
                if n.as_f64().is_some_and(|x| (x as f32).is_infinite()) {
                    return BadRowReason::OutOfRange {
                        index,
                        text: excerpt(&n.to_string()),
                    };
                }
            }
            other => {
                return BadRowReason::NonNumericElement {
                    index,
                    found: value_kind(other),
                }
            }
        }
    }
    BadRowReason::InvalidJson {
        detail: "the array of numbers could not be read".to_owned(),
    }
}
