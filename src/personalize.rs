//! Recipients and their fields, as merge tags see them.

use crate::render::Slot;

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

    /// What a slot becomes for this recipient (unescaped). Line breaks and
    /// other control characters become spaces: a value must never add
    /// lines to a message, and previews must show what the message holds.
    pub fn slot_value(&self, slot: &Slot, unsubscribe_url: &str) -> String {
        let v = match slot {
            Slot::UnsubscribeUrl => unsubscribe_url,
            Slot::Field(f) => match self.field(&f.name) {
                Some(v) => v,
                None => f.fallback.as_deref().unwrap_or_default(),
            },
        };
        v.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }
}
