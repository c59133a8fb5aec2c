//! Invitations: single-use links that expire. The link carries a random token; only its hash is stored.

use crate::{time::Millis, DomainError};
use serde::{Deserialize, Serialize};

/// How long an invitation link stays valid unless the inviter picks otherwise.
pub const DEFAULT_TTL_HOURS: u32 = 72;
/// The longest validity an inviter may pick (two weeks).
pub const MAX_TTL_HOURS: u32 = 24 * 14;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InvitationState {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// The stored facts of an invitation from which its state follows.
#[derive(Debug, Clone, Copy)]
pub struct InvitationFacts {
    pub expires_at: Millis,
    pub accepted_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl InvitationFacts {
    pub fn state(&self, now: Millis) -> InvitationState {
        if self.accepted_at.is_some() {
            InvitationState::Accepted
        } else if self.revoked_at.is_some() {
            InvitationState::Revoked
        } else if now >= self.expires_at {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }

    /// Whether the invitation can be accepted now; the error says why not, in the user's words.
    pub fn check_acceptable(&self, now: Millis) -> Result<(), DomainError> {
        match self.state(now) {
            InvitationState::Pending => Ok(()),
            InvitationState::Accepted => Err(DomainError::conflict(
                "this invitation has already been used",
            )),
            InvitationState::Revoked => Err(DomainError::conflict(
                "this invitation was withdrawn by an admin",
            )),
            InvitationState::Expired => Err(DomainError::conflict(
                "this invitation has expired: ask an admin of the tenant for a new one",
            )),
        }
    }
}

/// Validates the validity period an inviter asked for and returns the expiry instant.
pub fn expiry(now: Millis, ttl_hours: Option<u32>) -> Result<Millis, DomainError> {
    let hours = ttl_hours.unwrap_or(DEFAULT_TTL_HOURS);
    if hours == 0 || hours > MAX_TTL_HOURS {
        return Err(DomainError::invalid(format!(
            "an invitation must be valid for 1 to {MAX_TTL_HOURS} hours"
        )));
    }
    Ok(now.plus_hours(hours))
}

/// When an invitation names an email, only that person may accept it.
pub fn check_invitee(
    invited_email: Option<&str>,
    accepting_email: &str,
) -> Result<(), DomainError> {
    match invited_email {
        Some(invited) if !invited.eq_ignore_ascii_case(accepting_email) => {
            Err(DomainError::forbidden(format!(
                "accept an invitation sent to {invited} (you are signed in as {accepting_email})"
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = Millis(1_000_000);

    fn facts() -> InvitationFacts {
        InvitationFacts {
            expires_at: NOW.plus_hours(1),
            accepted_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_fresh_invitation_is_pending_and_acceptable() {
        assert_eq!(facts().state(NOW), InvitationState::Pending);
        assert!(facts().check_acceptable(NOW).is_ok());
    }

    #[test]
    fn used_revoked_and_expired_invitations_are_refused_with_a_reason() {
        let used = InvitationFacts {
            accepted_at: Some(NOW),
            ..facts()
        };
        let revoked = InvitationFacts {
            revoked_at: Some(NOW),
            ..facts()
        };
        let later = NOW.plus_hours(1);
        assert_eq!(used.state(NOW), InvitationState::Accepted);
        assert_eq!(revoked.state(NOW), InvitationState::Revoked);
        assert_eq!(facts().state(later), InvitationState::Expired);
        for (f, at, word) in [
            (used, NOW, "already"),
            (revoked, NOW, "withdrawn"),
            (facts(), later, "expired"),
        ] {
            match f.check_acceptable(at) {
                Err(DomainError::Conflict(msg)) => assert!(msg.contains(word), "{msg}"),
                other => panic!("expected a conflict, got {other:?}"),
            }
        }
    }

    #[test]
    fn expiry_defaults_and_bounds() {
        assert_eq!(expiry(NOW, None), Ok(NOW.plus_hours(DEFAULT_TTL_HOURS)));
        assert_eq!(expiry(NOW, Some(1)), Ok(NOW.plus_hours(1)));
        assert!(expiry(NOW, Some(0)).is_err());
        assert!(expiry(NOW, Some(MAX_TTL_HOURS + 1)).is_err());
    }

    #[test]
    fn an_addressed_invitation_only_fits_its_addressee() {
        assert!(check_invitee(Some("Ann@Example.com"), "ann@example.com").is_ok());
        assert!(check_invitee(None, "anyone@example.com").is_ok());
        assert!(matches!(
            check_invitee(Some("ann@example.com"), "bob@example.com"),
            Err(DomainError::Forbidden(_))
        ));
    }
}
