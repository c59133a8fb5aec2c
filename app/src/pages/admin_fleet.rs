//! Platform admins run the fleet: the GPUs of every node (which replica holds each), the deployments with their
//! replicas, a form to deploy a catalog model, and per deployment its replicas, events, scaling and deletion.
//! The status parts are server-rendered panels inside a small island, `LiveRegion`, that fetches the same panel
//! rendered to HTML every two seconds and swaps it in, so a replica going from starting to ready shows up without a
//! reload while the views and the fleet's types stay out of the wasm bundle (about 30 KB gzipped); the forms are
//! plain HTML forms.

use crate::error::AppError;
use crate::{
    api::catalog::browse_catalog,
    api::fleet::{
        deployment_detail, fleet_overview, CreateDeployment, DeleteDeployment, DeploymentPage,
        FleetStatus, ScaleDeployment, UpdateEngine,
    },
    components::{badges::ReplicaStateBadge, ui::*},
};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use tollgate_domain::{
    fleet::{DeploymentView, FleetEventView, NodeView, ReplicaState, ReplicaView},
    views::Me,
};

const POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Server-rendered content (`children`) that refreshes itself every `POLL`: the browser fetches the same panel
/// rendered to HTML by the server (`live_panel`) and swaps it in. A failed fetch keeps what is shown and says why.
/// `deployment`: that deployment's panel; empty: the fleet's.
#[island]
fn LiveRegion(deployment: String, children: Children) -> impl IntoView {
    let region = NodeRef::<leptos::html::Div>::new();
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let deployment = deployment.clone();
        let handle = set_interval_with_handle(
            move || {
                let deployment = deployment.clone();
                leptos::task::spawn_local(async move {
                    match live_panel(deployment).await {
                        Ok(html) => {
                            if let Some(el) = region.get_untracked() {
                                el.set_inner_html(&html);
                            }
                            error.set(None);
                        }
                        Err(e) => error.set(Some(describe(&e))),
                    }
                });
            },
            POLL,
        )
        .ok();
        on_cleanup(move || {
            if let Some(h) = handle {
                h.clear();
            }
        });
    });
    view! {
        {move || error.get().map(|e| view! { <ErrorBanner message=e /> })}
        <div node_ref=region data-testid="live-region">{children()}</div>
    }
}

/// A live panel rendered to HTML, as `LiveRegion` swaps it in: a deployment's, or (empty id) the fleet's.
#[server(endpoint = "fleet/live", input = GetUrl)]
pub async fn live_panel(deployment: String) -> Result<String, AppError> {
    use leptos::tachys::view::RenderHtml;
    Ok(if deployment.is_empty() {
        let status = fleet_overview().await?;
        view! { <FleetPanel status /> }.to_html()
    } else {
        let page = deployment_detail(deployment).await?;
        view! { <DeploymentPanel page /> }.to_html()
    })
}

#[component]
pub fn AdminFleetPage() -> impl IntoView {
    let me = expect_context::<Me>();
    if !me.platform_admin {
        return view! { <ErrorBanner message="This page is for platform admins." /> }.into_any();
    }
    let overview = Resource::new(|| (), |_| fleet_overview());
    view! {
        <Title text="Fleet" />
        <a class="text-sm text-indigo-600 hover:underline" href="/admin">"← Admin"</a>
        <PageHeader title="Fleet" subtitle="Catalog models deployed onto GPUs. Replicas start, scale with load and drain by themselves; the gateway routes to those that are ready." />
        <FormError />
        <div class="grid gap-6 lg:grid-cols-3">
            <section class="lg:col-span-2">
                <Suspense fallback=|| view! { <p class="text-slate-500">"Loading the fleet..."</p> }>
                    {move || Suspend::new(async move {
                        match overview.await {
                            Err(e) => view! { <LoadError error=e /> }.into_any(),
                            Ok(status) => view! { <LiveRegion deployment=String::new()><FleetPanel status /></LiveRegion> }.into_any(),
                        }
                    })}
                </Suspense>
            </section>
            <section class=CARD><DeployForm /></section>
        </div>
    }
    .into_any()
}

/// Deployments and GPUs.
#[component]
fn FleetPanel(status: FleetStatus) -> impl IntoView {
    view! {
        <p class="mb-2 text-xs text-slate-500" data-testid="fleet-driver">"Driver: "{status.driver}" · updates every 2 s"</p>
        <Deployments deployments=status.deployments />
        <h2 class="mb-2 mt-6 font-semibold">"GPUs"</h2>
        <Nodes nodes=status.nodes />
    }
}

#[component]
fn Deployments(deployments: Vec<DeploymentView>) -> impl IntoView {
    if deployments.is_empty() {
        return view! { <EmptyState title="Nothing deployed" hint="Deploy a catalog model with the form: its replicas get GPUs and join the gateway's routes when ready." /> }.into_any();
    }
    view! {
        <div class=CARD>
            <table class=TABLE data-testid="deployments">
                <thead><tr>
                    <th class=TH>"Model"</th><th class=TH>"Ready"</th><th class=TH>"Replicas"</th>
                    <th class=TH>"GPUs each"</th><th class=TH>"Priority"</th><th class=TH>"GPU hours"</th>
                </tr></thead>
                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                    {deployments.into_iter().map(|d| view! {
                        <tr data-testid="deployment-row" data-model=d.spec.model_id.clone()>
                            <td class=TD>
                                <a class="font-medium text-indigo-600 hover:underline" href=format!("/admin/fleet/{}", d.id)>{d.spec.model_id.clone()}</a>
                                {d.condition.clone().map(|c| view! { <p class="text-xs text-red-600">{c}</p> })}
                            </td>
                            <td class=TD data-testid="ready-count">{format!("{} / {}", d.ready_replicas, d.desired_replicas)}</td>
                            <td class=TD>
                                <div class="flex flex-wrap gap-1">
                                    {d.replicas.iter().filter(|r| r.state != ReplicaState::Stopped).map(|r| view! { <ReplicaStateBadge state=r.state /> }).collect_view()}
                                </div>
                                <p class="text-xs text-slate-500">{format!("{}..{} replicas", d.spec.min_replicas, d.spec.max_replicas)}</p>
                            </td>
                            <td class=TD>{d.spec.gpus_per_replica}</td>
                            <td class=TD>{d.spec.priority}</td>
                            <td class=TD>{format!("{:.2}", d.gpu_seconds / 3600.0)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }.into_any()
}

#[component]
fn Nodes(nodes: Vec<NodeView>) -> impl IntoView {
    if nodes.is_empty() {
        return view! { <EmptyState title="No GPUs" hint="The fleet driver reports no nodes (TOLLGATE_FLEET_DRIVER)." /> }.into_any();
    }
    let total: usize = nodes.iter().map(|n| n.gpus.len()).sum();
    let held: usize = nodes
        .iter()
        .flat_map(|n| &n.gpus)
        .filter(|g| g.replica.is_some())
        .count();
    view! {
        <p class="mb-2 text-sm text-slate-600" data-testid="gpu-summary">{format!("{held} of {total} GPUs in use")}</p>
        <div class="space-y-2" data-testid="nodes">
            {nodes.into_iter().map(|n| view! {
                <div class=CARD>
                    <p class="mb-2 text-sm font-medium">{n.name.clone()}{(!n.schedulable).then_some(" (cordoned)")}</p>
                    <div class="flex flex-wrap gap-1">
                        {n.gpus.into_iter().map(|g| {
                            let title = format!(
                                "GPU {} · {} · {} GiB{}",
                                g.index,
                                g.product,
                                g.memory_mib / 1024,
                                g.replica.as_ref().map(|r| format!(" · {r}")).unwrap_or_default()
                            );
                            let class = match (g.healthy, g.replica.is_some()) {
                                (false, _) => "bg-red-200 text-red-900",
                                (true, true) => "bg-indigo-600 text-white",
                                (true, false) => "bg-slate-100 text-slate-600 dark:bg-slate-800 dark:text-slate-300",
                            };
                            view! {
                                <span class=format!("inline-flex h-9 w-14 flex-col items-center justify-center rounded text-xs {class}") title=title data-testid="gpu" data-held=g.replica.is_some().to_string()>
                                    <span class="font-mono">{g.index}</span>
                                    <span class="text-[10px] leading-none">{g.product.clone()}</span>
                                </span>
                            }
                        }).collect_view()}
                    </div>
                </div>
            }).collect_view()}
        </div>
    }.into_any()
}

#[component]
fn DeployForm() -> impl IntoView {
    let models = Resource::new(
        || (),
        |_| {
            browse_catalog(
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "name".into(),
                1,
            )
        },
    );
    let field = |name: &'static str,
                 label: &'static str,
                 value: &'static str,
                 hint: &'static str| {
        view! {
            <div>
                <label class=LABEL for=format!("deploy-{name}")>{label}</label>
                <input class=INPUT id=format!("deploy-{name}") name=format!("form[{name}]") value=value placeholder=hint />
            </div>
        }
    };
    view! {
        <h2 class="mb-3 font-semibold">"Deploy a model"</h2>
        <form method="post" action=CreateDeployment::url() class="space-y-3" data-testid="deploy-form">
            <div>
                <label class=LABEL for="deploy-model">"Model"</label>
                <Suspense fallback=|| view! { <select class=INPUT disabled><option>"Loading..."</option></select> }>
                    {move || Suspend::new(async move {
                        let options = models.await.map(|(p, _)| p.items).unwrap_or_default();
                        view! {
                            <select class=INPUT id="deploy-model" name="form[model_id]" required>
                                {options.into_iter().map(|m| view! { <option value=m.id.clone()>{format!("{} ({})", m.display_name, m.id)}</option> }).collect_view()}
                            </select>
                        }
                    })}
                </Suspense>
            </div>
            <div class="grid grid-cols-2 gap-3">
                {field("gpus_per_replica", "GPUs per replica", "1", "tensor-parallel size")}
                {field("min_gpu_memory_gib", "Min GPU memory (GiB)", "", "any")}
                {field("min_replicas", "Min replicas", "1", "0 scales to zero")}
                {field("max_replicas", "Max replicas", "2", "")}
                {field("target_requests_per_replica", "Target requests / replica", "8", "")}
                {field("priority", "Priority", "0", "higher preempts lower")}
                {field("scale_to_zero_after_s", "Idle before zero (s)", "300", "with min 0")}
                {field("max_model_len", "Max model length", "", "model default")}
            </div>
            {field("gpu_products", "GPU products", "", "any, or e.g. H100-80GB")}
            <div>
                <label class=LABEL for="deploy-dtype">"Dtype"</label>
                <select class=INPUT id="deploy-dtype" name="form[dtype]">
                    {["", "auto", "bfloat16", "float16", "float32"].into_iter().map(|d| view! { <option value=d>{if d.is_empty() { "engine default" } else { d }}</option> }).collect_view()}
                </select>
            </div>
            {field("extra_args", "Extra vLLM arguments", "", "--enable-prefix-caching")}
            <button type="submit" class=BUTTON>"Deploy"</button>
        </form>
    }
}

#[component]
pub fn AdminDeploymentPage() -> impl IntoView {
    let params = use_params_map();
    let id = params.with_untracked(|p| p.get("id")).unwrap_or_default();
    let detail = Resource::new(
        {
            let id = id.clone();
            move || id.clone()
        },
        deployment_detail,
    );
    view! {
        <a class="text-sm text-indigo-600 hover:underline" href="/admin/fleet">"← Fleet"</a>
        <FormError />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading..."</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Err(e) => view! { <LoadError error=e /> }.into_any(),
                    Ok(detail) => { let page = detail.clone(); let d = detail.deployment; view! {
                        <Title text=format!("Deployment of {}", d.spec.model_id) />
                        <PageHeader title=format!("Deployment of {}", d.spec.model_id) subtitle=format!(
                            "{} GPU(s) per replica{}, priority {}, engine: {}",
                            d.spec.gpus_per_replica,
                            if d.spec.gpu_products.is_empty() { String::new() } else { format!(" ({})", d.spec.gpu_products.join(" or ")) },
                            d.spec.priority,
                            d.spec.engine.to_args(d.spec.gpus_per_replica).join(" "),
                        ) />
                        <div class="grid gap-6 lg:grid-cols-3">
                            <section class="lg:col-span-2"><LiveRegion deployment=d.id.clone()><DeploymentPanel page /></LiveRegion></section>
                            <section class="space-y-4">
                                <div class=CARD>
                                    <h2 class="mb-3 font-semibold">"Scale"</h2>
                                    <form method="post" action=ScaleDeployment::url() class="space-y-3" data-testid="scale-form">
                                        <input type="hidden" name="id" value=d.id.clone() />
                                        <div class="grid grid-cols-3 gap-2">
                                            <div><label class=LABEL for="scale-min">"Min"</label><input class=INPUT id="scale-min" name="min_replicas" value=d.spec.min_replicas.to_string() /></div>
                                            <div><label class=LABEL for="scale-max">"Max"</label><input class=INPUT id="scale-max" name="max_replicas" value=d.spec.max_replicas.to_string() /></div>
                                            <div><label class=LABEL for="scale-priority">"Priority"</label><input class=INPUT id="scale-priority" name="priority" value=d.spec.priority.to_string() /></div>
                                        </div>
                                        <button type="submit" class=BUTTON>"Save"</button>
                                    </form>
                                </div>
                                <div class=CARD>
                                    <h2 class="mb-1 font-semibold">"Engine"</h2>
                                    <p class="mb-3 text-sm text-slate-500">"Changing these rolls the replicas over: new ones start, old ones drain once the new are ready."</p>
                                    <form method="post" action=UpdateEngine::url() class="space-y-3" data-testid="engine-form">
                                        <input type="hidden" name="id" value=d.id.clone() />
                                        <div class="grid grid-cols-2 gap-2">
                                            <div><label class=LABEL for="engine-max-model-len">"Max model length"</label><input class=INPUT id="engine-max-model-len" name="max_model_len" value=d.spec.engine.max_model_len.map(|n| n.to_string()).unwrap_or_default() placeholder="model default" /></div>
                                            <div><label class=LABEL for="engine-max-num-seqs">"Max sequences"</label><input class=INPUT id="engine-max-num-seqs" name="max_num_seqs" value=d.spec.engine.max_num_seqs.map(|n| n.to_string()).unwrap_or_default() placeholder="engine default" /></div>
                                        </div>
                                        <div>
                                            <label class=LABEL for="engine-dtype">"Dtype"</label>
                                            <select class=INPUT id="engine-dtype" name="dtype">
                                                {["", "auto", "bfloat16", "float16", "float32"].into_iter().map(|x| {
                                                    let selected = d.spec.engine.dtype.as_deref().unwrap_or("") == x;
                                                    view! { <option value=x selected=selected>{if x.is_empty() { "engine default" } else { x }}</option> }
                                                }).collect_view()}
                                            </select>
                                        </div>
                                        <div><label class=LABEL for="engine-extra">"Extra vLLM arguments"</label><input class=INPUT id="engine-extra" name="extra_args" value=d.spec.engine.extra_args.join(" ") placeholder="--enable-prefix-caching" /></div>
                                        <button type="submit" class=BUTTON>"Roll out"</button>
                                    </form>
                                </div>
                                <div class=CARD>
                                    <h2 class="mb-2 font-semibold">"Delete"</h2>
                                    <p class="mb-3 text-sm text-slate-500">"Its replicas leave the routes, finish their requests and stop; keys for the model answer 503 until it is deployed again."</p>
                                    <ConfirmForm action=DeleteDeployment::url() confirm=format!("Delete the deployment of {}? Its replicas will drain and stop.", d.spec.model_id) label="Delete deployment" fields=vec![("id", d.id.clone())] />
                                </div>
                            </section>
                        </div>
                    }.into_any() }
                }
            })}
        </Transition>
    }
}

/// A deployment's replicas, their output and its events.
#[component]
fn DeploymentPanel(page: DeploymentPage) -> impl IntoView {
    let DeploymentPage {
        deployment: d,
        events,
        logs,
    } = page;
    view! {
        <div class="mb-3 flex flex-wrap gap-4 text-sm" data-testid="deployment-summary">
            <span data-testid="ready-count">{format!("{} of {} replicas ready", d.ready_replicas, d.desired_replicas)}</span>
            <span class="text-slate-500">{d.scale_reason.clone().unwrap_or_default()}</span>
            <span class="text-slate-500">{format!("{:.1} GPU-hours", d.gpu_seconds / 3600.0)}</span>
        </div>
        {d.condition.clone().map(|c| view! { <ErrorBanner message=c /> })}
        <Replicas replicas=d.replicas />
        <Logs logs />
        <h2 class="mb-2 mt-6 font-semibold">"Events"</h2>
        <Events events=events />
    }
}

#[component]
fn Replicas(replicas: Vec<ReplicaView>) -> impl IntoView {
    if replicas.is_empty() {
        return view! { <EmptyState title="No replicas" hint="Scaled to zero: the next request wakes it." /> }.into_any();
    }
    view! {
        <div class=CARD>
            <table class=TABLE data-testid="replicas">
                <thead><tr><th class=TH>"Replica"</th><th class=TH>"State"</th><th class=TH>"Where"</th><th class=TH>"Restarts"</th><th class=TH>"Why"</th></tr></thead>
                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                    {replicas.into_iter().map(|r| view! {
                        <tr data-testid="replica-row" data-state=r.state.as_str()>
                            <td class=TD><span class="font-mono text-xs">{r.id.clone()}</span></td>
                            <td class=TD><ReplicaStateBadge state=r.state /></td>
                            <td class=TD>{match (&r.node, r.gpus.is_empty()) {
                                (Some(n), false) => format!("{n}, GPU {}", r.gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")),
                                (_, true) if r.state == ReplicaState::Stopped => "GPUs released".to_string(),
                                _ => "not placed".to_string(),
                            }}</td>
                            <td class=TD>{r.restarts}</td>
                            <td class=TD>
                                {r.reason.clone().map(|x| view! { <p class="text-sm">{x}</p> })}
                                {r.last_error.clone().map(|x| view! { <p class="text-xs text-red-600">{x}</p> })}
                            </td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }.into_any()
}

#[component]
fn Events(events: Vec<FleetEventView>) -> impl IntoView {
    if events.is_empty() {
        return view! { <p class="text-sm text-slate-500">"No events yet."</p> }.into_any();
    }
    view! {
        <ol class="space-y-1 text-sm" data-testid="events">
            {events.into_iter().map(|e| view! {
                <li class="flex gap-3">
                    <time class="w-40 shrink-0 font-mono text-xs text-slate-500">{e.at.format_utc()}</time>
                    <span class="w-20 shrink-0 font-medium" data-testid="event-kind">{e.kind.clone()}</span>
                    <span>{e.message.clone()}</span>
                </li>
            }).collect_view()}
        </ol>
    }.into_any()
}

/// Each replica's last output lines (engines run as local processes), folded.
#[component]
fn Logs(logs: Vec<(String, Vec<String>)>) -> impl IntoView {
    logs.into_iter()
        .map(|(replica, lines)| view! {
            <details class="mt-3" data-testid="replica-log">
                <summary class="cursor-pointer text-sm text-slate-600">{format!("Output of {replica} (last {} lines)", lines.len())}</summary>
                <pre class="mt-2 max-h-64 overflow-auto rounded bg-slate-900 p-3 text-xs text-slate-100">{lines.join("\n")}</pre>
            </details>
        })
        .collect_view()
}
