//! Secrets from the host's environment: a scheme value may say `${env:CRM_TOKEN}` instead of
//! holding the token (`Authorization = "Bearer ${env:CRM_TOKEN}"`, `signing_secret =
//! "${env:CRM_SIGNING_KEY}"`). The host resolves references when it prepares a scheme, since
//! the sandbox has no environment of its own; errors name the field and the variable, never a
//! value.

/// Resolve every `${env:NAME}` in the scheme's values. `Err` names the first field whose
/// variable is not set or whose reference is malformed.
pub fn resolve(pairs: Vec<(String, String)>) -> Result<Vec<(String, String)>, String> {
    resolve_with(pairs, |name| std::env::var(name).ok())
}

/// [`resolve`] with any lookup (tests use a fixed map).
pub fn resolve_with(
    pairs: Vec<(String, String)>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    pairs
        .into_iter()
        .map(|(key, value)| {
            let resolved = resolve_field(&key, &value, &lookup)?;
            Ok((key, resolved))
        })
        .collect()
}

/// Every field whose `${env:NAME}` cannot be resolved, one message each (what `callroute
/// check` lists), where [`resolve`] stops at the first.
pub fn problems(pairs: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| std::env::var(name).ok();
    pairs
        .iter()
        .filter_map(|(key, value)| resolve_field(key, value, &lookup).err())
        .collect()
}

/// What the `${env:NAME}` references among `pairs` resolve to now (the secrets' values; unset
/// and malformed references are left out).
pub fn referenced_values(pairs: &[(String, String)]) -> Vec<String> {
    let found = std::cell::RefCell::new(Vec::new());
    let lookup = |name: &str| {
        let value = std::env::var(name).ok();
        if let Some(value) = &value {
            found.borrow_mut().push(value.clone());
        }
        value
    };
    for (_, value) in pairs {
        let _ = resolve_value(value, &lookup);
    }
    found.into_inner()
}

fn resolve_field(
    key: &str,
    value: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    resolve_value(value, lookup).map_err(|reason| format!("scheme field `{key}`: {reason}"))
}

fn resolve_value(value: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let end = after
            .find('}')
            .ok_or_else(|| "unclosed `${env:` reference".to_string())?;
        let name = &after[..end];
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "`${{env:{name}}}` is not a valid environment variable name"
            ));
        }
        let secret =
            lookup(name).ok_or_else(|| format!("refers to ${{env:{name}}}, which is not set"))?;
        out.push_str(&secret);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "CRM_TOKEN").then(|| "t0ps3cret".to_string())
    }

    fn pair(k: &str, v: &str) -> Vec<(String, String)> {
        vec![(k.to_string(), v.to_string())]
    }

    #[test]
    fn references_are_replaced() {
        let resolved = resolve_with(
            pair("headers.Authorization", "Bearer ${env:CRM_TOKEN}"),
            lookup,
        )
        .unwrap();
        assert_eq!(resolved[0].1, "Bearer t0ps3cret");
        let resolved = resolve_with(
            pair("x", "${env:CRM_TOKEN}-${env:CRM_TOKEN} {caller} $5"),
            lookup,
        )
        .unwrap();
        assert_eq!(resolved[0].1, "t0ps3cret-t0ps3cret {caller} $5");
    }

    #[test]
    fn errors_name_the_field_and_variable_but_no_value() {
        let err = resolve_with(pair("headers.X-Key", "${env:MISSING}"), lookup).unwrap_err();
        assert_eq!(
            err,
            "scheme field `headers.X-Key`: refers to ${env:MISSING}, which is not set"
        );
        assert!(
            resolve_with(pair("k", "${env:CRM_TOKEN"), lookup)
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            resolve_with(pair("k", "${env:1X}"), lookup)
                .unwrap_err()
                .contains("not a valid")
        );
    }
}
