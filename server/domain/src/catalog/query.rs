//! Searching, filtering and sorting the catalog. The catalog is small (tens to hundreds of models), so the
//! server loads it whole and these plain functions do the rest; the same rules serve the portal and the API.

use super::{ModelStatus, ModelView, Task};
use crate::page::{Page, PageRequest};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogSort {
    #[default]
    Name,
    Newest,
    /// Cheapest output price first.
    Price,
    /// Longest context first.
    Context,
    /// Largest first.
    Size,
}

impl CatalogSort {
    pub const ALL: [CatalogSort; 5] = [
        Self::Name,
        Self::Newest,
        Self::Price,
        Self::Context,
        Self::Size,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Newest => "newest",
            Self::Price => "price",
            Self::Context => "context",
            Self::Size => "size",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Name => "Name",
            Self::Newest => "Newest",
            Self::Price => "Lowest price",
            Self::Context => "Longest context",
            Self::Size => "Largest",
        }
    }
    /// Unknown values fall back to the default: a bad sort in a URL is not worth an error page.
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .unwrap_or_default()
    }
}

/// A catalog search as it comes from the URL or the API: empty strings mean "any".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CatalogQuery {
    #[serde(default)]
    pub search: String,
    #[serde(default)]
    pub task: String,
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub tag: String,
    /// Empty shows everything but retired models; "all" shows every model.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub sort: String,
}

/// The values present in the catalog, to offer as filter choices.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CatalogFacets {
    pub families: Vec<String>,
    pub tags: Vec<String>,
}

impl CatalogFacets {
    pub fn of(models: &[ModelView]) -> Self {
        let mut families: Vec<String> = models.iter().map(|m| m.family.clone()).collect();
        let mut tags: Vec<String> = models.iter().flat_map(|m| m.tags.iter().cloned()).collect();
        families.sort_by_key(|f| f.to_lowercase());
        families.dedup();
        tags.sort();
        tags.dedup();
        Self { families, tags }
    }
}

impl CatalogQuery {
    pub fn matches(&self, m: &ModelView) -> bool {
        let search = self.search.trim().to_lowercase();
        let found = search.is_empty()
            || search.split_whitespace().all(|word| {
                m.id.to_lowercase().contains(word)
                    || m.display_name.to_lowercase().contains(word)
                    || m.family.to_lowercase().contains(word)
                    || m.provider.to_lowercase().contains(word)
                    || m.description.to_lowercase().contains(word)
                    || m.tags.iter().any(|t| t.contains(word))
            });
        let task_ok = match Task::parse(&self.task) {
            Ok(t) => m.task == t,
            Err(_) => self.task.trim().is_empty(),
        };
        let family_ok =
            self.family.trim().is_empty() || m.family.eq_ignore_ascii_case(self.family.trim());
        let tag = self.tag.trim().to_lowercase();
        let tag_ok = tag.is_empty() || m.tags.contains(&tag);
        let status_ok = match (self.status.trim(), ModelStatus::parse(&self.status)) {
            ("all", _) => true,
            (_, Ok(s)) => m.status == s,
            (other, Err(_)) => other.is_empty() && m.status != ModelStatus::Retired,
        };
        found && task_ok && family_ok && tag_ok && status_ok
    }

    /// Filters, sorts and pages `models`.
    pub fn apply(&self, models: &[ModelView], page: PageRequest) -> Page<ModelView> {
        let mut hits: Vec<&ModelView> = models.iter().filter(|m| self.matches(m)).collect();
        let by_name = |a: &&ModelView, b: &&ModelView| {
            a.display_name
                .to_lowercase()
                .cmp(&b.display_name.to_lowercase())
        };
        match CatalogSort::parse(&self.sort) {
            CatalogSort::Name => hits.sort_by(by_name),
            CatalogSort::Newest => {
                hits.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(by_name(a, b)))
            }
            CatalogSort::Price => {
                hits.sort_by(|a, b| a.output_price.cmp(&b.output_price).then(by_name(a, b)))
            }
            CatalogSort::Context => {
                hits.sort_by(|a, b| b.context_length.cmp(&a.context_length).then(by_name(a, b)))
            }
            CatalogSort::Size => hits.sort_by(|a, b| {
                b.parameters_millions
                    .cmp(&a.parameters_millions)
                    .then(by_name(a, b))
            }),
        }
        let total = hits.len() as u64;
        let start = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let items = hits
            .into_iter()
            .skip(start)
            .take(page.per_page as usize)
            .cloned()
            .collect();
        Page {
            items,
            total,
            page: page.page,
            per_page: page.per_page,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::{model::ValidModel, Price, Visibility};
    use crate::time::Millis;

    pub(crate) fn view_of(v: ValidModel) -> ModelView {
        ModelView {
            id: v.id,
            display_name: v.display_name,
            family: v.family,
            provider: v.provider,
            description: v.description,
            parameters_millions: v.parameters_millions,
            context_length: v.context_length,
            task: v.task,
            license: v.license,
            tags: v.tags,
            versions: v.versions,
            input_price: v.input_price,
            output_price: v.output_price,
            status: v.status,
            sunset_at: v.sunset_at,
            replacement_id: v.replacement_id,
            visibility: v.visibility,
            upstream_name: v.upstream_name,
            created_at: Millis(0),
            updated_at: Millis(0),
        }
    }

    #[allow(clippy::too_many_arguments)] // a test fixture: each argument is one column of the catalog table
    fn model(
        id: &str,
        family: &str,
        task: Task,
        status: ModelStatus,
        price: i64,
        ctx: i64,
        created: i64,
        tags: &[&str],
    ) -> ModelView {
        ModelView {
            id: id.into(),
            display_name: id.into(),
            family: family.into(),
            provider: "p".into(),
            description: format!("About {id}"),
            parameters_millions: ctx / 10,
            context_length: ctx,
            task,
            license: "apache-2.0".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            versions: vec![],
            input_price: Price(price),
            output_price: Price(price),
            status,
            sunset_at: None,
            replacement_id: None,
            visibility: Visibility::Open,
            upstream_name: id.into(),
            created_at: Millis(created),
            updated_at: Millis(created),
        }
    }

    fn catalog() -> Vec<ModelView> {
        vec![
            model(
                "llama-8b",
                "Llama",
                Task::Chat,
                ModelStatus::Available,
                200,
                131_072,
                3,
                &["chat", "tools"],
            ),
            model(
                "mistral-7b",
                "Mistral",
                Task::Chat,
                ModelStatus::Deprecated,
                100,
                32_768,
                1,
                &["chat"],
            ),
            model(
                "bge-m3",
                "BGE",
                Task::Embeddings,
                ModelStatus::Available,
                10,
                8_192,
                2,
                &["embeddings"],
            ),
            model(
                "old-gpt",
                "Legacy",
                Task::Completion,
                ModelStatus::Retired,
                1,
                2_048,
                0,
                &[],
            ),
        ]
    }

    fn ids(p: &Page<ModelView>) -> Vec<&str> {
        p.items.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn retired_models_hide_unless_asked_for() {
        let all = catalog();
        let q = CatalogQuery::default();
        assert_eq!(
            ids(&q.apply(&all, PageRequest::default())),
            ["bge-m3", "llama-8b", "mistral-7b"]
        );
        let q = CatalogQuery {
            status: "retired".into(),
            ..Default::default()
        };
        assert_eq!(ids(&q.apply(&all, PageRequest::default())), ["old-gpt"]);
        let q = CatalogQuery {
            status: "all".into(),
            ..Default::default()
        };
        assert_eq!(q.apply(&all, PageRequest::default()).total, 4);
    }

    #[test]
    fn filters_combine() {
        let all = catalog();
        let q = CatalogQuery {
            task: "chat".into(),
            tag: "tools".into(),
            ..Default::default()
        };
        assert_eq!(ids(&q.apply(&all, PageRequest::default())), ["llama-8b"]);
        let q = CatalogQuery {
            family: "mistral".into(),
            ..Default::default()
        };
        assert_eq!(ids(&q.apply(&all, PageRequest::default())), ["mistral-7b"]);
        let q = CatalogQuery {
            search: "about bge".into(),
            ..Default::default()
        };
        assert_eq!(ids(&q.apply(&all, PageRequest::default())), ["bge-m3"]);
        let q = CatalogQuery {
            search: "nothing-like-this".into(),
            ..Default::default()
        };
        assert_eq!(q.apply(&all, PageRequest::default()).total, 0);
    }

    #[test]
    fn sorts_and_pages() {
        let all = catalog();
        let q = CatalogQuery {
            sort: "price".into(),
            ..Default::default()
        };
        assert_eq!(
            ids(&q.apply(&all, PageRequest::default())),
            ["bge-m3", "mistral-7b", "llama-8b"]
        );
        let q = CatalogQuery {
            sort: "newest".into(),
            ..Default::default()
        };
        let page = q.apply(&all, PageRequest::new(Some(2), Some(2)));
        assert_eq!((ids(&page), page.total), (vec!["mistral-7b"], 3));
        let q = CatalogQuery {
            sort: "no-such-sort".into(),
            ..Default::default()
        };
        assert_eq!(ids(&q.apply(&all, PageRequest::default()))[0], "bge-m3");
    }

    #[test]
    fn facets_list_each_value_once() {
        let f = CatalogFacets::of(&catalog());
        assert_eq!(f.families, ["BGE", "Legacy", "Llama", "Mistral"]);
        assert_eq!(f.tags, ["chat", "embeddings", "tools"]);
    }
}
