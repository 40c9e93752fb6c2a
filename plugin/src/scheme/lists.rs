//! List fields: those [`super::fields::FIELDS`] marks as lists (`fallback`,
//! `allowed_prefixes`, `allowed_sip_domains`, `signing_secret`, `api_tokens`).
//!
//! A list field is either one key (`fallback = "101"`, or comma-separated for the
//! allowlists) or indexed keys (`fallback.0`, `fallback.1`, …, what a TOML array flattens
//! to), at most [`MAX_LIST_LEN`] entries; an index given twice is an error. The entries are
//! kept in a `Vec` rather than a map: the lists are a handful of entries, and every map type
//! costs component size.

use super::{SchemeError, invalid};

/// Most entries in a list field.
pub const MAX_LIST_LEN: usize = 32;

/// The entries of list fields as they come, `(field, index, key, value)`.
#[derive(Default)]
pub(crate) struct Lists(Vec<(&'static str, usize, String, String)>);

impl Lists {
    /// Take `key = value` if `key` belongs to a list field: `Ok(true)` when taken,
    /// `Ok(false)` for any other key, an error naming the key when its index is not a list
    /// index, is repeated, or its field already has [`MAX_LIST_LEN`] entries.
    pub(crate) fn offer(&mut self, key: &str, value: &str) -> Result<bool, SchemeError> {
        let Some((field, index)) = list_key(key)? else {
            return Ok(false);
        };
        let mut same_field = self.0.iter().filter(|e| e.0 == field);
        if same_field.clone().count() >= MAX_LIST_LEN || same_field.any(|e| e.1 == index) {
            return Err(invalid(
                key,
                format!("repeated, or more than {MAX_LIST_LEN} entries"),
            ));
        }
        self.0
            .push((field, index, key.to_owned(), value.to_owned()));
        Ok(true)
    }

    /// The `(key, value)` entries of `field` in index order.
    pub(crate) fn take(&mut self, field: &str) -> Vec<(String, String)> {
        let mut entries: Vec<_> = self.0.extract_if(.., |e| e.0 == field).collect();
        // Indices are unique (a repeated one is refused), so any sort gives the one order.
        entries.sort_unstable_by_key(|e| e.1);
        entries
            .into_iter()
            .map(|(_, _, key, value)| (key, value))
            .collect()
    }
}

/// `Some((field, index))` for a list field's key: `fallback` is index 0, `fallback.2` index 2.
fn list_key(key: &str) -> Result<Option<(&'static str, usize)>, SchemeError> {
    let Some(field) = super::fields::of(key).filter(|f| f.list).map(|f| f.name) else {
        return Ok(None);
    };
    if key == field {
        return Ok(Some((field, 0)));
    }
    // `of` found a list item: the key is `field.` and an index to judge.
    let index = &key[field.len() + 1..];
    let index = index
        .parse::<usize>()
        .ok()
        .filter(|i| *i < MAX_LIST_LEN)
        .ok_or_else(|| {
            invalid(
                key,
                format!("`{index}` is not a list index below {MAX_LIST_LEN}"),
            )
        })?;
    Ok(Some((field, index)))
}

/// The items of a list field's entries, each with the key it came from: an entry may itself
/// be comma-separated (`allowed_prefixes = "+380, +48"`).
pub(crate) fn list_items(entries: Vec<(String, String)>) -> Vec<(String, String)> {
    entries
        .into_iter()
        .flat_map(|(key, value)| {
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| (key.clone(), item.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_and_single_keys_in_index_order() {
        let mut lists = Lists::default();
        for (key, value) in [
            ("fallback.2", "c"),
            ("allowed_prefixes", "380, 48"),
            ("fallback.0", "a"),
            ("url", "http://crm/"),
        ] {
            assert_eq!(lists.offer(key, value).unwrap(), key != "url", "{key}");
        }
        assert_eq!(
            lists.take("fallback"),
            [
                ("fallback.0".to_owned(), "a".to_owned()),
                ("fallback.2".into(), "c".into())
            ]
        );
        assert!(lists.take("fallback").is_empty());
        assert_eq!(
            list_items(lists.take("allowed_prefixes")),
            [
                ("allowed_prefixes".to_owned(), "380".to_owned()),
                ("allowed_prefixes".into(), "48".into())
            ]
        );
    }

    #[test]
    fn repeated_and_out_of_range_indexes_name_the_key() {
        let mut lists = Lists::default();
        lists.offer("fallback", "a").unwrap();
        let repeated = lists.offer("fallback.0", "b").unwrap_err().to_string();
        assert!(repeated.contains("`fallback.0`") && repeated.contains("repeated"));
        for key in ["fallback.x", "fallback.32", "fallback.-1"] {
            let error = lists.offer(key, "a").unwrap_err().to_string();
            assert!(error.contains(&format!("`{key}`")), "{error}");
        }
    }
}
