//! Plans: the limits a subscription runs under, which models a plan covers, and how a plan's limits resolve
//! for one model (the plan's defaults, overridden per model).

use crate::{grant::Limits, text, DomainError};
use serde::{Deserialize, Serialize};

/// Per-model overrides of a plan's limits: None keeps the plan's value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LimitOverride {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    pub max_concurrent: Option<u32>,
    pub monthly_tokens: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanModel {
    pub model_id: String,
    pub overrides: LimitOverride,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The plan's own limits (None = unlimited).
    pub limits: Limits,
    /// True: every model; false: only those in `models`.
    pub all_models: bool,
    pub models: Vec<PlanModel>,
    pub requires_approval: bool,
    /// Archived plans keep their subscriptions but take no new ones.
    pub archived: bool,
    /// Scheduling tier, 0 to [`MAX_TIER`]: on engines that schedule by priority, a higher tier's requests are
    /// scheduled first (the gateway sends vLLM's `priority` from it).
    #[serde(default)]
    pub tier: u8,
}

/// The highest scheduling tier a plan may have.
pub const MAX_TIER: u8 = 9;

/// vLLM's `priority` for a plan's tier (lower is scheduled earlier; 0 is the engine's default). None for tier 0, so
/// the default plan sends nothing and runs on engines without priority scheduling too (vLLM refuses a non-zero
/// `priority` unless started with `--scheduling-policy priority`).
pub fn engine_priority(tier: u8) -> Option<i32> {
    (tier > 0).then(|| -i32::from(tier.min(MAX_TIER)))
}

impl PlanView {
    pub fn covers(&self, model_id: &str) -> bool {
        self.all_models || self.models.iter().any(|m| m.model_id == model_id)
    }

    /// The limits a subscription to `model_id` under this plan runs with.
    pub fn limits_for(&self, model_id: &str) -> Limits {
        let o = self
            .models
            .iter()
            .find(|m| m.model_id == model_id)
            .map(|m| m.overrides)
            .unwrap_or_default();
        Limits {
            requests_per_minute: o.requests_per_minute.or(self.limits.requests_per_minute),
            tokens_per_minute: o.tokens_per_minute.or(self.limits.tokens_per_minute),
            max_concurrent: o.max_concurrent.or(self.limits.max_concurrent),
            monthly_tokens: o.monthly_tokens.or(self.limits.monthly_tokens),
        }
    }

    /// Whether a new subscription may choose this plan for `model_id`.
    pub fn check_offered_for(&self, model_id: &str) -> Result<(), DomainError> {
        if self.archived {
            return Err(DomainError::invalid(format!(
                "the plan '{}' is archived and takes no new subscriptions",
                self.name
            )));
        }
        if !self.covers(model_id) {
            return Err(DomainError::invalid(format!(
                "the plan '{}' does not cover {model_id}",
                self.name
            )));
        }
        Ok(())
    }
}

/// A plan as submitted by an admin (limits as typed: empty means unlimited).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlanInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, deserialize_with = "limit_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1))]
    pub requests_per_minute: String,
    #[serde(default, deserialize_with = "limit_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1))]
    pub tokens_per_minute: String,
    #[serde(default, deserialize_with = "limit_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1))]
    pub max_concurrent: String,
    #[serde(default, deserialize_with = "limit_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1))]
    pub monthly_tokens: String,
    /// Comma-separated model ids; empty means every model.
    #[serde(default)]
    pub models: String,
    #[serde(default)]
    pub requires_approval: bool,
    /// Scheduling tier, 0 (default) to 9: a higher tier is scheduled first on engines with priority scheduling.
    #[serde(default, deserialize_with = "limit_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u8>, minimum = 0, maximum = 9))]
    pub tier: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidPlan {
    pub name: String,
    pub description: String,
    pub limits: Limits,
    pub all_models: bool,
    pub models: Vec<String>,
    pub requires_approval: bool,
    pub tier: u8,
}

/// A limit as a client sends it: a JSON number (what API clients send), a string (what the portal's forms post,
/// and what the API took before numbers; still accepted), or null for unlimited. Kept as text for `parse_limit`,
/// which gives every shape the same validation and the same error.
fn limit_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Limit;
    impl serde::de::Visitor<'_> for Limit {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a positive whole number, or null for unlimited")
        }
        fn visit_u64<E>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_str<E>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_none<E>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_unit<E>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    d.deserialize_any(Limit)
}

/// An optional positive limit as typed in a form: "" is unlimited; "1,000" and "1_000" are allowed.
pub fn parse_limit<T: TryFrom<u64>>(field: &str, raw: &str) -> Result<Option<T>, DomainError> {
    let cleaned: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ',' | '_' | ' '))
        .collect();
    if cleaned.is_empty() {
        return Ok(None);
    }
    let bad = || {
        DomainError::invalid(format!(
            "{field} must be a positive whole number, or empty for unlimited"
        ))
    };
    let n: u64 = cleaned.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    T::try_from(n).map(Some).map_err(|_| bad())
}

/// A scheduling tier as typed: "" is 0.
fn parse_tier(raw: &str) -> Result<u8, DomainError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(0);
    }
    raw.parse::<u8>()
        .ok()
        .filter(|t| *t <= MAX_TIER)
        .ok_or_else(|| {
            DomainError::invalid(format!(
                "The scheduling tier must be a whole number from 0 to {MAX_TIER}"
            ))
        })
}

impl PlanInput {
    pub fn validate(&self) -> Result<ValidPlan, DomainError> {
        let mut models: Vec<String> = Vec::new();
        for id in self
            .models
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let id = crate::catalog::model_id("A covered model id", id)?;
            if !models.contains(&id) {
                models.push(id);
            }
        }
        Ok(ValidPlan {
            name: text::name("The plan name", &self.name, 60)?,
            description: self.description.trim().chars().take(1000).collect(),
            limits: Limits {
                requests_per_minute: parse_limit("Requests per minute", &self.requests_per_minute)?,
                tokens_per_minute: parse_limit("Tokens per minute", &self.tokens_per_minute)?,
                max_concurrent: parse_limit("Concurrent requests", &self.max_concurrent)?,
                monthly_tokens: parse_limit("The monthly token quota", &self.monthly_tokens)?,
            },
            all_models: models.is_empty(),
            models,
            requires_approval: self.requires_approval,
            tier: parse_tier(&self.tier)?,
        })
    }
}

/// Per-model overrides as typed (empty keeps the plan's value).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OverrideInput {
    #[serde(default, deserialize_with = "limit_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1))]
    pub requests_per_minute: String,
    #[serde(default, deserialize_with = "limit_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1))]
    pub tokens_per_minute: String,
    #[serde(default, deserialize_with = "limit_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1))]
    pub max_concurrent: String,
    #[serde(default, deserialize_with = "limit_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1))]
    pub monthly_tokens: String,
}

impl OverrideInput {
    pub fn validate(&self) -> Result<LimitOverride, DomainError> {
        Ok(LimitOverride {
            requests_per_minute: parse_limit("Requests per minute", &self.requests_per_minute)?,
            tokens_per_minute: parse_limit("Tokens per minute", &self.tokens_per_minute)?,
            max_concurrent: parse_limit("Concurrent requests", &self.max_concurrent)?,
            monthly_tokens: parse_limit("The monthly token quota", &self.monthly_tokens)?,
        })
    }
}

/// "1.2M", "60", "unlimited": how limits read in the portal.
pub fn limit_label(v: Option<u64>) -> String {
    match v {
        None => "unlimited".into(),
        Some(n) if n >= 1_000_000 && n % 100_000 == 0 => format!("{}M", trim_zero(n as f64 / 1e6)),
        Some(n) if n >= 10_000 && n % 100 == 0 => format!("{}k", trim_zero(n as f64 / 1e3)),
        Some(n) => n.to_string(),
    }
}

fn trim_zero(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn limits_arrive_as_numbers_strings_or_null() {
        let p: super::PlanInput = serde_json::from_str(
            r#"{"name": "P", "requests_per_minute": 10000, "tokens_per_minute": "2,000", "max_concurrent": null}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let v = p.validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.limits.requests_per_minute, Some(10_000));
        assert_eq!(v.limits.tokens_per_minute, Some(2_000));
        assert_eq!(v.limits.max_concurrent, None);
        let negative: super::OverrideInput = serde_json::from_str(r#"{"requests_per_minute": -5}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            negative.validate().is_err(),
            "a negative number gets the same error as bad text"
        );
        let fraction: super::OverrideInput =
            serde_json::from_str(r#"{"monthly_tokens": 1.5}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(fraction.validate().is_err());
        assert!(
            serde_json::from_str::<super::OverrideInput>(r#"{"max_concurrent": [1]}"#).is_err()
        );
    }

    use super::*;

    fn plan() -> PlanView {
        PlanView {
            id: "plan_1".into(),
            name: "Team".into(),
            description: String::new(),
            limits: Limits {
                requests_per_minute: Some(60),
                tokens_per_minute: Some(100_000),
                max_concurrent: None,
                monthly_tokens: Some(10_000_000),
            },
            all_models: false,
            models: vec![
                PlanModel {
                    model_id: "llama-8b".into(),
                    overrides: LimitOverride::default(),
                },
                PlanModel {
                    model_id: "llama-70b".into(),
                    overrides: LimitOverride {
                        tokens_per_minute: Some(20_000),
                        max_concurrent: Some(2),
                        ..Default::default()
                    },
                },
            ],
            requires_approval: false,
            archived: false,
            tier: 0,
        }
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let p = plan();
        assert_eq!(
            p.limits_for("llama-70b"),
            Limits {
                requests_per_minute: Some(60),
                tokens_per_minute: Some(20_000),
                max_concurrent: Some(2),
                monthly_tokens: Some(10_000_000)
            }
        );
        assert_eq!(p.limits_for("llama-8b").tokens_per_minute, Some(100_000));
    }

    #[test]
    fn a_plan_offers_only_covered_models_and_not_when_archived() {
        let mut p = plan();
        assert!(p.check_offered_for("llama-8b").is_ok());
        assert!(p
            .check_offered_for("mistral")
            .unwrap_err()
            .to_string()
            .contains("does not cover"));
        p.all_models = true;
        assert!(p.check_offered_for("mistral").is_ok());
        p.archived = true;
        assert!(p
            .check_offered_for("llama-8b")
            .unwrap_err()
            .to_string()
            .contains("archived"));
    }

    #[test]
    fn limits_parse_from_forms() {
        assert_eq!(parse_limit::<u32>("x", "").unwrap(), None);
        assert_eq!(parse_limit::<u32>("x", " 1,000 ").unwrap(), Some(1000));
        assert!(parse_limit::<u32>("x", "0").is_err());
        assert!(parse_limit::<u32>("x", "-5").is_err());
        assert!(parse_limit::<u32>("x", "99999999999").is_err(), "over u32");
        assert_eq!(
            parse_limit::<u64>("x", "99999999999").unwrap(),
            Some(99_999_999_999)
        );
    }

    #[test]
    fn input_without_models_covers_all() {
        let v = PlanInput {
            name: "Free".into(),
            requests_per_minute: "10".into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(v.all_models && v.models.is_empty());
        let v = PlanInput {
            name: "Pro".into(),
            models: "a, b, a".into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(
            (v.all_models, v.models),
            (false, vec!["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn tiers_validate_and_map_to_engine_priorities() {
        let tier = |t: &str| {
            PlanInput {
                name: "P".into(),
                tier: t.into(),
                ..Default::default()
            }
            .validate()
            .map(|v| v.tier)
        };
        assert_eq!(tier("").unwrap(), 0);
        assert_eq!(tier(" 3 ").unwrap(), 3);
        assert!(tier("10").is_err() && tier("-1").is_err() && tier("x").is_err());
        let json: PlanInput = serde_json::from_str(r#"{"name":"P","tier":2}"#).unwrap();
        assert_eq!(json.validate().unwrap().tier, 2);
        assert_eq!(engine_priority(0), None, "the default tier sends nothing");
        assert_eq!(engine_priority(1), Some(-1));
        assert!(
            engine_priority(9) < engine_priority(1),
            "higher tier, earlier"
        );
    }

    #[test]
    fn limit_labels_read_well() {
        assert_eq!(limit_label(None), "unlimited");
        assert_eq!(limit_label(Some(60)), "60");
        assert_eq!(limit_label(Some(100_000)), "100k");
        assert_eq!(limit_label(Some(1_500_000)), "1.5M");
        assert_eq!(limit_label(Some(12_345)), "12345");
    }
}
