//! briefing's own words per language: `templates/strings/<language>.toml`,
//! built into the binary. A language without a file falls back to its
//! base language (`de-AT` to `de`), then to English.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::Words;

/// The built-in string files, by language.
const FILES: [(&str, &str); 2] = [
    ("en", include_str!("../../templates/strings/en.toml")),
    ("de", include_str!("../../templates/strings/de.toml")),
];

/// One language's strings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strings {
    /// The footer's reason line; `{newsletter}` is the newsletter's name.
    pub reason: String,
    /// The greeting, with merge tags.
    pub salutation: String,
    /// Words around the issue.
    pub words: Words,
    /// Section headings by section key.
    pub labels: BTreeMap<String, String>,
}

/// The languages briefing has strings for.
pub fn languages() -> impl Iterator<Item = &'static str> + Clone {
    FILES.iter().map(|(l, _)| *l)
}

/// The built-in file for `language` or its base language, if there is one.
pub fn find(language: &str) -> Option<&'static str> {
    crate::model::best_language_match(language, languages(), |k| k)
}

/// The strings for `language`, falling back to English.
pub fn for_language(language: &str) -> Strings {
    let key = find(language).unwrap_or("en");
    let text = FILES
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(FILES[0].1, |(_, t)| *t);
    // The files are built in and checked by a test, so a parse failure is
    // a build defect; English is still the better answer than a panic.
    toml::from_str(text).unwrap_or_else(|_| english())
}

/// The English strings.
pub fn english() -> Strings {
    toml::from_str(FILES[0].1).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SectionKind;

    #[test]
    fn every_file_parses_and_labels_every_section() {
        for (lang, text) in FILES {
            let s: Strings = toml::from_str(text).unwrap_or_else(|e| panic!("{lang}: {e}"));
            for k in SectionKind::ALL {
                assert!(s.labels.contains_key(k.key()), "{lang} lacks {}", k.key());
            }
        }
    }

    #[test]
    fn regional_tags_fall_back_to_their_language() {
        assert_eq!(find("de-AT"), Some("de"));
        assert_eq!(find("fr"), None);
        assert_eq!(for_language("fr").words.unsubscribe, "Unsubscribe");
        assert_eq!(for_language("de").words.unsubscribe, "Abbestellen");
    }
}
