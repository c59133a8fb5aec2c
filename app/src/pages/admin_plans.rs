//! Platform admins manage plans: limits, covered models, approval, archiving.

use crate::{
    api::catalog::{browse_catalog, list_plans, ArchivePlan, SavePlan, SetPlanOverrides},
    components::ui::*,
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use tollgate_domain::{
    plan::{limit_label, PlanView},
    views::Me,
};

#[component]
pub fn AdminPlansPage() -> impl IntoView {
    let me = expect_context::<Me>();
    if !me.platform_admin {
        return view! { <ErrorBanner message="This page is for platform admins." /> }.into_any();
    }
    let query = use_query_map();
    let editing = Memo::new(move |_| query.with(|q| q.get("edit")).unwrap_or_default());
    let search = query_search();
    let plans = Resource::new(move || search.get(), list_plans);
    view! {
        <Title text="Plans" />
        <a class="text-sm text-indigo-600 hover:underline" href="/admin">"← Admin"</a>
        <PageHeader title="Plans" subtitle="Limits subscriptions run under. Empty limits are unlimited; an empty model list covers every model." />
        <FormError />
        <SearchBox placeholder="Search plans" />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading plans..."</p> }>
            {move || Suspend::new(async move {
                match plans.await {
                    Err(e) => view! { <LoadError error=e /> }.into_any(),
                    Ok(ps) => {
                        let edit = ps.iter().find(|p| p.id == editing.get_untracked()).cloned();
                        view! {
                            <div class="grid gap-6 lg:grid-cols-3">
                                <section class="lg:col-span-2">
                                    {if ps.is_empty() {
                                        view! { <EmptyState title="No plans" hint="Create a plan so teams can subscribe." /> }.into_any()
                                    } else {
                                        view! {
                                            <div class=CARD>
                                                <table class=TABLE data-testid="admin-plans">
                                                    <thead><tr><th class=TH>"Plan"</th><th class=TH>"Req/min"</th><th class=TH>"Tokens/min"</th><th class=TH>"Concurrent"</th><th class=TH>"Tokens/month"</th><th class=TH>"Models"</th><th class=TH></th></tr></thead>
                                                    <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                                        {ps.iter().map(|p| view! {
                                                            <tr class:opacity-50=p.archived>
                                                                <td class=TD><span class="font-medium">{p.name.clone()}</span>{p.archived.then_some(" (archived)")}{p.requires_approval.then(|| view! { <p class="text-xs text-amber-700">"needs approval"</p> })}{(p.tier > 0).then(|| view! { <p class="text-xs text-slate-500">{format!("scheduling tier {}", p.tier)}</p> })}</td>
                                                                <td class=TD>{limit_label(p.limits.requests_per_minute.map(u64::from))}</td>
                                                                <td class=TD>{limit_label(p.limits.tokens_per_minute.map(u64::from))}</td>
                                                                <td class=TD>{limit_label(p.limits.max_concurrent.map(u64::from))}</td>
                                                                <td class=TD>{limit_label(p.limits.monthly_tokens)}</td>
                                                                <td class=TD>{if p.all_models { "all".to_string() } else { p.models.len().to_string() }}</td>
                                                                <td class=TD>
                                                                    <div class="flex gap-2">
                                                                        <a class=BUTTON_SECONDARY href=format!("/admin/plans?edit={}", p.id)>"Edit"</a>
                                                                        {if p.archived {
                                                                            view! { <form method="post" action=ArchivePlan::url()><input type="hidden" name="plan_id" value=p.id.clone() /><input type="hidden" name="archived" value="false" /><button class=BUTTON_SECONDARY type="submit">"Restore"</button></form> }.into_any()
                                                                        } else {
                                                                            view! { <ConfirmForm action=ArchivePlan::url() confirm=format!("Archive the plan {}? Existing subscriptions keep it; new ones cannot choose it.", p.name) label="Archive" fields=vec![("plan_id", p.id.clone()), ("archived", "true".into())] /> }.into_any()
                                                                        }}
                                                                    </div>
                                                                </td>
                                                            </tr>
                                                        }).collect_view()}
                                                    </tbody>
                                                </table>
                                            </div>
                                        }.into_any()
                                    }}
                                </section>
                                <section class=CARD>
                                    <h2 class="mb-3 font-semibold">{if edit.is_some() { "Edit plan" } else { "New plan" }}</h2>
                                    <PlanForm plan=edit.clone() />
                                    {edit.map(|p| view! { <Overrides plan=p /> })}
                                </section>
                            </div>
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }.into_any()
}

#[component]
fn PlanForm(plan: Option<PlanView>) -> impl IntoView {
    let id = plan.as_ref().map(|p| p.id.clone()).unwrap_or_default();
    let v = |f: fn(&PlanView) -> Option<u64>| {
        plan.as_ref()
            .and_then(f)
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    let (rpm, tpm, conc, month) = (
        v(|p| p.limits.requests_per_minute.map(u64::from)),
        v(|p| p.limits.tokens_per_minute.map(u64::from)),
        v(|p| p.limits.max_concurrent.map(u64::from)),
        v(|p| p.limits.monthly_tokens),
    );
    let name = plan.as_ref().map(|p| p.name.clone()).unwrap_or_default();
    let description = plan
        .as_ref()
        .map(|p| p.description.clone())
        .unwrap_or_default();
    let models = plan
        .as_ref()
        .filter(|p| !p.all_models)
        .map(|p| {
            p.models
                .iter()
                .map(|m| m.model_id.clone())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let approval = plan.as_ref().is_some_and(|p| p.requires_approval);
    let tier = plan
        .as_ref()
        .map(|p| p.tier.to_string())
        .unwrap_or_default();
    let input = |name: &'static str, label: &'static str, value: String, hint: &'static str| {
        view! {
            <div>
                <label class=LABEL for=format!("plan-{name}")>{label}</label>
                <input class=INPUT id=format!("plan-{name}") name=format!("input[{name}]") value=value placeholder=hint />
            </div>
        }
    };
    view! {
        <form method="post" action=SavePlan::url() class="space-y-3" data-testid="plan-form">
            <input type="hidden" name="plan_id" value=id />
            {input("name", "Name", name, "Team")}
            <div>
                <label class=LABEL for="plan-description">"Description"</label>
                <textarea class=INPUT id="plan-description" name="input[description]" rows="2">{description}</textarea>
            </div>
            <div class="grid grid-cols-2 gap-3">
                {input("requests_per_minute", "Requests / minute", rpm, "unlimited")}
                {input("tokens_per_minute", "Tokens / minute", tpm, "unlimited")}
                {input("max_concurrent", "Concurrent requests", conc, "unlimited")}
                {input("monthly_tokens", "Tokens / month", month, "unlimited")}
            </div>
            <p class="text-xs text-slate-500">"Per-minute limits hold over any 60 seconds (a sliding window), not per clock minute; the monthly quota is per calendar month (UTC)."</p>
            {input("models", "Covered models (ids, comma-separated)", models, "empty = every model")}
            {input("tier", "Scheduling tier (0 to 9: higher runs first on engines with priority scheduling)", tier, "0")}
            <label class="flex items-center gap-2 text-sm">
                <input type="checkbox" name="input[requires_approval]" value="true" checked=approval />
                "Subscriptions need a tenant admin's approval"
            </label>
            <button type="submit" class=BUTTON>"Save plan"</button>
        </form>
    }
}

/// Per-model limits under one plan: what is set, and a form to set a model's (empty fields keep the plan's).
#[component]
fn Overrides(plan: PlanView) -> impl IntoView {
    let models = Resource::new(
        || (),
        |_| {
            browse_catalog(
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "all".into(),
                "name".into(),
                1,
            )
        },
    );
    let covered: Vec<String> = plan.models.iter().map(|m| m.model_id.clone()).collect();
    let all_models = plan.all_models;
    let set: Vec<_> = plan
        .models
        .iter()
        .filter(|m| m.overrides != Default::default())
        .cloned()
        .collect();
    let field = |name: &'static str, label: &'static str| {
        view! {
            <div>
                <label class=LABEL for=format!("override-{name}")>{label}</label>
                <input class=INPUT id=format!("override-{name}") name=format!("input[{name}]") placeholder="plan's" />
            </div>
        }
    };
    view! {
        <div class="mt-6 border-t border-slate-200 pt-4 dark:border-slate-800" data-testid="plan-overrides">
            <h3 class="mb-2 font-semibold">"Per-model limits"</h3>
            {if set.is_empty() {
                view! { <p class="mb-3 text-sm text-slate-500">"Every model uses the plan's limits."</p> }.into_any()
            } else {
                view! {
                    <ul class="mb-3 space-y-1 text-sm">
                        {set.into_iter().map(|m| {
                            let o = m.overrides;
                            let part = |label: &str, v: Option<u64>| v.map(|n| format!("{label} {}", limit_label(Some(n))));
                            let parts: Vec<String> = [
                                part("req/min", o.requests_per_minute.map(u64::from)),
                                part("tokens/min", o.tokens_per_minute.map(u64::from)),
                                part("concurrent", o.max_concurrent.map(u64::from)),
                                part("tokens/month", o.monthly_tokens),
                            ].into_iter().flatten().collect();
                            view! { <li><code class="font-mono text-xs">{m.model_id}</code>": "{parts.join(", ")}</li> }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
            <form method="post" action=SetPlanOverrides::url() class="space-y-2">
                <input type="hidden" name="plan_id" value=plan.id.clone() />
                <div>
                    <label class=LABEL for="override-model">"Model"</label>
                    <select class=INPUT id="override-model" name="model_id">
                        <Suspense fallback=|| ()>
                            {move || {
                                let covered = covered.clone();
                                Suspend::new(async move {
                                    models.await.map(|(p, _)| p.items.into_iter()
                                        .filter(|m| all_models || covered.contains(&m.id))
                                        .map(|m| view! { <option value=m.id.clone()>{m.display_name}</option> })
                                        .collect_view()).ok()
                                })
                            }}
                        </Suspense>
                    </select>
                </div>
                <div class="grid grid-cols-2 gap-2">
                    {field("requests_per_minute", "Requests / minute")}
                    {field("tokens_per_minute", "Tokens / minute")}
                    {field("max_concurrent", "Concurrent")}
                    {field("monthly_tokens", "Tokens / month")}
                </div>
                <button type="submit" class=BUTTON_SECONDARY>"Set this model's limits"</button>
            </form>
        </div>
    }
}
