//! API keys and personal access tokens over their life: expiry choices, rotation with a grace period, and the
//! state a key is in at a given moment. The secret format itself is in `secret`.

use crate::{time::Millis, DomainError};
use serde::{Deserialize, Serialize};

/// The longest a rotated key may stay valid beside its successor.
pub const MAX_GRACE_HOURS: u32 = 30 * 24;
/// The longest lifetime a key or token may be given.
pub const MAX_LIFETIME_DAYS: u32 = 366;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "until")]
pub enum KeyState {
    Active,
    /// Replaced by a rotation; still valid until the grace period ends.
    Rotating(Millis),
    Expired,
    Revoked,
}

impl KeyState {
    pub fn of(
        revoked_at: Option<Millis>,
        expires_at: Option<Millis>,
        rotated: bool,
        now: Millis,
    ) -> Self {
        if revoked_at.is_some() {
            Self::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else if let (true, Some(at)) = (rotated, expires_at) {
            Self::Rotating(at)
        } else {
            Self::Active
        }
    }
    pub fn usable(self) -> bool {
        matches!(self, Self::Active | Self::Rotating(_))
    }
    pub fn label(self) -> String {
        match self {
            Self::Active => "Active".into(),
            Self::Rotating(at) => format!("Rotated; valid until {}", at.format_utc()),
            Self::Expired => "Expired".into(),
            Self::Revoked => "Revoked".into(),
        }
    }
}

/// Expiry from a number of days as picked in a form ("" or "0" = never).
pub fn expiry_from_days(raw: &str, now: Millis) -> Result<Option<Millis>, DomainError> {
    let raw = raw.trim();
    if raw.is_empty() || raw == "0" || raw.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let days: u32 = raw
        .parse()
        .ok()
        .filter(|d| (1..=MAX_LIFETIME_DAYS).contains(d))
        .ok_or_else(|| {
            DomainError::invalid(format!(
                "the expiry must be 1 to {MAX_LIFETIME_DAYS} days, or never"
            ))
        })?;
    Ok(Some(now.plus_hours(days * 24)))
}

/// When a rotated key stops working: `grace_hours` from now (0 = at once), at most 30 days, and never later
/// than the key's own expiry.
pub fn rotation_deadline(
    grace_hours: u32,
    now: Millis,
    current_expiry: Option<Millis>,
) -> Result<Millis, DomainError> {
    if grace_hours > MAX_GRACE_HOURS {
        return Err(DomainError::invalid(
            "the grace period can be at most 30 days (720 hours)",
        ));
    }
    let deadline = now.plus_hours(grace_hours);
    Ok(match current_expiry {
        Some(e) if e < deadline => e,
        _ => deadline,
    })
}

/// Scopes of a personal access token. `write` includes `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    Read,
    Write,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            other => Err(DomainError::invalid(format!(
                "unknown scope '{other}': use read or write"
            ))),
        }
    }
    /// Whether a token with this scope may make a request that changes something (`writes`) or only reads.
    pub fn allows(self, writes: bool) -> bool {
        !writes || self == Self::Write
    }
}

/// An API key as lists show it: never the secret, only the prefix.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyView {
    pub id: String,
    pub subscription_id: String,
    pub name: String,
    /// `tg-<id>`: enough to recognise the key, useless to an attacker.
    pub prefix: String,
    pub created_by: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub state: KeyState,
    /// The key covers every live subscription of its team, present and future, besides its own.
    #[serde(default)]
    pub team_wide: bool,
    /// The other subscriptions of its team that the key covers (besides `subscription_id`), with their models.
    #[serde(default)]
    pub also: Vec<KeyCoverage>,
}

/// A subscription a key covers beyond the one it was made under.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCoverage {
    pub subscription_id: String,
    /// The model that subscription is for: what the key may send as `model` to reach it.
    pub model_id: String,
}

/// What the creator sees once: the full key. It cannot be shown again.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCreated {
    pub key: KeyView,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessTokenView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scope: TokenScope,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub state: KeyState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessTokenCreated {
    pub token: AccessTokenView,
    pub secret: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = Millis(1_000_000_000);

    #[test]
    fn states_by_precedence() {
        let later = Some(NOW.plus_hours(1));
        let earlier = Some(Millis(NOW.0 - 1));
        assert_eq!(KeyState::of(Some(NOW), later, true, NOW), KeyState::Revoked);
        assert_eq!(KeyState::of(None, earlier, true, NOW), KeyState::Expired);
        assert_eq!(
            KeyState::of(None, later, true, NOW),
            KeyState::Rotating(NOW.plus_hours(1))
        );
        assert_eq!(KeyState::of(None, later, false, NOW), KeyState::Active);
        assert_eq!(KeyState::of(None, None, false, NOW), KeyState::Active);
        assert!(KeyState::Rotating(NOW).usable() && !KeyState::Expired.usable());
    }

    #[test]
    fn rotation_grace_is_bounded_and_never_extends_a_key() {
        assert_eq!(rotation_deadline(0, NOW, None).unwrap(), NOW);
        assert_eq!(
            rotation_deadline(24, NOW, None).unwrap(),
            NOW.plus_hours(24)
        );
        assert_eq!(
            rotation_deadline(24, NOW, Some(NOW.plus_hours(2))).unwrap(),
            NOW.plus_hours(2)
        );
        assert!(rotation_deadline(MAX_GRACE_HOURS + 1, NOW, None).is_err());
    }

    #[test]
    fn expiry_choices() {
        assert_eq!(expiry_from_days("", NOW).unwrap(), None);
        assert_eq!(expiry_from_days("never", NOW).unwrap(), None);
        assert_eq!(
            expiry_from_days("30", NOW).unwrap(),
            Some(NOW.plus_hours(720))
        );
        assert!(expiry_from_days("400", NOW).is_err());
        assert!(expiry_from_days("soon", NOW).is_err());
    }

    #[test]
    fn read_tokens_cannot_write() {
        assert!(TokenScope::Read.allows(false) && !TokenScope::Read.allows(true));
        assert!(TokenScope::Write.allows(true));
        assert!(TokenScope::parse("admin").is_err());
    }
}
