//! One model: its details, the plans it is offered under, code snippets for this gateway, and the form that
//! subscribes one of the user's teams.

use crate::{
    api::{catalog::get_model, subscriptions::Subscribe, teams::list_teams},
    components::{badges::*, layout::is_tenant_admin, ui::*},
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use tollgate_domain::{
    catalog::{ModelDetail, Task, Visibility},
    plan::limit_label,
    views::Me,
    TenantRole,
};

#[component]
pub fn ModelPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id")).unwrap_or_default();
    let model = Resource::new(id, get_model);
    let serving = Resource::new(id, |id| async move {
        crate::api::catalog::catalog_serving()
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|(m, _)| *m == id).map(|(_, s)| s))
            .unwrap_or_default()
    });
    view! {
        <FormError />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading the model..."</p> }>
            {move || Suspend::new(async move {
                let serving = serving.await;
                match model.await {
                    Err(e) => view! { <LoadError error=e /> <a class="underline" href="/catalog">"Back to the catalog"</a> }.into_any(),
                    Ok(detail) => view! { <ModelDetails detail serving /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ModelDetails(detail: ModelDetail, serving: tollgate_domain::fleet::Serving) -> impl IntoView {
    let me = expect_context::<Me>();
    let m = detail.model.clone();
    let can_subscribe = m.subscribable()
        && (me.platform_admin
            || me.tenant.as_ref().and_then(|t| t.role) >= Some(TenantRole::Developer));
    view! {
        <Title text=m.display_name.clone() />
        <a class="text-sm text-indigo-600 hover:underline" href="/catalog">"← Catalog"</a>
        <header class="mb-6 mt-2 flex flex-wrap items-start justify-between gap-3">
            <div>
                <h1 class="text-2xl font-bold tracking-tight">{m.display_name.clone()}</h1>
                <p class="font-mono text-sm text-slate-500" data-testid="model-id">{m.id.clone()}</p>
                <LifecycleNotice notice=m.lifecycle_notice() />
            </div>
            <div class="flex items-center gap-2">
                <ModelStatusBadge status=m.status />
                <ServingBadge serving />
                <a class=BUTTON href=format!("/playground?model={}", urlencode(&m.id)) data-testid="try-in-playground">"Try in playground"</a>
                {me.platform_admin.then(|| view! { <a class=BUTTON_SECONDARY href=format!("/admin/models/{}", m.id)>"Edit"</a> })}
            </div>
        </header>
        <div class="grid gap-6 lg:grid-cols-3">
            <div class="space-y-6 lg:col-span-2">
                <section class=CARD>
                    <div class="markdown" inner_html=detail.description_html.clone()></div>
                    <dl class="mt-4 grid grid-cols-2 gap-3 text-sm sm:grid-cols-4">
                        <Fact label="Provider" value=m.provider.clone() />
                        <Fact label="Family" value=m.family.clone() />
                        <Fact label="Parameters" value=m.size_label() />
                        <Fact label="Context" value=format!("{} tokens", m.context_length) />
                        <Fact label="Task" value=m.task.label().to_string() />
                        <Fact label="License" value=m.license.clone() />
                        <Fact label="Input / 1M tokens" value=m.input_price.to_string() />
                        <Fact label="Output / 1M tokens" value=m.output_price.to_string() />
                        <Fact label="Versions" value=if m.versions.is_empty() { "—".into() } else { m.versions.join(", ") } />
                        <Fact label="Access" value=m.visibility.label().to_string() />
                    </dl>
                </section>
                <Plans detail=detail.clone() />
                <Snippets detail=detail.clone() />
            </div>
            <aside>
                {if can_subscribe {
                    view! { <SubscribeForm detail=detail.clone() /> }.into_any()
                } else if !m.subscribable() {
                    view! { <EmptyState title="Retired" hint="This model takes no new subscriptions." /> }.into_any()
                } else {
                    view! { <EmptyState title="Read-only access" hint="Ask a tenant admin for the developer role to subscribe." /> }.into_any()
                }}
            </aside>
        </div>
    }
}

#[component]
fn Fact(label: &'static str, value: String) -> impl IntoView {
    view! { <div><dt class="text-xs font-medium text-slate-500">{label}</dt><dd>{value}</dd></div> }
}

#[component]
fn Plans(detail: ModelDetail) -> impl IntoView {
    let model_id = detail.model.id.clone();
    view! {
        <section class=CARD>
            <h2 class="mb-3 font-semibold">"Plans"</h2>
            {if detail.plans.is_empty() {
                view! { <p class="text-sm text-slate-500">"No plan offers this model yet."</p> }.into_any()
            } else {
                view! {
                    <table class=TABLE data-testid="plans">
                        <thead><tr><th class=TH>"Plan"</th><th class=TH>"Requests/min"</th><th class=TH>"Tokens/min"</th><th class=TH>"Concurrent"</th><th class=TH>"Tokens/month"</th><th class=TH>"Approval"</th></tr></thead>
                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                            {detail.plans.iter().map(|p| {
                                let l = p.limits_for(&model_id);
                                view! {
                                    <tr>
                                        <td class=TD><span class="font-medium">{p.name.clone()}</span><p class="text-xs text-slate-500">{p.description.clone()}</p></td>
                                        <td class=TD>{limit_label(l.requests_per_minute.map(u64::from))}</td>
                                        <td class=TD>{limit_label(l.tokens_per_minute.map(u64::from))}</td>
                                        <td class=TD>{limit_label(l.max_concurrent.map(u64::from))}</td>
                                        <td class=TD>{limit_label(l.monthly_tokens)}</td>
                                        <td class=TD>{if p.requires_approval { "Tenant admin" } else { "None" }}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                    <p class="mt-2 text-xs text-slate-500" data-testid="limits-note">"Per-minute limits count over any 60 seconds, not per clock minute: a burst across a minute's edge is not let through twice. A refused call says when to retry (Retry-After)."</p>
                }.into_any()
            }}
            {(detail.model.visibility == Visibility::Restricted).then(|| view! {
                <p class="mt-3 text-sm text-amber-700 dark:text-amber-400">"This model is restricted: every subscription also needs a platform admin's approval."</p>
            })}
        </section>
    }
}

/// curl, Python and JavaScript snippets for this model on this gateway, each with a copy button.
#[component]
fn Snippets(detail: ModelDetail) -> impl IntoView {
    let (url, id) = (detail.gateway_url.clone(), detail.model.id.clone());
    let (curl, python, js) = match detail.model.task {
        Task::Embeddings => (
            format!("curl {url}/embeddings \\\n  -H \"Authorization: Bearer $TOLLGATE_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"{id}\", \"input\": \"Hello\"}}'"),
            format!("from openai import OpenAI\n\nclient = OpenAI(base_url=\"{url}\", api_key=os.environ[\"TOLLGATE_API_KEY\"])\nresult = client.embeddings.create(model=\"{id}\", input=\"Hello\")\nprint(len(result.data[0].embedding))"),
            format!("import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: \"{url}\", apiKey: process.env.TOLLGATE_API_KEY }});\nconst result = await client.embeddings.create({{ model: \"{id}\", input: \"Hello\" }});\nconsole.log(result.data[0].embedding.length);"),
        ),
        Task::Completion => (
            format!("curl {url}/completions \\\n  -H \"Authorization: Bearer $TOLLGATE_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"{id}\", \"prompt\": \"Once upon a time\", \"max_tokens\": 64}}'"),
            format!("from openai import OpenAI\n\nclient = OpenAI(base_url=\"{url}\", api_key=os.environ[\"TOLLGATE_API_KEY\"])\nresult = client.completions.create(model=\"{id}\", prompt=\"Once upon a time\", max_tokens=64)\nprint(result.choices[0].text)"),
            format!("import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: \"{url}\", apiKey: process.env.TOLLGATE_API_KEY }});\nconst result = await client.completions.create({{ model: \"{id}\", prompt: \"Once upon a time\", max_tokens: 64 }});\nconsole.log(result.choices[0].text);"),
        ),
        Task::Chat => (
            format!("curl {url}/chat/completions \\\n  -H \"Authorization: Bearer $TOLLGATE_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"{id}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'"),
            format!("from openai import OpenAI\n\nclient = OpenAI(base_url=\"{url}\", api_key=os.environ[\"TOLLGATE_API_KEY\"])\nstream = client.chat.completions.create(\n    model=\"{id}\",\n    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n    stream=True,\n)\nfor chunk in stream:\n    print(chunk.choices[0].delta.content or \"\", end=\"\")"),
            format!("import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: \"{url}\", apiKey: process.env.TOLLGATE_API_KEY }});\nconst stream = await client.chat.completions.create({{\n  model: \"{id}\",\n  messages: [{{ role: \"user\", content: \"Hello!\" }}],\n  stream: true,\n}});\nfor await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? \"\");"),
        ),
    };
    let python = format!("import os\n{python}");
    view! {
        <section class=CARD>
            <h2 class="mb-3 font-semibold">"Call it"</h2>
            <p class="mb-3 text-sm text-slate-500">"Any OpenAI client works: point it at this platform and use an API key of a subscription to this model."</p>
            {[("curl", curl), ("Python (openai)", python), ("JavaScript (openai)", js)].into_iter().map(|(label, code)| view! {
                <div class="mb-4">
                    <div class="mb-1 flex items-center justify-between">
                        <span class="text-sm font-medium">{label}</span>
                        <CopyButton text=code.clone() label=format!("Copy {label}") />
                    </div>
                    <pre class="overflow-x-auto rounded-md bg-slate-900 p-3 text-xs text-slate-100"><code>{code}</code></pre>
                </div>
            }).collect_view()}
        </section>
    }
}

#[component]
fn SubscribeForm(detail: ModelDetail) -> impl IntoView {
    let me = expect_context::<Me>();
    let admin = is_tenant_admin(&me);
    let teams = Resource::new(|| (), |_| list_teams(String::new(), 1));
    let model_id = detail.model.id.clone();
    let plans = detail.plans.clone();
    view! {
        <section class=CARD data-testid="subscribe">
            <h2 class="mb-3 font-semibold">"Subscribe a team"</h2>
            <form method="post" action=Subscribe::url() class="space-y-3">
                <input type="hidden" name="model_id" value=model_id />
                <div>
                    <label class=LABEL for="subscribe-team">"Team"</label>
                    <select class=INPUT id="subscribe-team" name="team_id" required>
                        <Suspense fallback=|| ()>
                            {move || Suspend::new(async move {
                                teams.await.map(|p| p.items.into_iter().map(|t| view! { <option value=t.id>{t.name}</option> }).collect_view()).ok()
                            })}
                        </Suspense>
                    </select>
                    <p class="mt-1 text-xs text-slate-500">{if admin { "Any team of this tenant." } else { "Only teams you are a member of can be subscribed." }}</p>
                </div>
                <div>
                    <label class=LABEL for="subscribe-plan">"Plan"</label>
                    <select class=INPUT id="subscribe-plan" name="plan_id" required>
                        {plans.into_iter().map(|p| {
                            let label = if p.requires_approval { format!("{} (needs approval)", p.name) } else { p.name.clone() };
                            view! { <option value=p.id>{label}</option> }
                        }).collect_view()}
                    </select>
                </div>
                <div>
                    <label class=LABEL for="subscribe-note">"Note for the approver (optional)"</label>
                    <textarea class=INPUT id="subscribe-note" name="note" rows="2" maxlength="500" placeholder="What will you build with it?"></textarea>
                </div>
                <button type="submit" class=BUTTON>"Subscribe"</button>
            </form>
        </section>
    }
}
