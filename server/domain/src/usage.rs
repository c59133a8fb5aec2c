//! Usage records as the portal and the management API read them: one per gateway request.

use crate::time::Millis;
use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageView {
    pub id: String,
    pub request_id: String,
    pub at: Millis,
    pub tenant_id: String,
    pub team_id: String,
    pub subscription_id: String,
    pub key_id: String,
    pub model: String,
    /// The engine that answered last: platform admins only (an internal address); empty for everyone else.
    pub replica: String,
    pub endpoint: String,
    pub status: u16,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub streamed: bool,
    pub client_disconnected: bool,
}

/// Filters for usage lists; empty strings match everything.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UsageFilter {
    #[serde(default)]
    pub subscription_id: String,
    #[serde(default)]
    pub key_id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub team_id: String,
    pub from: Option<Millis>,
    pub until: Option<Millis>,
}
