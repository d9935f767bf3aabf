//! Who an issue goes to: recipients and their fields, the address rules,
//! recipient lists (CSV), unsubscribe tokens, and the sources of
//! suppressions (provider exports, mailto requests).

pub mod lists;
pub mod recipient;
pub mod suppression;
pub mod token;
