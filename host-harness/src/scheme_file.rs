//! Scheme files: one scheme at the top level, or several as `[[scheme]]` tables.
//!
//! ```toml
//! name = "acme"
//! url = "https://crm.example.com/api/route"
//! submission = "json"
//! import = "json"
//! destination_field = "number_01"
//!
//! [params]
//! call_id = "{call_id}"
//! ```
//!
//! A `[server]` table, beside the schemes, holds the settings of `callroute serve` that are
//! not one tenant's: `api_tokens`, the server-wide bearer tokens.
//!
//! A scheme is handed to the component as flat `wasi:config` pairs: nested tables become
//! dotted keys (`params.call_id`), array items get their index (`fallback.0`), and numbers and
//! booleans their TOML text. Whether the fields make sense is the component's business
//! ([`callroute_plugin::scheme`]); this module only reads the file.

use std::path::Path;
use toml::Value;

/// How long apart two reads of a reloaded file must agree ([`SchemeFile::load_settled`]).
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);
/// How many times a reloaded file is read again before it is refused as still changing.
pub const SETTLE_TRIES: u32 = 40;

/// One scheme from a file: its name (when it has one) and its flat pairs.
#[derive(Clone, PartialEq, Eq)]
pub struct SchemeEntry {
    /// The scheme's `name` field.
    pub name: Option<String>,
    /// The flat `wasi:config` pairs.
    pub pairs: Vec<(String, String)>,
}

/// The keys only: values may be secrets.
impl std::fmt::Debug for SchemeEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemeEntry")
            .field("name", &self.name)
            .field(
                "keys",
                &self.pairs.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The schemes' keys only: values may be secrets.
impl std::fmt::Debug for SchemeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemeFile")
            .field("path", &self.path)
            .field("schemes", &self.schemes)
            .field(
                "server",
                &self.server.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A scheme file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemeFileError {
    /// The file could not be read.
    #[error("cannot read scheme file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("scheme file {path} is not valid TOML: {message}")]
    Toml {
        /// The file.
        path: String,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// Valid TOML of the wrong shape.
    #[error("scheme file {path}: {message}")]
    Shape {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// `--scheme-name` names no scheme in the file.
    #[error("scheme file {path} has no scheme named `{name}` (it has: {available})")]
    NotFound {
        /// The file.
        path: String,
        /// The name asked for.
        name: String,
        /// The names present.
        available: String,
    },
    /// Several schemes and no name given.
    #[error(
        "scheme file {path} holds several schemes; choose one with --scheme-name (it has: {available})"
    )]
    Ambiguous {
        /// The file.
        path: String,
        /// The names present.
        available: String,
    },
}

/// The schemes of one file.
#[derive(Clone)]
pub struct SchemeFile {
    path: String,
    /// The schemes, in file order.
    pub schemes: Vec<SchemeEntry>,
    /// The `[server]` table, flat (empty without one).
    pub server: Vec<(String, String)>,
}

impl SchemeFile {
    /// Read and parse a scheme file.
    pub fn load(path: &Path) -> Result<SchemeFile, SchemeFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SchemeFileError::Read {
            path: shown.clone(),
            source,
        })?;
        SchemeFile::parse(&text, &shown)
    }

    /// Read the file at `path` once it has stopped changing: two reads [`SETTLE`] apart must
    /// agree (at most [`SETTLE_TRIES`] times, then it is refused), so a file caught while an
    /// editor or a deployment is still writing it is never taken half-written. What `serve`
    /// reloads; replacing the file atomically (write a new file, then rename it over the old)
    /// is still the way to deploy one.
    pub fn load_settled(path: &Path) -> Result<SchemeFile, SchemeFileError> {
        let shown = path.display().to_string();
        let read = || {
            std::fs::read(path).map_err(|source| SchemeFileError::Read {
                path: shown.clone(),
                source,
            })
        };
        let mut text = read()?;
        for _ in 0..SETTLE_TRIES {
            std::thread::sleep(SETTLE);
            let again = read()?;
            if again == text {
                let text = String::from_utf8(text).map_err(|_| SchemeFileError::Shape {
                    path: shown.clone(),
                    message: "the file is not UTF-8".into(),
                })?;
                return SchemeFile::parse(&text, &shown);
            }
            text = again;
        }
        Err(SchemeFileError::Shape {
            path: shown,
            message: format!(
                "the file kept changing for {} ms; replace it atomically (write, then rename)",
                (SETTLE * SETTLE_TRIES).as_millis()
            ),
        })
    }

    /// Parse scheme TOML; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<SchemeFile, SchemeFileError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| SchemeFileError::Toml {
                    path: path.into(),
                    message: toml_error(text, &e),
                })?;
        let shape = |message: String| SchemeFileError::Shape {
            path: path.into(),
            message,
        };
        let server = match table.remove("server") {
            None => Vec::new(),
            Some(Value::Table(server)) => {
                let mut pairs = Vec::new();
                for (key, value) in &server {
                    flatten(key, value, &mut pairs);
                }
                pairs
            }
            Some(_) => return Err(shape("`server` must be a table ([server])".into())),
        };
        let schemes = match table.get("scheme") {
            Some(Value::Array(items)) => {
                if let Some(other) = table.keys().find(|k| *k != "scheme") {
                    return Err(shape(format!(
                        "`{other}` sits beside [[scheme]] tables; put every field inside a [[scheme]]"
                    )));
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::Table(t) => {
                            entry(t).map_err(|e| shape(format!("scheme #{}: {e}", i + 1)))
                        }
                        _ => Err(shape(format!("scheme #{} is not a table", i + 1))),
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => {
                return Err(shape(
                    "`scheme` must be an array of tables ([[scheme]])".into(),
                ));
            }
            None => vec![entry(&table).map_err(shape)?],
        };
        if schemes.is_empty() {
            return Err(shape("there is no scheme in the file".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for name in schemes.iter().filter_map(|s| s.name.as_deref()) {
            if !seen.insert(name) {
                return Err(shape(format!("two schemes are named `{name}`")));
            }
        }
        Ok(SchemeFile {
            path: path.into(),
            schemes,
            server,
        })
    }

    /// The scheme named `name`, or the only scheme when no name is given.
    pub fn select(&self, name: Option<&str>) -> Result<&SchemeEntry, SchemeFileError> {
        match name {
            Some(name) => self
                .schemes
                .iter()
                .find(|s| s.name.as_deref() == Some(name))
                .ok_or_else(|| SchemeFileError::NotFound {
                    path: self.path.clone(),
                    name: name.into(),
                    available: self.names(),
                }),
            None if self.schemes.len() == 1 => Ok(&self.schemes[0]),
            None => Err(SchemeFileError::Ambiguous {
                path: self.path.clone(),
                available: self.names(),
            }),
        }
    }

    /// The file's path, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self
            .schemes
            .iter()
            .map(|s| s.name.as_deref().unwrap_or("(unnamed)"))
            .collect();
        names.join(", ")
    }
}

/// What is wrong with the TOML and where, without the line itself (the parser's own message
/// quotes it, and a line of a schemes file may hold a secret).
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

/// Every problem of a schemes file, one line each, as `route` and `serve` would meet them: a
/// scheme the component refuses (naming the field), an `${env:…}` variable that is not set, a
/// `[server]` table that cannot be used, a scheme without a name among several. Values never
/// appear in a problem.
pub fn check(file: &SchemeFile) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = crate::prepare::server_settings(&file.server) {
        problems.push(format!("[server] {e}"));
    }
    let several = file.schemes.len() > 1;
    for (i, entry) in file.schemes.iter().enumerate() {
        let shown = match &entry.name {
            Some(name) => format!("scheme `{name}`"),
            None => format!("scheme #{}", i + 1),
        };
        if entry.name.is_none() && several {
            problems.push(format!(
                "{shown} has no `name`; among several, each needs one"
            ));
        }
        // Exactly as `route` and `serve` prepare it, under the component's rules.
        let prepared =
            crate::prepare::prepare(entry.pairs.clone(), crate::prepare::Rules::Component);
        problems.extend(prepared.problems().iter().map(|p| format!("{shown}: {p}")));
    }
    problems
}

/// A scheme's table as flat pairs; a key that flattens to one given already (a quoted
/// `"fallback.0"` beside `fallback = [...]`) is an error rather than a silent choice.
fn entry(table: &toml::Table) -> Result<SchemeEntry, String> {
    let mut pairs = Vec::new();
    for (key, value) in table {
        flatten(key, value, &mut pairs);
    }
    let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    if let Some(twice) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("the key `{}` is given twice", twice[0]));
    }
    Ok(SchemeEntry {
        name: table.get("name").and_then(Value::as_str).map(str::to_owned),
        pairs,
    })
}

fn flatten(key: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => out.push((key.into(), s.clone())),
        Value::Integer(i) => out.push((key.into(), i.to_string())),
        Value::Float(f) => out.push((key.into(), f.to_string())),
        Value::Boolean(b) => out.push((key.into(), b.to_string())),
        Value::Datetime(d) => out.push((key.into(), d.to_string())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{key}.{i}"), item, out);
            }
        }
        Value::Table(table) => {
            for (k, v) in table {
                flatten(&format!("{key}.{k}"), v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_scheme_is_flattened() {
        let file = SchemeFile::parse(
            r#"
            name = "acme"
            url = "http://crm/"
            ring_timeout_secs = 20
            response_timeout_secs = 2.5
            [params]
            call_id = "{call_id}"
            [headers]
            Authorization = "Bearer x"
            "#,
            "t.toml",
        )
        .unwrap();
        let scheme = file.select(None).unwrap();
        assert_eq!(scheme.name.as_deref(), Some("acme"));
        let get = |k: &str| {
            scheme
                .pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("url"), Some("http://crm/"));
        assert_eq!(get("ring_timeout_secs"), Some("20"));
        assert_eq!(get("response_timeout_secs"), Some("2.5"));
        assert_eq!(get("params.call_id"), Some("{call_id}"));
        assert_eq!(get("headers.Authorization"), Some("Bearer x"));
        assert_eq!(file.select(Some("acme")).unwrap(), scheme);
        assert!(matches!(
            file.select(Some("other")),
            Err(SchemeFileError::NotFound { .. })
        ));
    }

    #[test]
    fn several_schemes_are_chosen_by_name() {
        let file = SchemeFile::parse(
            r#"
            [[scheme]]
            name = "a"
            url = "http://a/"
            [[scheme]]
            name = "b"
            url = "http://b/"
            fallback = ["101", "102"]
            "#,
            "t.toml",
        )
        .unwrap();
        let b = file.select(Some("b")).unwrap();
        assert!(b.pairs.contains(&("fallback.1".into(), "102".into())));
        let err = file.select(None).unwrap_err().to_string();
        assert!(
            err.contains("--scheme-name") && err.contains("a, b"),
            "{err}"
        );
        let err = file.select(Some("c")).unwrap_err().to_string();
        assert!(err.contains("`c`") && err.contains("a, b"), "{err}");
    }

    #[test]
    fn bad_files_are_explained() {
        let err = SchemeFile::parse("url = ", "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.toml") && err.contains("not valid TOML"),
            "{err}"
        );
        let err = SchemeFile::parse("x = 1\n[[scheme]]\nurl='http://a/'", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`x`"), "{err}");
        let err = SchemeFile::parse("scheme = 1", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[[scheme]]"), "{err}");
        let err = SchemeFile::parse("[[scheme]]\nname='a'\n[[scheme]]\nname='a'", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("two schemes"), "{err}");
        let err = SchemeFile::load(Path::new("/nonexistent/s.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read scheme file /nonexistent/s.toml"),
            "{err}"
        );
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let error = SchemeFile::parse(
            "url = \"http://crm/\"\nfallback = [\"101\"]\n\"fallback.0\" = \"102\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`fallback.0` is given twice"), "{error}");
        let error = SchemeFile::parse(
            "[[scheme]]\nname = \"a\"\nparams = { x = \"1\" }\n\"params.x\" = \"2\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("scheme #1: the key `params.x` is given twice"),
            "{error}"
        );
    }

    #[test]
    fn a_toml_error_says_where_but_never_repeats_the_line() {
        let error = SchemeFile::parse(
            "url = \"http://crm/\"\napi_tokens = [\"tok-secret-0123456789\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("is not valid TOML: line "), "{error}");
        assert!(!error.contains("tok-secret"), "{error}");
        let entry = format!(
            "{:?}",
            SchemeFile::parse("url = \"http://crm/?k=SECRET\"\n", "t.toml").unwrap()
        );
        assert!(
            entry.contains("\"url\"") && !entry.contains("SECRET"),
            "{entry}"
        );
    }
}
