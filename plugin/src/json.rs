//! The JSON the component reads and writes: CRM answers, call documents, webhook bodies.
//!
//! A small reader and writer instead of `serde_json`, for two reasons:
//! - size: the component has a 256 KiB budget, and `serde_json` with the `BTreeMap` of its
//!   `Value` and the float formatting it links was about a fifth of it;
//! - phone numbers: a number is kept as the text the CRM sent (`380123456789`, never rounded
//!   through `f64`), and objects keep their keys in the order sent.
//!
//! The grammar is RFC 8259's, strictly: no comments, no trailing commas, no lone surrogates,
//! nothing after the value but whitespace, and at most [`MAX_DEPTH`] nested arrays and objects,
//! so a hostile answer cannot exhaust the stack. `plugin/tests/properties.rs` checks this reader
//! and writer against `serde_json` on generated documents.

use std::fmt;

/// Deepest nesting of arrays and objects accepted (the same limit as `serde_json`).
pub const MAX_DEPTH: usize = 128;

/// A JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as its JSON text (`-1.5e3`).
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object's members in the order they came, duplicates included.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object (the last one, when a key is repeated, as in JavaScript);
    /// `None` for a missing key or a value that is not an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Compact JSON text, numbers exactly as they were read.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => f.write_str(n),
            Value::String(s) => f.write_str(&string(s)),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Object(members) => {
                f.write_str("{")?;
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{value}", string(key))?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Text that is not JSON: what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at line {line} column {column}")]
pub struct Error {
    /// What was wrong (`expected value`, `unterminated string`, …).
    pub reason: &'static str,
    /// 1-based line of the offending character.
    pub line: usize,
    /// 1-based column (in characters) of the offending character.
    pub column: usize,
}

/// Parse one JSON document.
pub fn parse(text: &str) -> Result<Value, Error> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.pos < parser.bytes.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok(value)
}

/// `text` as a JSON string literal: `"`, `\` and control characters escaped, everything else
/// (Unicode included) kept as is.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_string(&mut out, text);
    out
}

/// Append `text` as a JSON string literal to `out` (see [`string`]).
pub fn push_string(out: &mut String, text: &str) {
    out.push('"');
    let mut rest = text;
    while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[usize::from(c >> 4)] as char);
                out.push(HEX[usize::from(c & 0xf)] as char);
            }
        }
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// A JSON object written member by member, in the order given: what the component sends
/// (webhook bodies) and answers (outcomes). Keys and strings are escaped by [`push_string`];
/// numbers are whole (the component writes no floats).
///
/// ```
/// # use callroute_plugin::json::Object;
/// let error = Object::new().string("kind", "timeout").number("status", 503_u16);
/// let json = Object::new().string("outcome", "failed").object("error", error).finish();
/// assert_eq!(json, r#"{"outcome":"failed","error":{"kind":"timeout","status":503}}"#);
/// ```
#[derive(Debug, Clone)]
pub struct Object {
    out: String,
}

impl Default for Object {
    fn default() -> Self {
        Object::new()
    }
}

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object {
            out: String::from("{"),
        }
    }

    /// Start a member: a comma after the previous one, then `"key":`.
    fn key(&mut self, key: &str) -> &mut String {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_string(&mut self.out, key);
        self.out.push(':');
        &mut self.out
    }

    /// A string member.
    pub fn string(mut self, key: &str, value: &str) -> Object {
        push_string(self.key(key), value);
        self
    }

    /// A whole-number member.
    pub fn number(mut self, key: &str, value: impl Into<u64>) -> Object {
        let value = value.into().to_string();
        self.key(key).push_str(&value);
        self
    }

    /// An object member.
    pub fn object(mut self, key: &str, value: Object) -> Object {
        let value = value.finish();
        self.key(key).push_str(&value);
        self
    }

    /// An array member, of objects.
    pub fn array(mut self, key: &str, items: impl IntoIterator<Item = Object>) -> Object {
        let out = self.key(key);
        out.push('[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&item.finish());
        }
        out.push(']');
        self
    }

    /// The object's text.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> Error {
        let before = &self.text[..floor_char_boundary(self.text, self.pos)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        Error {
            reason,
            line,
            column,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, Error> {
        self.skip_whitespace();
        match self.peek() {
            None => Err(self.error("expected value")),
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => {
                for (word, value) in [
                    ("null", Value::Null),
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                ] {
                    if self.bytes[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(value);
                    }
                }
                Err(self.error("expected value"))
            }
        }
    }

    /// Parse an array or object one level deeper, refusing to go past [`MAX_DEPTH`].
    fn nested(&mut self, parse: fn(&mut Self) -> Result<Value, Error>) -> Result<Value, Error> {
        if self.depth == MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.depth += 1;
        self.pos += 1; // the opening bracket
        let value = parse(self);
        self.depth -= 1;
        value
    }

    /// After `[`: the items and the closing `]`.
    fn array(&mut self) -> Result<Value, Error> {
        let mut items = Vec::new();
        if self.closes_at_once(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            if self.list_ends(b']', "expected `,` or `]`")? {
                return Ok(Value::Array(items));
            }
        }
    }

    /// After `{`: the members and the closing `}`.
    fn object(&mut self) -> Result<Value, Error> {
        let mut members = Vec::new();
        if self.closes_at_once(b'}') {
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key = self.string()?;
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.error("expected `:`"));
            }
            self.pos += 1;
            members.push((key, self.value()?));
            if self.list_ends(b'}', "expected `,` or `}`")? {
                return Ok(Value::Object(members));
            }
        }
    }

    /// Right after the opening bracket: whether `close` follows (an empty array or object),
    /// consumed if so.
    fn closes_at_once(&mut self, close: u8) -> bool {
        self.skip_whitespace();
        let closes = self.peek() == Some(close);
        if closes {
            self.pos += 1;
        }
        closes
    }

    /// After an item: `true` at the closing bracket, `false` at a comma.
    fn list_ends(&mut self, close: u8, reason: &'static str) -> Result<bool, Error> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.error(reason)),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, Error> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        Ok(Value::Number(self.text[start..self.pos].to_owned()))
    }

    /// At `"`: the unescaped string, after its closing quote.
    fn string(&mut self) -> Result<String, Error> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(c) = self.peek()
                && c != b'"'
                && c != b'\\'
                && c >= b' '
            {
                self.pos += 1;
            }
            // Stops only at ASCII bytes, so both ends are character boundaries.
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self.escape()?;
                    out.push(escaped);
                }
                Some(_) => return Err(self.error("control character in string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// After `\`: the escaped character.
    fn escape(&mut self) -> Result<char, Error> {
        let c = self
            .peek()
            .ok_or_else(|| self.error("unterminated string"))?;
        self.pos += 1;
        Ok(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                let code = match high {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(self.error("lone surrogate in \\u escape"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("lone surrogate in \\u escape"));
                        }
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(self.error("lone surrogate in \\u escape")),
                    _ => high,
                };
                // Surrogates were combined or refused above, so this is a scalar value.
                char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))?
            }
            _ => {
                self.pos -= 1;
                return Err(self.error("invalid escape"));
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|c| char::from(c).to_digit(16))
                .ok_or_else(|| self.error("invalid \\u escape"))?;
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }
}

/// The largest character boundary at or before `index`.
fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Value {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn keeps_numbers_as_sent() {
        let big = "{\"number_01\": 380123456789012345678901234567890, \"x\": -0.5e-3}";
        let value = parsed(big);
        assert_eq!(
            value.get("number_01"),
            Some(&Value::Number("380123456789012345678901234567890".into()))
        );
        assert_eq!(value.get("x"), Some(&Value::Number("-0.5e-3".into())));
    }

    #[test]
    fn objects_keep_order_and_the_last_duplicate_wins() {
        let value = parsed(r#"{"b":1,"a":2,"b":3}"#);
        assert_eq!(value.to_string(), r#"{"b":1,"a":2,"b":3}"#);
        assert_eq!(value.get("b"), Some(&Value::Number("3".into())));
        assert_eq!(value.get("c"), None);
        assert_eq!(Value::Null.get("b"), None);
    }

    #[test]
    fn unescapes_strings() {
        let value = parsed(r#""a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\ud83d\ude00 Олена""#);
        assert_eq!(value.as_str(), Some("a\"b\\c/d\u{8}\u{c}\n\r\tAé😀 Олена"));
    }

    #[test]
    fn refuses_what_is_not_json_and_says_where() {
        for (text, reason, line, column) in [
            ("", "expected value", 1, 1),
            ("  ", "expected value", 1, 3),
            ("{\"a\":1,}", "expected a string key", 1, 8),
            ("[1,]", "expected value", 1, 4),
            ("[1 2]", "expected `,` or `]`", 1, 4),
            ("{\"a\" 1}", "expected `:`", 1, 6),
            ("{\n \"é\": tru}", "expected value", 2, 7),
            ("01", "trailing characters", 1, 2),
            ("1.", "invalid number", 1, 3),
            ("1e+", "invalid number", 1, 4),
            ("-", "invalid number", 1, 2),
            ("\"abc", "unterminated string", 1, 5),
            ("\"a\nb\"", "control character in string", 1, 3),
            ("\"\\x\"", "invalid escape", 1, 3),
            ("\"\\u12g4\"", "invalid \\u escape", 1, 6),
            ("\"\\ud800\"", "lone surrogate in \\u escape", 1, 8),
            ("\"\\udc00\"", "lone surrogate in \\u escape", 1, 8),
            ("\"\\ud800\\u0041\"", "lone surrogate in \\u escape", 1, 14),
            ("nul", "expected value", 1, 1),
            ("{} {}", "trailing characters", 1, 4),
        ] {
            let error = parse(text).expect_err(text);
            assert_eq!(
                (error.reason, error.line, error.column),
                (reason, line, column),
                "{text:?}"
            );
        }
    }

    #[test]
    fn nesting_is_limited() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(&deep(MAX_DEPTH)).is_ok());
        let error = parse(&deep(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(error.reason, "nested too deeply");
        // Far deeper than any stack would survive by recursion.
        assert!(parse(&"[".repeat(1_000_000)).is_err());
    }

    #[test]
    fn writes_strings_and_objects() {
        assert_eq!(
            string("a\"b\\c\n\u{1}\u{7f}é"),
            "\"a\\\"b\\\\c\\n\\u0001\u{7f}é\""
        );
        assert_eq!(
            Object::new()
                .string("caller", "+380 50")
                .string("no\"te", "\"x\"")
                .finish(),
            r#"{"caller":"+380 50","no\"te":"\"x\""}"#
        );
        assert_eq!(Object::new().finish(), "{}");
        let item = |n: u32| Object::new().number("n", n);
        assert_eq!(
            Object::new()
                .array("items", [item(1), item(2)])
                .array("none", [])
                .object("o", Object::new().number("big", u64::MAX))
                .finish(),
            r#"{"items":[{"n":1},{"n":2}],"none":[],"o":{"big":18446744073709551615}}"#
        );
        let value = parsed(r#" { "a" : [ true , false , null , "x" , 1 ] , "b" : { } } "#);
        assert_eq!(value.to_string(), r#"{"a":[true,false,null,"x",1],"b":{}}"#);
    }
}
