//! The life of a subscription: which approvals a new one needs, and which changes each kind of approver may
//! make from each state. Plain functions over states, so every path is unit tested.
//!
//! ```text
//!   request ──► pending_tenant ──(tenant admin approves)──► pending_platform ──(platform admin)──► active
//!       │              │                                          │                               │  ▲
//!       │              └──────────────(reject)───► rejected ◄─────┘                      suspend │  │ resume
//!       └──(no approval needed)──────────────────────────────────────────────────────────► active ▼  │
//!                                                                                            suspended
//!   any live state ──(cancel)──► cancelled
//! ```
//! A plan that requires approval starts at `pending_tenant`; a restricted model additionally needs a platform
//! admin. A platform admin's approval satisfies both stages at once.

use crate::{time::Millis, DomainError};
use serde::{Deserialize, Serialize};
use std::fmt;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SubscriptionState))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    PendingTenant,
    PendingPlatform,
    Active,
    Suspended,
    Rejected,
    Cancelled,
}

impl State {
    pub const ALL: [State; 6] = [
        Self::PendingTenant,
        Self::PendingPlatform,
        Self::Active,
        Self::Suspended,
        Self::Rejected,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingTenant => "pending_tenant",
            Self::PendingPlatform => "pending_platform",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::PendingTenant => "Awaiting tenant approval",
            Self::PendingPlatform => "Awaiting platform approval",
            Self::Active => "Active",
            Self::Suspended => "Suspended",
            Self::Rejected => "Rejected",
            Self::Cancelled => "Cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn is_pending(self) -> bool {
        matches!(self, Self::PendingTenant | Self::PendingPlatform)
    }

    /// Live subscriptions block a second one for the same team and model.
    pub fn is_live(self) -> bool {
        !matches!(self, Self::Rejected | Self::Cancelled)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state a new subscription starts in.
pub fn initial_state(plan_requires_approval: bool, model_restricted: bool) -> State {
    if plan_requires_approval {
        State::PendingTenant
    } else if model_restricted {
        State::PendingPlatform
    } else {
        State::Active
    }
}

/// A change someone asks for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SubscriptionChange))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Approve,
    Reject,
    Suspend,
    Resume,
    Cancel,
}

impl Change {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "approve" => Ok(Self::Approve),
            "reject" => Ok(Self::Reject),
            "suspend" => Ok(Self::Suspend),
            "resume" => Ok(Self::Resume),
            "cancel" => Ok(Self::Cancel),
            other => Err(DomainError::invalid(format!(
                "unknown change '{other}': use approve, reject, suspend, resume or cancel"
            ))),
        }
    }
    fn verb(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Cancel => "cancel",
        }
    }
}

/// What the person asking is, for this subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approver {
    pub platform_admin: bool,
    pub tenant_admin: bool,
    /// Requested the subscription, or is a developer in its team: may cancel it.
    pub team_developer: bool,
}

/// Applies `change` to a subscription in `state`: the new state, or why not.
pub fn transition(
    state: State,
    change: Change,
    who: Approver,
    model_restricted: bool,
) -> Result<State, DomainError> {
    let may_tenant = who.tenant_admin || who.platform_admin;
    let denied = || DomainError::forbidden(format!("{} this subscription", change.verb()));
    let invalid = || {
        DomainError::conflict(format!(
            "a subscription that is {} cannot be {}",
            state.label().to_lowercase(),
            match change {
                Change::Approve => "approved",
                Change::Reject => "rejected",
                Change::Suspend => "suspended",
                Change::Resume => "resumed",
                Change::Cancel => "cancelled",
            }
        ))
    };
    match (state, change) {
        (State::PendingTenant, Change::Approve) if may_tenant => {
            Ok(if model_restricted && !who.platform_admin {
                State::PendingPlatform
            } else {
                State::Active
            })
        }
        (State::PendingPlatform, Change::Approve) if who.platform_admin => Ok(State::Active),
        (State::PendingTenant, Change::Reject) if may_tenant => Ok(State::Rejected),
        (State::PendingPlatform, Change::Reject) if who.platform_admin => Ok(State::Rejected),
        (State::PendingTenant | State::PendingPlatform, Change::Approve | Change::Reject) => {
            Err(denied())
        }
        (State::Active, Change::Suspend) if may_tenant => Ok(State::Suspended),
        (State::Suspended, Change::Resume) if may_tenant => Ok(State::Active),
        (State::Active, Change::Suspend) | (State::Suspended, Change::Resume) => Err(denied()),
        (s, Change::Cancel) if s.is_live() && (may_tenant || who.team_developer) => {
            Ok(State::Cancelled)
        }
        (s, Change::Cancel) if s.is_live() => Err(denied()),
        _ => Err(invalid()),
    }
}

/// Whether a change must carry a reason (rejecting and suspending tell the team why).
pub fn needs_reason(change: Change) -> bool {
    matches!(change, Change::Reject | Change::Suspend)
}

/// A subscription as lists and pages show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionView {
    pub id: String,
    pub tenant_id: String,
    pub team_id: String,
    pub team_name: String,
    pub model_id: String,
    pub model_name: String,
    /// The model's deprecation or retirement notice, shown beside the subscription.
    pub model_notice: Option<String>,
    pub plan_id: String,
    pub plan_name: String,
    pub state: State,
    pub note: String,
    pub reason: String,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub active_keys: u64,
}

/// Filters for subscription lists.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SubscriptionFilter {
    #[serde(default)]
    pub search: String,
    /// Empty: any state; "pending": either pending stage.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub team_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLATFORM: Approver = Approver {
        platform_admin: true,
        tenant_admin: false,
        team_developer: false,
    };
    const TENANT: Approver = Approver {
        platform_admin: false,
        tenant_admin: true,
        team_developer: false,
    };
    const DEV: Approver = Approver {
        platform_admin: false,
        tenant_admin: false,
        team_developer: true,
    };
    const OUTSIDER: Approver = Approver {
        platform_admin: false,
        tenant_admin: false,
        team_developer: false,
    };

    #[test]
    fn approvals_needed_follow_plan_and_visibility() {
        assert_eq!(initial_state(false, false), State::Active);
        assert_eq!(initial_state(true, false), State::PendingTenant);
        assert_eq!(initial_state(false, true), State::PendingPlatform);
        assert_eq!(initial_state(true, true), State::PendingTenant);
    }

    #[test]
    fn restricted_models_need_both_stages_unless_a_platform_admin_approves() {
        let s = transition(State::PendingTenant, Change::Approve, TENANT, true).unwrap();
        assert_eq!(s, State::PendingPlatform);
        assert!(matches!(
            transition(s, Change::Approve, TENANT, true),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            transition(s, Change::Approve, PLATFORM, true).unwrap(),
            State::Active
        );
        assert_eq!(
            transition(State::PendingTenant, Change::Approve, PLATFORM, true).unwrap(),
            State::Active
        );
        assert_eq!(
            transition(State::PendingTenant, Change::Approve, TENANT, false).unwrap(),
            State::Active
        );
    }

    #[test]
    fn developers_cannot_approve_but_can_cancel() {
        for change in [Change::Approve, Change::Reject] {
            assert!(matches!(
                transition(State::PendingTenant, change, DEV, false),
                Err(DomainError::Forbidden(_))
            ));
        }
        assert!(matches!(
            transition(State::Active, Change::Suspend, DEV, false),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            transition(State::PendingTenant, Change::Cancel, DEV, false).unwrap(),
            State::Cancelled
        );
        assert!(matches!(
            transition(State::Active, Change::Cancel, OUTSIDER, false),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn suspend_and_resume_round_trip() {
        let s = transition(State::Active, Change::Suspend, TENANT, false).unwrap();
        assert_eq!(s, State::Suspended);
        assert_eq!(
            transition(s, Change::Resume, TENANT, false).unwrap(),
            State::Active
        );
    }

    #[test]
    fn finished_subscriptions_stay_finished() {
        for end in [State::Rejected, State::Cancelled] {
            for change in [
                Change::Approve,
                Change::Reject,
                Change::Suspend,
                Change::Resume,
                Change::Cancel,
            ] {
                assert!(
                    matches!(
                        transition(end, change, PLATFORM, false),
                        Err(DomainError::Conflict(_))
                    ),
                    "{end} {change:?}"
                );
            }
        }
        assert!(matches!(
            transition(State::Active, Change::Approve, PLATFORM, false),
            Err(DomainError::Conflict(_))
        ));
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("weird"), None);
    }
}
