//! The playground: which models a signed-in user may try in the browser, under which subscription, and why the
//! others are not offered. Calls go through the gateway under the subscription (limits, metering) without an API
//! key: the portal's session authorizes them.

use crate::{
    catalog::{Price, Task},
    grant::Limits,
    subscription::State,
    TenantRole,
};
use serde::{Deserialize, Serialize};

/// One model as the playground offers it: under one subscription of one of the caller's teams, or not at all
/// (`why` says what is missing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaygroundChoice {
    pub model_id: String,
    pub model_name: String,
    pub task: Task,
    /// Per million tokens, from the catalog: what a reply costs.
    pub input_price: Price,
    pub output_price: Price,
    /// The subscription calls run under; None when the caller's teams have none for this model.
    pub subscription_id: Option<String>,
    pub team_name: String,
    pub plan_name: String,
    pub limits: Limits,
    /// Empty when the model can be used now; otherwise why not, in words.
    pub why: String,
}

impl PlaygroundChoice {
    pub fn usable(&self) -> bool {
        self.why.is_empty() && self.subscription_id.is_some()
    }
}

/// What the playground page starts from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlaygroundSetup {
    /// Usable choices first, then the others, each group by model name.
    pub choices: Vec<PlaygroundChoice>,
    /// This server's OpenAI-compatible base URL (`https://portal.example/v1`), for the copied code.
    pub api_base: String,
}

/// Why a subscription in `state` cannot be used in the playground by someone with `role`, or None when it can.
/// `member` is whether the caller acts for the subscription's team (a developer in it, a tenant or platform admin),
/// the same rule as for managing its API keys.
pub fn unusable_because(
    state: Option<State>,
    role: Option<TenantRole>,
    platform_admin: bool,
    member: bool,
) -> Option<&'static str> {
    if !platform_admin && role < Some(TenantRole::Developer) {
        return Some(
            "Viewers cannot use the playground: ask a tenant admin for the developer role.",
        );
    }
    match state {
        None => {
            Some("None of your teams is subscribed to this model: subscribe on its catalog page.")
        }
        Some(_) if !member => {
            Some("Only the subscribed team's developers and tenant admins can use it.")
        }
        Some(State::Active) => None,
        Some(State::PendingTenant) => {
            Some("The subscription is waiting for a tenant admin's approval.")
        }
        Some(State::PendingPlatform) => {
            Some("The subscription is waiting for a platform admin's approval.")
        }
        Some(State::Suspended) => Some("The subscription is suspended."),
        Some(State::Rejected | State::Cancelled) => {
            Some("The subscription was rejected or cancelled: subscribe again on the model's page.")
        }
    }
}

/// Of several subscriptions to one model, the one worth offering: active first, then waiting, then suspended,
/// then the rest.
pub fn preference(state: State) -> u8 {
    match state {
        State::Active => 0,
        State::PendingTenant | State::PendingPlatform => 1,
        State::Suspended => 2,
        State::Rejected | State::Cancelled => 3,
    }
}

/// What `prompt` and `completion` tokens cost at the given prices per million tokens, in the platform's currency.
pub fn cost(prompt: u64, completion: u64, input: Price, output: Price) -> f64 {
    let micro = prompt as f64 * input.0 as f64 + completion as f64 * output.0 as f64;
    micro / 1e12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_told_in_words() {
        let dev = Some(TenantRole::Developer);
        assert_eq!(
            unusable_because(Some(State::Active), dev, false, true),
            None
        );
        assert_eq!(
            unusable_because(Some(State::Active), Some(TenantRole::Admin), false, true),
            None
        );
        assert!(
            unusable_because(Some(State::Active), Some(TenantRole::Viewer), false, true)
                .is_some_and(|w| w.contains("Viewers"))
        );
        assert_eq!(
            unusable_because(Some(State::Active), None, true, true),
            None,
            "platform admins"
        );
        assert!(unusable_because(None, dev, false, false).is_some_and(|w| w.contains("subscribe")));
        assert!(unusable_because(Some(State::Active), dev, false, false)
            .is_some_and(|w| w.contains("team")));
        assert!(
            unusable_because(Some(State::PendingTenant), dev, false, true)
                .is_some_and(|w| w.contains("tenant admin's approval"))
        );
        assert!(
            unusable_because(Some(State::PendingPlatform), dev, false, true)
                .is_some_and(|w| w.contains("platform admin's approval"))
        );
        assert!(unusable_because(Some(State::Suspended), dev, false, true)
            .is_some_and(|w| w.contains("suspended")));
    }

    #[test]
    fn active_subscriptions_are_preferred() {
        let mut states = [
            State::Suspended,
            State::PendingTenant,
            State::Active,
            State::Cancelled,
        ];
        states.sort_by_key(|s| preference(*s));
        assert_eq!(states[0], State::Active);
        assert_eq!(states[1], State::PendingTenant);
        assert_eq!(states[3], State::Cancelled);
    }

    #[test]
    fn cost_is_per_million_tokens() {
        // 1,000 prompt tokens at 0.10 and 500 completion tokens at 0.20 per million.
        let c = cost(1_000, 500, Price(100_000), Price(200_000));
        assert!((c - 0.0002).abs() < 1e-12, "{c}");
        assert_eq!(cost(0, 0, Price(1), Price(1)), 0.0);
    }
}
