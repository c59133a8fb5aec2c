//! Platform admins edit the catalog: every model (retired ones too), a form to add one, and the same form to edit.

use crate::{
    api::catalog::{browse_catalog, get_model, SaveModel},
    components::{badges::*, ui::*},
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use tollgate_domain::{
    catalog::{ModelStatus, ModelView, Task, Visibility},
    views::Me,
};

#[component]
pub fn AdminModelsPage() -> impl IntoView {
    let me = expect_context::<Me>();
    if !me.platform_admin {
        return view! { <ErrorBanner message="This page is for platform admins." /> }.into_any();
    }
    let (search, page) = (query_search(), query_page());
    // Every status, retired included.
    let models = Resource::new(
        move || (search.get(), page.get()),
        |(q, p)| {
            browse_catalog(
                q,
                String::new(),
                String::new(),
                String::new(),
                "all".into(),
                "name".into(),
                p,
            )
        },
    );
    view! {
        <Title text="Models" />
        <a class="text-sm text-indigo-600 hover:underline" href="/admin">"← Admin"</a>
        <PageHeader title="Models" subtitle="The catalog every tenant sees. Deprecate a model with a sunset date and a replacement before retiring it." />
        <FormError />
        <div class="grid gap-6 lg:grid-cols-3">
            <section class="lg:col-span-2">
                <SearchBox placeholder="Search models" />
                <Transition fallback=|| view! { <p class="text-slate-500">"Loading models..."</p> }>
                    {move || Suspend::new(async move {
                        match models.await {
                            Err(e) => view! { <LoadError error=e /> }.into_any(),
                            Ok((p, _)) if p.items.is_empty() => view! { <EmptyState title="No models" hint="Add the first model with the form." /> }.into_any(),
                            Ok((p, _)) => view! {
                                <div class=CARD>
                                    <table class=TABLE data-testid="admin-models">
                                        <thead><tr><th class=TH>"Model"</th><th class=TH>"Task"</th><th class=TH>"Status"</th><th class=TH>"Access"</th><th class=TH></th></tr></thead>
                                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                            {p.items.clone().into_iter().map(|m| view! {
                                                <tr>
                                                    <td class=TD><a class="font-medium text-indigo-600 hover:underline" href=format!("/catalog/{}", m.id)>{m.display_name.clone()}</a><p class="font-mono text-xs text-slate-500">{m.id.clone()}</p></td>
                                                    <td class=TD>{m.task.label()}</td>
                                                    <td class=TD><ModelStatusBadge status=m.status /></td>
                                                    <td class=TD>{m.visibility.as_str()}</td>
                                                    <td class=TD><a class=BUTTON_SECONDARY href=format!("/admin/models/{}", m.id)>"Edit"</a></td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                    <Pager page=p />
                                </div>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </section>
            <section class=CARD>
                <h2 class="mb-3 font-semibold">"Add a model"</h2>
                <ModelForm model=None />
            </section>
        </div>
    }.into_any()
}

#[component]
pub fn AdminModelEditPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id")).unwrap_or_default();
    let model = Resource::new(id, get_model);
    view! {
        <a class="text-sm text-indigo-600 hover:underline" href="/admin/models">"← Models"</a>
        <FormError />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading..."</p> }>
            {move || Suspend::new(async move {
                match model.await {
                    Err(e) => view! { <LoadError error=e /> }.into_any(),
                    Ok(d) => view! {
                        <Title text=format!("Edit {}", d.model.display_name) />
                        <PageHeader title=format!("Edit {}", d.model.display_name) />
                        <section class=format!("{CARD} max-w-2xl")><ModelForm model=Some(d.model) /></section>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The model form: empty to create, filled to edit (the id is fixed once created).
#[component]
fn ModelForm(model: Option<ModelView>) -> impl IntoView {
    let create = model.is_none();
    let m = model.unwrap_or_else(|| ModelView {
        id: String::new(),
        display_name: String::new(),
        family: String::new(),
        provider: String::new(),
        description: String::new(),

        parameters_millions: 0,
        context_length: 8192,
        task: Task::Chat,
        license: String::new(),
        tags: vec![],
        versions: vec![],
        input_price: Default::default(),
        output_price: Default::default(),
        status: ModelStatus::Preview,
        sunset_at: None,
        replacement_id: None,
        visibility: Visibility::Open,
        upstream_name: String::new(),
        created_at: Default::default(),
        updated_at: Default::default(),
    });
    let price = |p: tollgate_domain::catalog::Price| {
        if p.0 == 0 {
            String::new()
        } else {
            p.to_string().trim_start_matches('$').to_string()
        }
    };
    let field = |name: &'static str, label: &'static str, value: String, hint: &'static str| {
        view! {
            <div>
                <label class=LABEL for=format!("model-{name}")>{label}</label>
                <input class=INPUT id=format!("model-{name}") name=format!("input[{name}]") value=value placeholder=hint />
            </div>
        }
    };
    view! {
        <form method="post" action=SaveModel::url() class="space-y-3" data-testid="model-form">
            <input type="hidden" name="create" value=create.to_string() />
            {if create {
                field("id", "Model id (what clients send)", String::new(), "e.g. llama-3.1-8b-instruct").into_any()
            } else {
                view! { <input type="hidden" name="input[id]" value=m.id.clone() /> }.into_any()
            }}
            {field("display_name", "Display name", m.display_name.clone(), "Llama 3.1 8B Instruct")}
            <div class="grid grid-cols-2 gap-3">
                {field("family", "Family", m.family.clone(), "Llama")}
                {field("provider", "Provider", m.provider.clone(), "Meta")}
                {field("parameters_millions", "Parameters (millions)", m.parameters_millions.to_string(), "8030")}
                {field("context_length", "Context length (tokens)", m.context_length.to_string(), "131072")}
                {field("input_price", "Input price / 1M tokens", price(m.input_price), "0.10")}
                {field("output_price", "Output price / 1M tokens", price(m.output_price), "0.20")}
                {field("license", "License", m.license.clone(), "apache-2.0")}
                {field("upstream_name", "Name served by the engines", m.upstream_name.clone(), "defaults to the id")}
            </div>
            {field("tags", "Tags (comma-separated)", m.tags.join(", "), "chat, tools")}
            {field("versions", "Versions (comma-separated, newest first)", m.versions.join(", "), "2024-07-23")}
            <div class="grid grid-cols-3 gap-3">
                <div>
                    <label class=LABEL for="model-task">"Task"</label>
                    <select class=INPUT id="model-task" name="input[task]">
                        {Task::ALL.iter().map(|t| view! { <option value=t.as_str() selected=*t == m.task>{t.label()}</option> }).collect_view()}
                    </select>
                </div>
                <div>
                    <label class=LABEL for="model-status">"Status"</label>
                    <select class=INPUT id="model-status" name="input[status]">
                        {ModelStatus::ALL.iter().map(|s| view! { <option value=s.as_str() selected=*s == m.status>{s.label()}</option> }).collect_view()}
                    </select>
                </div>
                <div>
                    <label class=LABEL for="model-visibility">"Access"</label>
                    <select class=INPUT id="model-visibility" name="input[visibility]">
                        {Visibility::ALL.iter().map(|v| view! { <option value=v.as_str() selected=*v == m.visibility>{v.label()}</option> }).collect_view()}
                    </select>
                </div>
            </div>
            <div class="grid grid-cols-2 gap-3">
                <div>
                    <label class=LABEL for="model-sunset">"Sunset date (deprecated models)"</label>
                    <input class=INPUT id="model-sunset" type="date" name="input[sunset_date]" value=m.sunset_at.map(|t| t.format_date()).unwrap_or_default() />
                </div>
                {field("replacement_id", "Replacement model id", m.replacement_id.clone().unwrap_or_default(), "")}
            </div>
            <div>
                <label class=LABEL for="model-description">"Description (Markdown)"</label>
                <textarea class=INPUT id="model-description" name="input[description]" rows="6">{m.description.clone()}</textarea>
            </div>
            <button type="submit" class=BUTTON>{if create { "Add model" } else { "Save changes" }}</button>
        </form>
    }
}
