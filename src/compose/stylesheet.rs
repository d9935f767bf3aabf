//! The email's `<style>` block: optional enhancements (dark mode, narrow
//! screens) that Gmail keeps only within its size and nesting rules.

/// Why a stylesheet cannot be the email's `<style>` block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StylesheetError {
    /// A `/*` with no `*/`.
    #[error("a comment is not closed, expected `*/`")]
    UnclosedComment,
    /// The text would end the element early.
    #[error("it contains `</`, which would end the <style> element")]
    ClosesStyle,
    /// Gmail drops larger blocks.
    #[error("it is {0} bytes, over the {MAX_STYLESHEET_BYTES} Gmail keeps")]
    TooLarge(usize),
    /// Gmail drops a block with nested at-rules.
    #[error("an at-rule is nested in another block; Gmail then drops the whole <style>")]
    NestedAtRule,
}

// Gmail drops a <style> block with nested at-rules, so each @media stands
// alone. Everything here is optional: the email reads the same without it.
/// The stylesheet built into the binary: `templates/email.css` as it was
/// at build time, used when the config names none and the file is absent.
pub const DEFAULT_STYLESHEET: &str = include_str!("../../templates/email.css");

/// Gmail drops `<style>` blocks past about 16 KB (email-standards G3).
pub const MAX_STYLESHEET_BYTES: usize = 16 * 1024;

/// Checks a stylesheet for the `<style>` block and strips its comments,
/// which would otherwise travel in every copy. Says what is wrong when Gmail
/// would drop the block or the text could close the element.
pub fn prepare_stylesheet(css: &str) -> Result<String, StylesheetError> {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => return Err(StylesheetError::UnclosedComment),
        }
    }
    out.push_str(rest);
    let out: String = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if out.contains("</") {
        return Err(StylesheetError::ClosesStyle);
    }
    if out.len() > MAX_STYLESHEET_BYTES {
        return Err(StylesheetError::TooLarge(out.len()));
    }
    let mut depth = 0usize;
    for c in out.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '@' if depth > 0 => {
                return Err(StylesheetError::NestedAtRule);
            }
            _ => {}
        }
    }
    Ok(out)
}
