//! Recipients and their fields, as merge tags see them, and the rules an
//! address must follow.

use crate::diagnostic::printable;
use crate::model::MergeFields;

/// One subscriber: address, name and any other CSV columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address mail goes to.
    pub email: String,
    /// Display name; may be empty.
    pub name: String,
    /// Other columns of the recipient's row, by header name.
    pub fields: Vec<(String, String)>,
}

impl Recipient {
    /// A recipient with only an address and a name.
    pub fn new(email: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            name: name.into(),
            fields: Vec::new(),
        }
    }

    /// The value of a field by name (`email`, `name` or a CSV column), when
    /// present and not blank.
    pub fn field(&self, name: &str) -> Option<&str> {
        MergeFields::field(self, name)
    }
}

impl MergeFields for Recipient {
    fn field(&self, name: &str) -> Option<&str> {
        let v = match name {
            "email" => Some(self.email.as_str()),
            "name" => Some(self.name.as_str()),
            _ => self
                .fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
        };
        v.map(str::trim).filter(|v| !v.is_empty())
    }
}

/// Why an address cannot be mailed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing was given.
    #[error("empty email, expected an address such as name@example.org")]
    Empty,
    /// A quoted local part (`"john doe"@…`): valid in RFC 5321, refused by
    /// most providers and by our transport.
    #[error("`{0}` has a quoted local part, expected a plain address such as john.doe@example.org")]
    Quoted(String),
    /// A domain without a dot and a top-level domain (`a@b`, `a@[10.0.0.1]`).
    #[error("`{0}` has no domain with a top-level part, expected name@example.org")]
    NoTld(String),
    /// The address does not parse.
    #[error("`{email}` is not a valid email address ({reason})")]
    Invalid {
        /// The address as given.
        email: String,
        /// The parser's complaint.
        reason: String,
    },
}

/// The one address rule, applied at import and for `--to`: lettre's parser
/// (IDN domains allowed), no quoted local part, and a domain with a dot and
/// a top-level part of letters (or an A-label).
pub fn check_address(email: &str) -> Result<(), AddressError> {
    if email.is_empty() {
        return Err(AddressError::Empty);
    }
    let parsed = email
        .parse::<lettre::Address>()
        .map_err(|e| AddressError::Invalid {
            email: printable(email),
            reason: e.to_string(),
        })?;
    if parsed.user().starts_with('"') {
        return Err(AddressError::Quoted(printable(email)));
    }
    let tld = parsed.domain().rsplit_once('.').map(|(_, t)| t);
    let tld_ok = tld.is_some_and(|t| {
        t.len() >= 2 && (t.chars().all(char::is_alphabetic) || t.starts_with("xn--"))
    });
    if !tld_ok {
        return Err(AddressError::NoTld(printable(email)));
    }
    Ok(())
}

/// The key two addresses are the same recipient by.
pub fn address_key(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_address() {
        for ok in [
            "a@example.org",
            "anna.schmidt+news@mail.example.de",
            "zoë@bücher.example",
            "x@example.xn--p1ai",
        ] {
            assert_eq!(check_address(ok), Ok(()), "{ok}");
        }
        assert!(matches!(
            check_address("\"john doe\"@example.org"),
            Err(AddressError::Quoted(_))
        ));
        for bad in ["a@b", "a@localhost", "a@[10.0.0.1]", "a@example.1"] {
            assert!(
                matches!(
                    check_address(bad),
                    Err(AddressError::NoTld(_)) | Err(AddressError::Invalid { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            check_address("bob@"),
            Err(AddressError::Invalid { .. })
        ));
        assert_eq!(check_address(""), Err(AddressError::Empty));
        let forged = check_address("a@example.org\r\n2025-01-17T05:00:00Z sent").unwrap_err();
        assert!(!forged.to_string().contains(['\r', '\n']), "{forged}");
    }
}
