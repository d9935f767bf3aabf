//! Recipients and their fields, as merge tags see them, and the rules an
//! address must follow.

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
    /// The address does not parse.
    #[error("`{email}` is not a valid email address ({reason})")]
    Invalid {
        /// The address as given.
        email: String,
        /// The parser's complaint.
        reason: String,
    },
}

/// Checks an address with lettre's parser (IDN domains allowed).
pub fn check_address(email: &str) -> Result<(), AddressError> {
    if email.is_empty() {
        return Err(AddressError::Empty);
    }
    email
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|e| AddressError::Invalid {
            email: email.to_string(),
            reason: e.to_string(),
        })
}

/// The key two addresses are the same recipient by.
pub fn address_key(email: &str) -> String {
    email.trim().to_lowercase()
}
