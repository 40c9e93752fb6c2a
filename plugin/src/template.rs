//! Parameter and header templates: `"{caller}"`, `"crm-{call_id}"`, constants.
//!
//! A placeholder `{name}` stands for a named value ([`Values`]: a call's for a routing webhook,
//! [`Call::lookup`]; an outcome's for a report); `{{` and `}}` are literal braces. A
//! placeholder with no value renders as the empty string: not every call carries every
//! variable (a caller without a `google_id` is still routed).
//!
//! [`Call::lookup`]: crate::call::Call::lookup

use std::borrow::Cow;

/// What a template's placeholders are filled from.
pub trait Values {
    /// The value `{name}` stands for; `None` when there is none.
    fn lookup(&self, name: &str) -> Option<Cow<'_, str>>;
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parse a template; the error says what is wrong (it is reported with the field's name).
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c)
                                if c.is_ascii_alphanumeric()
                                    || c == '_'
                                    || c == '-'
                                    || c == '.' =>
                            {
                                name.push(c)
                            }
                            Some(c) => {
                                return Err(format!(
                                    "placeholder `{{{name}` contains {c:?}; names use letters, digits, `_`, `-`, `.` (write `{{{{` for a literal brace)"
                                ));
                            }
                            None => {
                                return Err(format!(
                                    "unclosed placeholder `{{{name}` (write `{{{{` for a literal brace)"
                                ));
                            }
                        }
                    }
                    if name.is_empty() {
                        return Err("empty placeholder `{}`".into());
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Var(name));
                }
                '}' => return Err("unmatched `}` (write `}}` for a literal brace)".into()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// Render the template with `values` (a call's, an outcome's).
    pub fn render(&self, values: &dyn Values) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(name) => {
                    if let Some(value) = values.lookup(name) {
                        out.push_str(&value)
                    }
                }
            }
        }
        out
    }

    /// A template that is exactly one placeholder, `{name}`.
    pub fn var(name: &str) -> Template {
        Template {
            pieces: vec![Piece::Var(name.to_owned())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Call;

    fn call() -> Call {
        Call {
            call_id: "pkv".into(),
            caller: "380501112233".into(),
            callee: "380441234567".into(),
            vars: vec![
                ("uuid".into(), "842d".into()),
                ("utm_source".into(), "google".into()),
            ],
        }
    }

    #[test]
    fn substitutes_call_values_and_variables() {
        let t = Template::parse("{call_id}/{caller}->{callee} u={uuid} s={utm_source}").unwrap();
        assert_eq!(
            t.render(&call()),
            "pkv/380501112233->380441234567 u=842d s=google"
        );
    }

    #[test]
    fn constants_escapes_and_missing_values() {
        assert_eq!(
            Template::parse("webhookNumber:120")
                .unwrap()
                .render(&call()),
            "webhookNumber:120"
        );
        assert_eq!(
            Template::parse("{{x}} {{{call_id}}}")
                .unwrap()
                .render(&call()),
            "{x} {pkv}"
        );
        assert_eq!(
            Template::parse("[{google_id}]").unwrap().render(&call()),
            "[]"
        );
        assert_eq!(Template::var("caller").render(&call()), "380501112233");
    }

    #[test]
    fn malformed_templates_are_explained() {
        assert!(Template::parse("{caller").unwrap_err().contains("unclosed"));
        assert!(Template::parse("a}").unwrap_err().contains("unmatched"));
        assert!(Template::parse("{}").unwrap_err().contains("empty"));
        assert!(Template::parse("{a b}").unwrap_err().contains("' '"));
    }
}
