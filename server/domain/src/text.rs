//! Validation and normalisation of what users type: names, emails, slugs, passwords. Messages are written
//! for the person at the form.

use crate::DomainError;

pub const MIN_PASSWORD_LEN: usize = 10;
pub const MAX_PASSWORD_LEN: usize = 256;

/// A display name for a person, team or tenant: trimmed, 1 to `max` characters, no control characters.
pub fn name(field: &str, raw: &str, max: usize) -> Result<String, DomainError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(DomainError::invalid(format!("{field} is required")));
    }
    if v.chars().count() > max {
        return Err(DomainError::invalid(format!(
            "{field} must be at most {max} characters"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(DomainError::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(v.to_string())
}

/// An email address, lower-cased. Deliberately loose (one '@', a dot in the domain): the real check is that
/// mail arrives, which is the identity provider's business.
pub fn email(raw: &str) -> Result<String, DomainError> {
    let v = raw.trim().to_ascii_lowercase();
    let bad = || DomainError::invalid(format!("'{}' is not an email address", raw.trim()));
    let (local, domain) = v.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || v.len() > 254
        || v.chars().any(|c| c.is_whitespace() || c.is_control())
        || domain.contains('@')
    {
        return Err(bad());
    }
    Ok(v)
}

/// A URL-safe identifier: lower-case letters, digits and dashes, 2 to 40 characters, starting with a letter.
pub fn slug(raw: &str) -> Result<String, DomainError> {
    let v = raw.trim().to_ascii_lowercase();
    let ok = (2..=40).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && !v.ends_with('-')
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(v)
    } else {
        Err(DomainError::invalid(
            "the short name must be 2-40 lower-case letters, digits or dashes, starting with a letter",
        ))
    }
}

/// Turns a display name into a slug suggestion ("ACME Corp." -> "acme-corp").
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(40).collect()
}

/// A new password: long enough to resist guessing; anything else is the user's choice.
pub fn new_password(raw: &str) -> Result<(), DomainError> {
    let n = raw.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(DomainError::invalid(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(DomainError::invalid(format!(
            "the password must have at most {MAX_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("Team name", "  Search  ", 10), Ok("Search".into()));
        assert!(name("Team name", "   ", 10).is_err());
        assert!(name("Team name", "a-very-long-name", 10).is_err());
        assert!(name("Team name", "bad\u{0}name", 20).is_err());
    }

    #[test]
    fn emails_are_lower_cased_and_roughly_checked() {
        assert_eq!(email(" Ann@Example.COM "), Ok("ann@example.com".into()));
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@com",
            "ann@.com",
            "a b@example.com",
            "a@b@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs_follow_the_rule() {
        assert_eq!(slug("Acme-2"), Ok("acme-2".into()));
        for bad in ["a", "2acme", "acme_corp", "acme-", &"a".repeat(41)] {
            assert!(slug(bad).is_err(), "{bad}");
        }
        assert_eq!(slugify("ACME Corp."), "acme-corp");
        assert_eq!(slugify("  Über  Team "), "ber-team");
    }

    #[test]
    fn passwords_need_ten_characters() {
        assert!(new_password("short").is_err());
        assert!(new_password("long enough!").is_ok());
    }
}
