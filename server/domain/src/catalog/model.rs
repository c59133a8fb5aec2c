//! A model in the catalog and the rules for editing one.

use crate::{text, time::Millis, DomainError};
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal, $label:literal;)+ }) => {
        $(#[$meta])*
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn label(self) -> &'static str {
                match self { $(Self::$variant => $label),+ }
            }
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                let s = s.trim().to_ascii_lowercase();
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let options: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    DomainError::invalid(format!(
                        "unknown {} '{s}': use one of {}", stringify!($name).to_lowercase(), options.join(", ")
                    ))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(
    /// What a model does, which decides the endpoint it is called on.
    Task {
        Chat => "chat", "Chat";
        Completion => "completion", "Completion";
        Embeddings => "embeddings", "Embeddings";
    }
);

string_enum!(
    /// Where a model is in its life: new models start in preview; deprecated ones name a sunset date and a
    /// replacement; retired ones can no longer be subscribed to or called.
    ModelStatus {
        Preview => "preview", "Preview";
        Available => "available", "Available";
        Deprecated => "deprecated", "Deprecated";
        Retired => "retired", "Retired";
    }
);

string_enum!(
    /// Who may subscribe: every tenant, or only with a platform admin's approval.
    Visibility {
        Open => "open", "Open to all tenants";
        Restricted => "restricted", "Restricted (needs platform approval)";
    }
);

/// A price per million tokens in micro-units of the platform currency (integers: no rounding drift).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Price(pub i64);

impl Price {
    /// Parses what an admin types: "0.20", "$0.2", "3".
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        let v = raw.trim().trim_start_matches('$');
        if v.is_empty() {
            return Ok(Self(0));
        }
        let bad = || DomainError::invalid(format!("{field} must be a price such as 0.20"));
        let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
        if frac.len() > 6 || whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac_digits: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        let scale = 10_i64.pow(6 - frac.len() as u32);
        if !(0..=1_000_000).contains(&whole) || frac.starts_with('-') {
            return Err(bad());
        }
        Ok(Self(whole * 1_000_000 + frac_digits * scale))
    }
}

impl fmt::Display for Price {
    /// "$0.20": two decimals, more only when needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1_000_000;
        let frac = self.0 % 1_000_000;
        let mut digits = format!("{frac:06}");
        while digits.len() > 2 && digits.ends_with('0') {
            digits.pop();
        }
        write!(f, "${whole}.{digits}")
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    /// The API model id, e.g. `llama-3.1-8b-instruct`.
    pub id: String,
    pub display_name: String,
    pub family: String,
    pub provider: String,
    /// Markdown, as written by the platform admin.
    pub description: String,
    pub parameters_millions: i64,
    pub context_length: i64,
    pub task: Task,
    pub license: String,
    pub tags: Vec<String>,
    pub versions: Vec<String>,
    pub input_price: Price,
    pub output_price: Price,
    pub status: ModelStatus,
    pub sunset_at: Option<Millis>,
    pub replacement_id: Option<String>,
    pub visibility: Visibility,
    /// The name the engines serve this model under (what the gateway sends upstream).
    pub upstream_name: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl ModelView {
    /// Whether new subscriptions may be made: not once a model is retired.
    pub fn subscribable(&self) -> bool {
        self.status != ModelStatus::Retired
    }

    /// "8B", "70B", "335M": the size label lists show.
    pub fn size_label(&self) -> String {
        let m = self.parameters_millions;
        match m {
            0 => "—".into(),
            m if m >= 1000 && m % 1000 == 0 => format!("{}B", m / 1000),
            m if m >= 1000 => format!("{:.1}B", m as f64 / 1000.0),
            m => format!("{m}M"),
        }
    }

    /// The warning shown wherever a deprecated or retired model appears.
    pub fn lifecycle_notice(&self) -> Option<String> {
        let replacement = self
            .replacement_id
            .as_deref()
            .map(|r| format!(" Use {r} instead."))
            .unwrap_or_default();
        match self.status {
            ModelStatus::Deprecated => Some(match self.sunset_at {
                Some(at) => format!("Deprecated: retires on {}.{replacement}", at.format_date()),
                None => format!("Deprecated.{replacement}"),
            }),
            ModelStatus::Retired => Some(format!("Retired: no longer served.{replacement}")),
            _ => None,
        }
    }
}

/// What an admin submits to create or edit a model, as typed. `validate` turns it into a checked model.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelInput {
    pub id: String,
    pub display_name: String,
    pub family: String,
    pub provider: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parameters_millions: i64,
    pub context_length: i64,
    pub task: String,
    #[serde(default)]
    pub license: String,
    /// Comma-separated.
    #[serde(default)]
    pub tags: String,
    /// Comma-separated.
    #[serde(default)]
    pub versions: String,
    #[serde(default)]
    pub input_price: String,
    #[serde(default)]
    pub output_price: String,
    pub status: String,
    /// `YYYY-MM-DD`, required for deprecated models.
    #[serde(default)]
    pub sunset_date: String,
    #[serde(default)]
    pub replacement_id: String,
    pub visibility: String,
    /// Defaults to the id.
    #[serde(default)]
    pub upstream_name: String,
}

/// A model that passed validation, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidModel {
    pub id: String,
    pub display_name: String,
    pub family: String,
    pub provider: String,
    pub description: String,
    pub parameters_millions: i64,
    pub context_length: i64,
    pub task: Task,
    pub license: String,
    pub tags: Vec<String>,
    pub versions: Vec<String>,
    pub input_price: Price,
    pub output_price: Price,
    pub status: ModelStatus,
    pub sunset_at: Option<Millis>,
    pub replacement_id: Option<String>,
    pub visibility: Visibility,
    pub upstream_name: String,
}

/// A model id: what clients put in `model`. Letters, digits and `.-_:/`, as in `meta-llama/Llama-3.1-8B`.
pub fn model_id(field: &str, raw: &str) -> Result<String, DomainError> {
    let v = raw.trim();
    let ok = (1..=128).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c));
    if ok {
        Ok(v.to_string())
    } else {
        Err(DomainError::invalid(format!(
            "{field} must be 1-128 letters, digits, '.', '-', '_', ':' or '/', starting with a letter or digit"
        )))
    }
}

fn list(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in raw.split(',').map(|t| t.trim().to_ascii_lowercase()) {
        if !item.is_empty() && !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

impl ModelInput {
    pub fn validate(&self) -> Result<ValidModel, DomainError> {
        let id = model_id("The model id", &self.id)?;
        let status = ModelStatus::parse(&self.status)?;
        let sunset_at = match self.sunset_date.trim() {
            "" => None,
            d => Some(Millis::parse_date(d).ok_or_else(|| {
                DomainError::invalid("the sunset date must be a date such as 2027-03-31")
            })?),
        };
        if status == ModelStatus::Deprecated && sunset_at.is_none() {
            return Err(DomainError::invalid(
                "a deprecated model needs a sunset date, so subscribers know when it goes",
            ));
        }
        let replacement_id = match self.replacement_id.trim() {
            "" => None,
            r => Some(model_id("The replacement model", r)?),
        };
        if replacement_id.as_deref() == Some(id.as_str()) {
            return Err(DomainError::invalid("a model cannot replace itself"));
        }
        if !(1..=10_000_000).contains(&self.context_length) {
            return Err(DomainError::invalid(
                "the context length must be between 1 and 10,000,000 tokens",
            ));
        }
        if !(0..=100_000_000).contains(&self.parameters_millions) {
            return Err(DomainError::invalid("the parameter count is out of range"));
        }
        if self.description.len() > 20_000 {
            return Err(DomainError::invalid(
                "the description must be at most 20,000 characters",
            ));
        }
        let tags = list(&self.tags);
        if tags.len() > 20 || tags.iter().any(|t| t.len() > 32) {
            return Err(DomainError::invalid(
                "use at most 20 tags of at most 32 characters each",
            ));
        }
        let upstream_name = match self.upstream_name.trim() {
            "" => id.clone(),
            u => model_id("The upstream model name", u)?,
        };
        Ok(ValidModel {
            display_name: text::name("The display name", &self.display_name, 100)?,
            family: text::name("The family", &self.family, 60)?,
            provider: text::name("The provider", &self.provider, 60)?,
            description: self.description.trim().to_string(),
            parameters_millions: self.parameters_millions,
            context_length: self.context_length,
            task: Task::parse(&self.task)?,
            license: self.license.trim().chars().take(100).collect(),
            tags,
            versions: list(&self.versions),
            input_price: Price::parse("The input price", &self.input_price)?,
            output_price: Price::parse("The output price", &self.output_price)?,
            status,
            sunset_at,
            replacement_id,
            visibility: Visibility::parse(&self.visibility)?,
            upstream_name,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ModelInput {
        ModelInput {
            id: "llama-3.1-8b-instruct".into(),
            display_name: "Llama 3.1 8B Instruct".into(),
            family: "Llama".into(),
            provider: "Meta".into(),
            context_length: 131_072,
            parameters_millions: 8_030,
            task: "chat".into(),
            tags: "Chat, tools, chat ,".into(),
            input_price: "0.20".into(),
            output_price: "$0.6".into(),
            status: "available".into(),
            visibility: "open".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_model_is_normalised() {
        let m = input().validate().unwrap();
        assert_eq!(m.tags, vec!["chat", "tools"]);
        assert_eq!(m.input_price, Price(200_000));
        assert_eq!(m.output_price, Price(600_000));
        assert_eq!(m.upstream_name, "llama-3.1-8b-instruct");
        assert_eq!(m.task, Task::Chat);
    }

    #[test]
    fn deprecation_needs_a_sunset_date_and_another_model() {
        let mut i = input();
        i.status = "deprecated".into();
        assert!(i
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sunset date"));
        i.sunset_date = "2027-03-31".into();
        i.replacement_id = i.id.clone();
        assert!(i.validate().unwrap_err().to_string().contains("itself"));
        i.replacement_id = "llama-3.3-70b-instruct".into();
        let m = i.validate().unwrap();
        assert_eq!(m.sunset_at, Millis::parse_date("2027-03-31"));
    }

    #[test]
    fn bad_fields_say_which() {
        for (mutate, words) in [
            (
                Box::new(|i: &mut ModelInput| i.id = "bad id!".into())
                    as Box<dyn Fn(&mut ModelInput)>,
                "model id",
            ),
            (
                Box::new(|i: &mut ModelInput| i.task = "vision".into()),
                "unknown task",
            ),
            (
                Box::new(|i: &mut ModelInput| i.context_length = 0),
                "context length",
            ),
            (
                Box::new(|i: &mut ModelInput| i.input_price = "cheap".into()),
                "input price",
            ),
            (
                Box::new(|i: &mut ModelInput| i.visibility = "secret".into()),
                "unknown visibility",
            ),
        ] {
            let mut i = input();
            mutate(&mut i);
            let e = i.validate().unwrap_err().to_string();
            assert!(e.contains(words), "{e}");
        }
    }

    #[test]
    fn prices_round_trip_through_text() {
        for (text, micros, shown) in [
            ("0.20", 200_000, "$0.20"),
            ("3", 3_000_000, "$3.00"),
            ("0.015", 15_000, "$0.015"),
            ("", 0, "$0.00"),
        ] {
            let p = Price::parse("price", text).unwrap();
            assert_eq!(p, Price(micros));
            assert_eq!(p.to_string(), shown);
        }
        assert!(Price::parse("price", "-1").is_err());
        assert!(Price::parse("price", "0.1234567").is_err());
    }

    #[test]
    fn notices_name_the_sunset_and_the_replacement() {
        let v = input().validate().unwrap();
        let mut view = super::super::query::tests::view_of(v);
        assert_eq!(view.lifecycle_notice(), None);
        view.status = ModelStatus::Deprecated;
        view.sunset_at = Millis::parse_date("2027-01-31");
        view.replacement_id = Some("llama-3.3-70b-instruct".into());
        assert_eq!(
            view.lifecycle_notice().unwrap(),
            "Deprecated: retires on 2027-01-31. Use llama-3.3-70b-instruct instead."
        );
        assert_eq!(view.size_label(), "8.0B");
    }
}
