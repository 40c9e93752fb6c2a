//! What of a scheme is secret, and how every string that leaves the process is masked.
//!
//! One notion of a secret, from the table of fields ([`callroute_plugin::scheme::fields`]):
//! the values of `${env:…}` references; every value of a field shown as secret (headers,
//! signing secrets, tokens) and each long word of it (the token of `Bearer <token>`); the
//! values in a URL's query and its user information; the literal text of a parameter
//! template (`api_key = "LITERAL"`); and every value of a key the table does not know (a
//! typo, or a `--plugin` component's own key). The settings view shows the same values as
//! [`MASK`].
//!
//! [`Secrets::mask`] replaces, in any text, each secret of at least [`MIN_SECRET_CHARS`]
//! characters in each of these forms:
//!
//! | form | example for `a+b/c"d` |
//! |---|---|
//! | as written, in any ASCII letter case | `A+B/C"D` |
//! | form or query encoding (`+` for a space), either case of hex | `a%2Bb%2Fc%22d`, `a%2bb%2fc%22d` |
//! | RFC 3986 percent-encoding (`%20` for a space) | `a%2Bb%2Fc%22d` |
//! | a JSON string's escapes, with `/` as `\/` too | `a+b/c\"d`, `a+b\/c\"d` |
//! | HTML's entities for `& < > " '` | `a+b/c&quot;d` |
//! | hexadecimal of its bytes, either case | `612b622f632264` |
//! | base64 and base64url, inside a longer encoded text too | `YStiL2MiZA` |
//!
//! and, where a text was cut (before an excerpt's `…`, or at the end of a body kept in
//! part), the first [`MIN_SECRET_CHARS`] or more characters of any of these forms. Not covered: other
//! encodings (quoted-printable, punycode, a CRM's own encryption), letter case outside ASCII,
//! a secret split by other text, and secrets shorter than [`MIN_SECRET_CHARS`] characters
//! (masking them would garble every record).
//!
//! The numbers of the call (its caller and callee, at least 7 digits) are masked the same way
//! unless the operator asks to see them ([`Redactor`]).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use callroute_plugin::scheme::fields::{self, Shown};
use std::sync::Arc;

/// What stands for a secret.
pub const MASK: &str = "•••";

/// The shortest secret masked: shorter ones would garble everything else.
pub const MIN_SECRET_CHARS: usize = 4;

/// Where a text may have been cut, leaving the start of a secret.
#[derive(Clone, Copy)]
enum Cuts {
    /// Nowhere: a whole body.
    None,
    /// Before each excerpt mark (`…`): a message that quotes.
    Excerpts,
    /// At its end: a body kept in part.
    AtEnd,
}

/// The most excerpt marks (`…`) in one text looked at for a cut secret: an excerpt has one, and
/// a text with many is a CRM's, not a cut.
const MAX_CUTS: usize = 4;

/// The shortest base64 fragment of a secret that is masked (a shorter one would match
/// ordinary words).
const MIN_BASE64_CHARS: usize = 8;

/// The secrets of one scheme, and a matcher for every form of each. Cheap to clone.
#[derive(Clone, Default)]
pub struct Secrets(Option<Arc<Matcher>>);

struct Matcher {
    /// Every form of every secret, longest first.
    forms: Vec<String>,
    automaton: AhoCorasick,
}

impl std::fmt::Debug for Secrets {
    /// How many forms, never a value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let forms = self.0.as_ref().map_or(0, |m| m.forms.len());
        write!(f, "Secrets({forms} forms)")
    }
}

impl Secrets {
    /// The secrets of a scheme: its pairs (`${env:…}` references resolved), and what its
    /// references resolved to.
    pub fn of_scheme(resolved: &[(String, String)], referenced: Vec<String>) -> Secrets {
        let mut values = referenced;
        for (key, value) in resolved {
            // A reference that could not be resolved is shown as written, like the settings.
            if !value.contains("${env:") {
                values.extend(secret_values(key, value));
            }
        }
        let forms = values
            .iter()
            .filter(|v| v.chars().count() >= MIN_SECRET_CHARS)
            .flat_map(|v| forms_of(v))
            .collect();
        Secrets::build(forms)
    }

    /// A matcher for the secrets' `forms`.
    fn build(mut forms: Vec<String>) -> Secrets {
        if forms.is_empty() {
            return Secrets(None);
        }
        sort_longest_first(&mut forms);
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&forms)
            .expect("a handful of literal patterns always builds");
        Secrets(Some(Arc::new(Matcher { forms, automaton })))
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The longest form of a secret, in bytes: how much more than its limit a record must
    /// keep of a text before cutting it, so that a secret starting within the limit is
    /// masked whole.
    pub fn longest(&self) -> usize {
        self.0
            .as_ref()
            .and_then(|m| m.forms.first())
            .map_or(0, String::len)
    }

    /// `text` with every form of every secret masked, and the start of one before an
    /// excerpt's `…` (see the module docs).
    pub fn mask(&self, text: &str) -> String {
        self.masked(text, Cuts::Excerpts)
    }

    /// `text`, a body as sent or answered (where a `…` is the text's own, not a cut), with
    /// every form of every secret masked; when the body was `cut` (kept in part), the start
    /// of a secret's form at its end too.
    pub fn mask_body(&self, text: &str, cut: bool) -> String {
        self.masked(text, if cut { Cuts::AtEnd } else { Cuts::None })
    }

    fn masked(&self, text: &str, cuts: Cuts) -> String {
        let Some(m) = &self.0 else {
            return text.to_owned();
        };
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for found in m.automaton.find_iter(text) {
            out.push_str(&text[last..found.start()]);
            out.push_str(MASK);
            last = found.end();
        }
        out.push_str(&text[last..]);
        match cuts {
            Cuts::None => out,
            Cuts::Excerpts => m.mask_cut_prefixes(out, false),
            Cuts::AtEnd => {
                let end = out.len();
                m.mask_cut_prefixes_at(out, vec![end])
            }
        }
    }
}

impl Matcher {
    /// `text` with the start of a secret masked where the text was cut: before each `…` (an
    /// excerpt's mark; the last [`MAX_CUTS`]), and at its end if `cut_at_end`.
    fn mask_cut_prefixes(&self, text: String, cut_at_end: bool) -> String {
        let mut cuts: Vec<usize> = text.match_indices('…').map(|(i, _)| i).collect();
        cuts.drain(..cuts.len().saturating_sub(MAX_CUTS));
        if cut_at_end {
            cuts.push(text.len());
        }
        self.mask_cut_prefixes_at(text, cuts)
    }

    /// `text` with the start of a secret masked before each of `cuts` (byte offsets, in
    /// order).
    fn mask_cut_prefixes_at(&self, mut text: String, cuts: Vec<usize>) -> String {
        // From the last cut back, so that earlier positions stay valid; a cut inside what was
        // masked already (a secret holding `…`) is passed over.
        let mut masked_from = text.len() + 1;
        for &cut in cuts.iter().rev() {
            if cut >= masked_from || !text.is_char_boundary(cut) {
                continue;
            }
            if let Some(start) = self.cut_prefix_start(&text[..cut]) {
                text.replace_range(start..cut, MASK);
                masked_from = start;
            }
        }
        text
    }

    /// Where the longest start of a secret's form (at least [`MIN_SECRET_CHARS`] bytes, not
    /// the whole form) ends `before`.
    fn cut_prefix_start(&self, before: &str) -> Option<usize> {
        let tail = before.as_bytes();
        self.forms
            .iter()
            .filter_map(|form| {
                let form = form.as_bytes();
                (MIN_SECRET_CHARS..form.len().min(tail.len() + 1))
                    .rev()
                    .find(|&n| {
                        let start = tail.len() - n;
                        before.is_char_boundary(start)
                            && tail[start..].eq_ignore_ascii_case(&form[..n])
                    })
                    .map(|n| tail.len() - n)
            })
            .min()
    }
}

/// The secret values a field holds (see the module docs).
fn secret_values(key: &str, value: &str) -> Vec<String> {
    let shown = fields::of(key).map_or(Shown::Secret, |f| f.shown);
    match shown {
        Shown::Plain => Vec::new(),
        Shown::Secret => {
            let mut values = vec![value.to_owned()];
            // `Bearer <token>`: the token alone too, should a CRM echo it.
            values.extend(
                value
                    .split_whitespace()
                    .filter(|word| word.len() >= 8 && *word != value)
                    .map(str::to_owned),
            );
            values
        }
        Shown::Url => url_secrets(value),
        Shown::Template => template_literals(value),
    }
}

/// The values of a URL's query, and its user information.
fn url_secrets(url: &str) -> Vec<String> {
    let mut values = Vec::new();
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if let Some((_, rest)) = base.split_once("://") {
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some((user, _)) = authority.rsplit_once('@') {
            values.push(user.to_owned());
            values.extend(
                user.split_once(':')
                    .map(|(_, password)| password.to_owned()),
            );
        }
    }
    let query = query.split('#').next().unwrap_or_default();
    values.extend(form_urlencoded::parse(query.as_bytes()).map(|(_, v)| v.into_owned()));
    values
}

/// The literal text of a template, outside its placeholders, each run trimmed.
fn template_literals(template: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut run = String::new();
    let mut depth = 0usize;
    for c in template.chars() {
        match c {
            '{' => {
                depth += 1;
                runs.push(std::mem::take(&mut run));
            }
            '}' => depth = depth.saturating_sub(1),
            c if depth == 0 => run.push(c),
            _ => {}
        }
    }
    runs.push(run);
    runs.into_iter()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect()
}

/// Whether a template is only placeholders (`{caller}`, `+{callee}`): nothing literal in it
/// could be a key. (The settings view shows such a parameter as written.)
pub fn only_placeholders(template: &str) -> bool {
    template_literals(template)
        .iter()
        .all(|r| !r.chars().any(char::is_alphanumeric))
}

/// Every form of `secret` that is masked (see the module docs).
fn forms_of(secret: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_owned(),
        form_encoded(secret),
        percent_encoded(secret),
        callroute_plugin::request::hex(secret.as_bytes()),
    ];
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"').to_owned();
    forms.push(json.replace('/', "\\/"));
    forms.push(json);
    forms.push(html_escaped(secret));
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        forms.extend(base64_fragments(secret.as_bytes(), engine));
    }
    forms
}

/// The parts of the base64 of any text holding `secret` that depend on `secret` alone: at
/// each of the three alignments a secret can have within base64's 3-byte groups.
fn base64_fragments(secret: &[u8], engine: &impl base64::Engine) -> Vec<String> {
    (0..3usize)
        .filter_map(|offset| {
            let mut padded = vec![0u8; offset];
            padded.extend_from_slice(secret);
            let encoded = engine.encode(&padded);
            // Character i covers bits 6i..6i+6: keep those within the secret's bits.
            let first = (8 * offset).div_ceil(6);
            let end = (8 * padded.len()) / 6;
            let fragment = encoded.get(first..end)?.to_owned();
            (fragment.len() >= MIN_BASE64_CHARS).then_some(fragment)
        })
        .collect()
}

/// As a form body or a query writes it.
fn form_encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// RFC 3986 percent-encoding: every byte but the unreserved ones.
fn percent_encoded(text: &str) -> String {
    callroute_plugin::request::percent_encode(text, callroute_plugin::request::unreserved)
}

/// With HTML's entities for `& < > " '`.
fn html_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Longest first, each once: a secret that contains another is masked whole.
fn sort_longest_first(forms: &mut Vec<String>) {
    forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    forms.dedup();
}

/// The shortest number masked inside texts: shorter ones (an extension, `101`) are not
/// anyone's phone number, and masking them would garble the rest.
pub const MIN_MASKED_NUMBER: usize = 7;

/// How one call's strings are masked: the scheme's secrets, and the call's numbers unless
/// they are shown. Made for each call; it allocates nothing until it finds something to mask.
#[derive(Debug, Clone, Copy)]
pub struct Redactor<'a> {
    secrets: &'a Secrets,
    /// The call's caller and callee.
    numbers: [&'a str; 2],
    show_numbers: bool,
}

impl<'a> Redactor<'a> {
    /// Mask `secrets`, and `numbers` (a call's caller and callee) unless `show_numbers`.
    pub fn new(secrets: &'a Secrets, numbers: [&'a str; 2], show_numbers: bool) -> Redactor<'a> {
        Redactor {
            secrets,
            numbers,
            show_numbers,
        }
    }

    /// `text` masked.
    pub fn mask(&self, text: &str) -> String {
        self.numbers_masked(self.secrets.mask(text))
    }

    /// A body masked (see [`Secrets::mask_body`]).
    pub fn mask_body(&self, text: &str, cut: bool) -> String {
        self.numbers_masked(self.secrets.mask_body(text, cut))
    }

    /// `text` with the call's numbers of at least [`MIN_MASKED_NUMBER`] digits masked, as
    /// written and without their `+` (`%2B380…` in a form body).
    fn numbers_masked(&self, mut text: String) -> String {
        if self.show_numbers {
            return text;
        }
        for number in self.numbers {
            let digits = number.trim_start_matches('+');
            if digits.chars().count() < MIN_MASKED_NUMBER {
                continue;
            }
            for form in [number, digits] {
                if text.contains(form) {
                    text = text.replace(form, &mask_number(form));
                }
            }
        }
        text
    }
}

/// A number as a record shows it: whole with `show_numbers`, else masked ([`mask_number`]).
pub fn shown_number(number: &str, show_numbers: bool) -> String {
    if show_numbers {
        number.to_owned()
    } else {
        mask_number(number)
    }
}

/// A phone number as a record shows it by default: enough to recognise, not to dial
/// (`+38050•••2233`). Short values keep only their last two characters.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        let tail: String = chars[chars.len().saturating_sub(2)..].iter().collect();
        return format!("{MASK}{tail}");
    }
    let head: String = chars[..(chars.len() - 4).min(6)].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{MASK}{tail}")
}

#[cfg(test)]
mod tests;
