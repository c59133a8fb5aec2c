//! The model catalog: what a model is, how it is described and priced, its lifecycle, and how the catalog is
//! searched, filtered and sorted. Filtering happens here, in plain Rust over the whole (small) catalog, so the
//! portal and the management API list models by the same rules.

mod model;
mod query;

pub use model::{
    model_id, ModelInput, ModelStatus, ModelView, Price, Task, ValidModel, Visibility,
};
pub use query::{CatalogFacets, CatalogQuery, CatalogSort};

/// A model page: the model and the plans it can be subscribed under.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelDetail {
    pub model: ModelView,
    /// The description rendered to safe HTML on the server (raw HTML and unsafe links removed), only here: lists
    /// and the gateway's snapshot never need it.
    pub description_html: String,
    pub plans: Vec<crate::plan::PlanView>,
    /// The OpenAI-compatible base URL of this platform's gateway, for the code snippets.
    pub gateway_url: String,
}
