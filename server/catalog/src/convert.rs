//! Rows from the store into the domain's views. Stored enums were written from the domain's own `as_str`, so a
//! value that does not parse means a hand-edited database: it is logged and read as the most cautious value.

use tollgate_domain::{
    api_key::{KeyCoverage, KeyState, KeyView},
    catalog::{ModelStatus, ModelView, Price, Task, Visibility},
    grant::Limits,
    plan::{LimitOverride, PlanModel, PlanView},
    secret::SecretKind,
    subscription::{State, SubscriptionView},
    time::Millis,
};
use tollgate_store::{ApiKeyRow, ModelRow, PlanModelRow, PlanRow, SubscriptionRow};

fn list(csv: &str) -> Vec<String> {
    csv.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parsed<T>(what: &str, raw: &str, parse: impl Fn(&str) -> Option<T>, fallback: T) -> T {
    parse(raw).unwrap_or_else(|| {
        tracing::warn!(
            field = what,
            value = raw,
            "unreadable stored value; using the cautious default"
        );
        fallback
    })
}

pub fn model_view(r: ModelRow) -> ModelView {
    ModelView {
        task: parsed("task", &r.task, |s| Task::parse(s).ok(), Task::Chat),
        status: parsed(
            "status",
            &r.status,
            |s| ModelStatus::parse(s).ok(),
            ModelStatus::Retired,
        ),
        visibility: parsed(
            "visibility",
            &r.visibility,
            |s| Visibility::parse(s).ok(),
            Visibility::Restricted,
        ),
        tags: list(&r.tags),
        versions: list(&r.versions),
        input_price: Price(r.input_price_micros),
        output_price: Price(r.output_price_micros),
        sunset_at: r.sunset_at.map(Millis),
        created_at: Millis(r.created_at),
        updated_at: Millis(r.updated_at),
        id: r.id,
        display_name: r.display_name,
        family: r.family,
        provider: r.provider,
        description: r.description,
        parameters_millions: r.parameters_millions,
        context_length: r.context_length,
        license: r.license,
        replacement_id: r.replacement_id,
        upstream_name: r.upstream_name,
    }
}

fn u32_of(v: Option<i64>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
}

fn u64_of(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

/// Plans with their covered models; `models` may hold every plan's rows.
pub fn plan_views(plans: Vec<PlanRow>, models: &[PlanModelRow]) -> Vec<PlanView> {
    plans
        .into_iter()
        .map(|p| PlanView {
            models: models
                .iter()
                .filter(|m| m.plan_id == p.id)
                .map(|m| PlanModel {
                    model_id: m.model_id.clone(),
                    overrides: LimitOverride {
                        requests_per_minute: u32_of(m.requests_per_minute),
                        tokens_per_minute: u32_of(m.tokens_per_minute),
                        max_concurrent: u32_of(m.max_concurrent),
                        monthly_tokens: u64_of(m.monthly_tokens),
                    },
                })
                .collect(),
            limits: Limits {
                requests_per_minute: u32_of(p.requests_per_minute),
                tokens_per_minute: u32_of(p.tokens_per_minute),
                max_concurrent: u32_of(p.max_concurrent),
                monthly_tokens: u64_of(p.monthly_tokens),
            },
            all_models: p.all_models != 0,
            requires_approval: p.requires_approval != 0,
            archived: p.archived != 0,
            tier: u8::try_from(p.tier).unwrap_or(0),
            id: p.id,
            name: p.name,
            description: p.description,
        })
        .collect()
}

pub fn subscription_view(r: SubscriptionRow, model_notice: Option<String>) -> SubscriptionView {
    SubscriptionView {
        state: parsed(
            "subscription state",
            &r.state,
            State::parse,
            State::Suspended,
        ),
        created_at: Millis(r.created_at),
        updated_at: Millis(r.updated_at),
        active_keys: u64::try_from(r.active_keys).unwrap_or(0),
        model_notice,
        id: r.id,
        tenant_id: r.tenant_id,
        team_id: r.team_id,
        team_name: r.team_name,
        model_id: r.model_id,
        model_name: r.model_name,
        plan_id: r.plan_id,
        plan_name: r.plan_name,
        note: r.note,
        reason: r.reason,
        requested_by: r.requested_by_email,
        decided_by: r.decided_by_email,
    }
}

/// A key as lists show it, with the other subscriptions it covers (`also`).
pub fn key_view(r: ApiKeyRow, also: Vec<KeyCoverage>, now: Millis) -> KeyView {
    KeyView {
        team_wide: r.team_wide != 0,
        also,
        state: KeyState::of(
            r.revoked_at.map(Millis),
            r.expires_at.map(Millis),
            r.rotated_to.is_some(),
            now,
        ),
        prefix: format!("{}{}", SecretKind::ApiKey.prefix(), r.id),
        expires_at: r.expires_at.map(Millis),
        last_used_at: r.last_used_at.map(Millis),
        created_at: Millis(r.created_at),
        id: r.id,
        subscription_id: r.subscription_id,
        name: r.name,
        created_by: r.created_by_email,
    }
}
