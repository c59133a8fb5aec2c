//! The model catalog: search, filter by task, family, tag and status, sort, and page through model cards.

use crate::{
    api::catalog::{browse_catalog, catalog_serving},
    components::{badges::*, ui::*},
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use tollgate_domain::catalog::{CatalogSort, ModelStatus, ModelView, Task};
use tollgate_domain::fleet::Serving;

/// A query parameter as a memo ("" when absent).
fn param(name: &'static str) -> Memo<String> {
    let query = use_query_map();
    Memo::new(move |_| query.with(|q| q.get(name)).unwrap_or_default())
}

#[component]
pub fn CatalogPage() -> impl IntoView {
    let (search, task, family, tag, status, sort) = (
        query_search(),
        param("task"),
        param("family"),
        param("tag"),
        param("status"),
        param("sort"),
    );
    let page = query_page();
    let models = Resource::new(
        move || {
            (
                search.get(),
                task.get(),
                family.get(),
                tag.get(),
                status.get(),
                sort.get(),
                page.get(),
            )
        },
        |(q, task, family, tag, status, sort, page)| {
            browse_catalog(q, task, family, tag, status, sort, page)
        },
    );
    let serving = Resource::new(
        move || page.get(),
        // A badge that cannot be read is left out, not an error for the whole page.
        |_| async move { catalog_serving().await.unwrap_or_default() },
    );
    view! {
        <Title text="Catalog" />
        <PageHeader title="Model catalog" subtitle="Open models served on this platform's GPUs. Open one to see its plans and how to call it." />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading the catalog..."</p> }>
            {move || Suspend::new(async move {
                let serving = serving.await;
                match models.await {
                    Err(e) => view! { <LoadError error=e /> }.into_any(),
                    Ok((page, facets)) => view! {
                        <form method="get" class="mb-6 grid gap-3 sm:grid-cols-2 lg:grid-cols-6" role="search" data-testid="catalog-filters">
                            <div class="lg:col-span-2">
                                <label class=LABEL for="search">"Search"</label>
                                <input id="search" type="search" name="q" class=INPUT placeholder="Name, provider, tag..." value=search.get_untracked() />
                            </div>
                            <Select id="task" label="Task" current=task.get_untracked() options=Task::ALL.iter().map(|t| (t.as_str().to_string(), t.label().to_string())).collect() />
                            <Select id="family" label="Family" current=family.get_untracked() options=facets.families.iter().map(|f| (f.clone(), f.clone())).collect() />
                            <Select id="tag" label="Tag" current=tag.get_untracked() options=facets.tags.iter().map(|t| (t.clone(), t.clone())).collect() />
                            <Select id="status" label="Status" current=status.get_untracked() options=ModelStatus::ALL.iter().map(|s| (s.as_str().to_string(), s.label().to_string())).collect() />
                            <div>
                                <label class=LABEL for="sort">"Sort by"</label>
                                <select id="sort" name="sort" class=INPUT>
                                    {CatalogSort::ALL.into_iter().map(|s| view! { <option value=s.as_str() selected=s.as_str() == sort.get_untracked()>{s.label()}</option> }).collect_view()}
                                </select>
                            </div>
                            <div class="flex items-end gap-2 lg:col-span-5">
                                <button type="submit" class=BUTTON>"Apply filters"</button>
                                <a href="/catalog" class=BUTTON_SECONDARY>"Clear"</a>
                            </div>
                        </form>
                        {if page.items.is_empty() {
                            view! { <EmptyState title="No models match" hint="Try fewer filters or another search. Retired models show only with the Retired status filter." /> }.into_any()
                        } else {
                            view! {
                                <div class="grid gap-4 sm:grid-cols-2 lg:grid-cols-3" data-testid="model-cards">
                                    {page.items.iter().cloned().map(|m| {
                                        let serving = serving.iter().find(|(id, _)| *id == m.id).map(|(_, s)| *s).unwrap_or_default();
                                        view! { <ModelCard m serving /> }
                                    }).collect_view()}
                                </div>
                                <Pager page=page />
                            }.into_any()
                        }}
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Select(
    id: &'static str,
    label: &'static str,
    current: String,
    options: Vec<(String, String)>,
) -> impl IntoView {
    view! {
        <div>
            <label class=LABEL for=id>{label}</label>
            <select id=id name=id class=INPUT>
                <option value="">"Any"</option>
                {options.into_iter().map(|(value, text)| {
                    let selected = value == current;
                    view! { <option value=value selected=selected>{text}</option> }
                }).collect_view()}
            </select>
        </div>
    }
}

#[component]
fn ModelCard(m: ModelView, serving: Serving) -> impl IntoView {
    let notice = m.lifecycle_notice();
    view! {
        <a href=format!("/catalog/{}", m.id) class=format!("{CARD} block transition hover:ring-indigo-400") data-model=m.id.clone()>
            <div class="flex items-start justify-between gap-2">
                <div>
                    <h2 class="font-semibold">{m.display_name.clone()}</h2>
                    <p class="font-mono text-xs text-slate-500">{m.id.clone()}</p>
                </div>
                <div class="flex flex-col items-end gap-1">
                    <ModelStatusBadge status=m.status />
                    <ServingBadge serving />
                </div>
            </div>
            <LifecycleNotice notice />
            <dl class="mt-3 grid grid-cols-3 gap-2 text-xs text-slate-600 dark:text-slate-400">
                <div><dt class="font-medium">"Provider"</dt><dd>{m.provider.clone()}</dd></div>
                <div><dt class="font-medium">"Size"</dt><dd>{m.size_label()}</dd></div>
                <div><dt class="font-medium">"Context"</dt><dd>{format!("{}k", m.context_length / 1024)}</dd></div>
                <div><dt class="font-medium">"Task"</dt><dd>{m.task.label()}</dd></div>
                <div class="col-span-2"><dt class="font-medium">"Price per 1M tokens"</dt><dd>{format!("{} in · {} out", m.input_price, m.output_price)}</dd></div>
            </dl>
            <p class="mt-3 flex flex-wrap gap-1">
                {m.tags.iter().map(|t| view! { <span class="rounded bg-slate-100 px-1.5 py-0.5 text-xs dark:bg-slate-800">{t.clone()}</span> }).collect_view()}
                {(m.visibility == tollgate_domain::catalog::Visibility::Restricted).then(|| view! { <Badge text="Restricted" tone="bg-amber-50 text-amber-800 ring-amber-200" /> })}
            </p>
        </a>
    }
}
