//! Usage: requests, tokens, errors, latency and cost over a range, with filters kept in the URL (a view can be
//! shared), a chart drawn on the server, the numbers in tables, the quotas, and the view's records as CSV.
//! Server-rendered, readable without JavaScript; no island.

use crate::{
    api::usage::{read_usage_dashboard, UsageParams},
    components::ui::*,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use tollgate_domain::{
    catalog::Price,
    usage::{rollup::Grain, status_reason, Named, UsageDashboard, UsageFigures, UsageGroup},
};

const RANGES: [(&str, &str); 5] = [
    ("hour", "Last hour"),
    ("day", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("custom", "Custom"),
];

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.0} ms"))
}

fn cost(v: Option<i64>) -> String {
    v.map_or_else(|| "–".to_string(), |c| Price(c).to_string())
}

fn percent(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// The export link: the same view, as the management API's CSV (the session authorizes it).
fn export_href(p: &UsageParams) -> String {
    let mut q = vec![
        (
            "range",
            if p.range.is_empty() {
                "day"
            } else {
                p.range.as_str()
            },
        ),
        ("team_id", p.team.as_str()),
        ("model", p.model.as_str()),
        ("key_id", p.key.as_str()),
        ("source", p.source.as_str()),
    ];
    if p.range == "custom" {
        q.push(("from", p.from.as_str()));
        q.push(("until", p.until.as_str()));
        q.retain(|(k, _)| *k != "range");
    }
    match p.tenant.as_str() {
        "" => {}
        "all" => q.push(("all_tenants", "true")),
        t => q.push(("tenant", t)),
    }
    let query: Vec<String> = q
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    format!("/api/v1/usage/export.csv?{}", query.join("&"))
}

#[component]
pub fn UsagePage() -> impl IntoView {
    let query = use_query_map();
    let params = Memo::new(move |_| {
        query.with(|q| {
            let get = |k: &str| q.get(k).unwrap_or_default();
            UsageParams {
                range: get("range"),
                from: get("from"),
                until: get("until"),
                tenant: get("tenant"),
                team: get("team"),
                model: get("model"),
                key: get("key"),
                source: get("source"),
            }
        })
    });
    let data = Resource::new(move || params.get(), read_usage_dashboard);
    view! {
        <Title text="Usage" />
        <Transition fallback=|| view! { <p class="text-slate-500">"Reading usage..."</p> }>
            {move || Suspend::new(async move {
                let p = params.get_untracked();
                match data.await {
                    Err(e) => view! { <PageHeader title="Usage" /><LoadError error=e /> }.into_any(),
                    Ok(d) => view! { <Dashboard d p /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Choice(
    id: &'static str,
    label: &'static str,
    current: String,
    any: &'static str,
    options: Vec<(String, String)>,
) -> impl IntoView {
    view! {
        <div>
            <label class=LABEL for=id>{label}</label>
            <select id=id name=id class=INPUT>
                <option value="">{any}</option>
                {options.into_iter().map(|(value, text)| {
                    let selected = value == current;
                    view! { <option value=value selected=selected>{text}</option> }
                }).collect_view()}
            </select>
        </div>
    }
}

fn named(list: &[Named]) -> Vec<(String, String)> {
    list.iter()
        .map(|n| (n.id.clone(), n.name.clone()))
        .collect()
}

fn name_of(list: &[Named], id: &str) -> String {
    list.iter()
        .find(|n| n.id == id)
        .map_or_else(|| id.to_string(), |n| n.name.clone())
}

#[component]
fn Dashboard(d: UsageDashboard, p: UsageParams) -> impl IntoView {
    let range = if p.range.is_empty() {
        "day".to_string()
    } else {
        p.range.clone()
    };
    let mut tenant_options = vec![("all".to_string(), "Every tenant".to_string())];
    tenant_options.extend(named(&d.tenants));
    let t = d.totals.clone();
    let export = export_href(&p);
    let subtitle = format!(
        "{} · {} to {} · buckets of a {}",
        d.scope,
        d.from.format_utc(),
        d.until.format_utc(),
        d.grain.as_str()
    );
    let teams = d.teams.clone();
    let models = d.models.clone();
    let tenants = d.tenants.clone();
    let plans = d.plans.clone();
    view! {
        <PageHeader title="Usage" subtitle=subtitle />
        <p class="-mt-4 mb-4 text-sm"><a class="underline" href="/usage/alerts" data-testid="usage-alerts-link">"Alerts: quota thresholds and rate limits →"</a></p>
        <form method="get" class="mb-6 grid gap-3 sm:grid-cols-2 lg:grid-cols-4" data-testid="usage-filters">
            <div>
                <label class=LABEL for="range">"Time range"</label>
                <select id="range" name="range" class=INPUT>
                    {RANGES.into_iter().map(|(v, l)| view! { <option value=v selected=v == range>{l}</option> }).collect_view()}
                </select>
            </div>
            <div>
                <label class=LABEL for="from">"From (custom)"</label>
                <input id="from" name="from" type="date" class=INPUT value=p.from.clone() />
            </div>
            <div>
                <label class=LABEL for="until">"Until (custom, inclusive)"</label>
                <input id="until" name="until" type="date" class=INPUT value=p.until.clone() />
            </div>
            {d.platform.then(|| view! {
                <Choice id="tenant" label="Tenant" current=p.tenant.clone() any="Current tenant" options=tenant_options.clone() />
            })}
            <Choice id="team" label="Team" current=p.team.clone() any="Any team" options=named(&d.teams) />
            <Choice id="model" label="Model" current=p.model.clone() any="Any model" options=named(&d.models) />
            <Choice id="key" label="API key" current=p.key.clone() any="Any key" options=d.keys.iter().map(|k| (k.clone(), format!("tg-{k}"))).collect() />
            <Choice id="source" label="Source" current=p.source.clone() any="API keys and playground" options=vec![("key".into(), "API keys".into()), ("playground".into(), "Playground".into())] />
            <div class="flex items-end gap-2 lg:col-span-4">
                <button type="submit" class=BUTTON>"Apply"</button>
                <a href="/usage" class=BUTTON_SECONDARY>"Clear"</a>
                <a href=export class=BUTTON_SECONDARY data-testid="usage-export" download="tollgate-usage.csv">"Export CSV"</a>
            </div>
        </form>

        <section class="mb-6 grid gap-3 sm:grid-cols-2 lg:grid-cols-4" data-testid="usage-totals">
            <Stat label="Requests" value=t.requests.to_string() testid="total-requests" />
            <Stat label="Tokens (prompt + completion)" value=format!("{} ({} + {})", t.tokens(), t.prompt_tokens, t.completion_tokens) testid="total-tokens" />
            <Stat label="Errors (429s)" value=format!("{} ({}) · {}", t.errors, t.rate_limited, percent(t.error_rate)) testid="total-errors" />
            <Stat label="Cost at list prices" value=cost(t.cost_micros) testid="total-cost" />
            <Stat label="Latency p50 / p95 / p99" value=format!("{} / {} / {}", ms(t.latency_p50_ms), ms(t.latency_p95_ms), ms(t.latency_p99_ms)) testid="total-latency" />
            <Stat label="Time to first token p50 / p95 / p99" value=format!("{} / {} / {}", ms(t.ttft_p50_ms), ms(t.ttft_p95_ms), ms(t.ttft_p99_ms)) testid="total-ttft" />
        </section>
        <p class="mb-6 text-sm text-slate-500" data-testid="real-cost">
            "Real cost per 1M tokens from GPU time: the fleet does not record GPU-seconds yet, so only list prices are shown."
        </p>

        <section class=format!("{CARD} mb-6") aria-label="Tokens over time">
            <h2 class="mb-2 font-semibold">"Tokens per " {d.grain.as_str()}</h2>
            <div data-testid="usage-chart" inner_html=d.chart_svg.clone()></div>
            <details class="mt-2 text-sm">
                <summary>"The numbers"</summary>
                <Groups testid="usage-series" first="Bucket" rows=d.series.clone() label=move |g: &UsageGroup| g.bucket.map(|b| if d.grain == Grain::Day { b.format_date() } else { b.format_utc() }).unwrap_or_default() show_cost=false />
            </details>
        </section>

        <div class="grid gap-6 lg:grid-cols-2">
            <Breakdown title="By model" testid="usage-by-model" first="Model" rows=d.by_model.clone() label=move |g: &UsageGroup| name_of(&models, &g.value) show_cost=true />
            {(!d.by_tenant.is_empty()).then(|| view! {
                <Breakdown title="By tenant" testid="usage-by-tenant" first="Tenant" rows=d.by_tenant.clone() label=move |g: &UsageGroup| name_of(&tenants, &g.value) show_cost=false />
            })}
            <Breakdown title="Top teams" testid="usage-by-team" first="Team" rows=d.by_team.clone() label=move |g: &UsageGroup| name_of(&teams, &g.value) show_cost=false />
            <Breakdown title="Top keys" testid="usage-by-key" first="Key" rows=d.by_key.clone() label=|g: &UsageGroup| if g.value.is_empty() { "(playground)".to_string() } else { format!("tg-{}", g.value) } show_cost=false />
            <Breakdown title="By source" testid="usage-by-source" first="Source" rows=d.by_source.clone() label=|g: &UsageGroup| g.value.clone() show_cost=false />
            <Breakdown title="By plan" testid="usage-by-plan" first="Plan" rows=d.by_plan.clone() label=move |g: &UsageGroup| name_of(&plans, &g.value) show_cost=true />
        </div>

        {(!d.deprecated_in_use.is_empty()).then(|| {
            let teams = d.teams.clone();
            let tenants = d.tenants.clone();
            view! {
                <section class=format!("{CARD} mt-6") aria-label="Deprecated models still in use" data-testid="usage-deprecated">
                    <h2 class="mb-2 font-semibold">"Deprecated models still in use"</h2>
                    {d.deprecated_in_use.iter().map(|u| {
                        let (teams, tenants) = (teams.clone(), tenants.clone());
                        view! {
                            <h3 class="mt-2 text-sm font-semibold">{format!("{} ({})", u.model.name, u.status)}</h3>
                            <Groups testid="deprecated-users" first="Used by" rows=u.users.clone() label=move |g: &UsageGroup| {
                                let team = name_of(&teams, &g.value);
                                if team != g.value { team } else { name_of(&tenants, &g.value) }
                            } show_cost=false />
                        }
                    }).collect_view()}
                </section>
            }
        })}

        {(!d.adoption.is_empty()).then(|| view! {
            <section class=format!("{CARD} mt-6") aria-label="Adoption">
                <h2 class="mb-2 font-semibold">"Adoption per " {d.grain.as_str()}</h2>
                <table class=TABLE data-testid="usage-adoption">
                    <thead><tr><th class=TH>"Bucket"</th><th class=TH>"Teams with usage"</th><th class=TH>"New subscriptions"</th></tr></thead>
                    <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                        {d.adoption.iter().map(|a| view! {
                            <tr>
                                <td class=TD>{if d.grain == Grain::Day { a.bucket.format_date() } else { a.bucket.format_utc() }}</td>
                                <td class=TD>{a.active_teams}</td>
                                <td class=TD>{a.new_subscriptions}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        })}

        <section class=format!("{CARD} mt-6") aria-label="Quotas">
            <h2 class="mb-2 font-semibold">"Monthly quotas and rate limits"</h2>
            {if d.quotas.is_empty() {
                view! { <p class="text-sm text-slate-500">"No active subscriptions in this view."</p> }.into_any()
            } else {
                view! {
                    <table class=TABLE data-testid="usage-quotas">
                        <thead><tr>
                            <th class=TH>"Model"</th><th class=TH>"Team"</th><th class=TH>"Plan"</th>
                            <th class=TH>"Tokens this month"</th><th class=TH>"Monthly quota"</th><th class=TH>"Remaining"</th>
                            <th class=TH>"Requests this minute"</th><th class=TH>"Tokens this minute"</th>
                        </tr></thead>
                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                            {d.quotas.iter().map(|q| {
                                let limit = |v: Option<u32>| v.map_or("no limit".to_string(), |v| v.to_string());
                                view! {
                                    <tr data-subscription=q.subscription_id.clone()>
                                        <td class=TD>{q.model_name.clone()}</td>
                                        <td class=TD>{q.team_name.clone()}</td>
                                        <td class=TD>{q.plan_name.clone()}</td>
                                        <td class=TD data-testid="quota-used">{q.used_tokens}</td>
                                        <td class=TD>{q.monthly_tokens.map_or("no quota".to_string(), |m| m.to_string())}</td>
                                        <td class=TD data-testid="quota-remaining">{match (q.remaining_tokens, q.used_percent) {
                                            (Some(r), Some(p)) => format!("{r} ({p:.1} % used)"),
                                            (Some(r), None) => r.to_string(),
                                            _ => "–".to_string(),
                                        }}</td>
                                        <td class=TD>{format!("{} of {}", q.requests_this_minute, limit(q.requests_per_minute))}</td>
                                        <td class=TD>{format!("{} of {}", q.tokens_this_minute, limit(q.tokens_per_minute))}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>

        <section class=format!("{CARD} mt-6") aria-label="Recent errors and refusals">
            <h2 class="mb-2 font-semibold">"Recent errors and refusals"</h2>
            {if d.recent_errors.is_empty() {
                view! { <p class="text-sm text-slate-500" data-testid="usage-errors-empty">"No errors or refusals in this view."</p> }.into_any()
            } else {
                let teams = d.teams.clone();
                let models = d.models.clone();
                view! {
                    <table class=TABLE data-testid="usage-errors">
                        <thead><tr>
                            <th class=TH>"Time"</th><th class=TH>"Model"</th><th class=TH>"Team"</th><th class=TH>"Key"</th>
                            <th class=TH>"Status"</th><th class=TH>"Reason"</th><th class=TH>"Request id"</th>
                        </tr></thead>
                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                            {d.recent_errors.iter().map(|r| view! {
                                <tr>
                                    <td class=TD>{r.at.format_utc()}</td>
                                    <td class=TD>{name_of(&models, &r.model)}</td>
                                    <td class=TD>{name_of(&teams, &r.team_id)}</td>
                                    <td class=TD>{r.key_id.as_ref().map_or("(playground)".to_string(), |k| format!("tg-{k}"))}</td>
                                    <td class=TD data-testid="error-status">{r.status}</td>
                                    <td class=TD>{status_reason(r.status, &r.refusal)}</td>
                                    <td class="px-3 py-2 font-mono text-xs">{r.request_id.clone()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn Stat(label: &'static str, value: String, testid: &'static str) -> impl IntoView {
    view! {
        <div class=CARD>
            <div class="text-sm text-slate-500">{label}</div>
            <div class="mt-1 text-lg font-semibold" data-testid=testid>{value}</div>
        </div>
    }
}

#[component]
fn Breakdown<L: Fn(&UsageGroup) -> String + 'static>(
    title: &'static str,
    testid: &'static str,
    first: &'static str,
    rows: Vec<UsageGroup>,
    label: L,
    show_cost: bool,
) -> impl IntoView {
    view! {
        <section class=CARD aria-label=title>
            <h2 class="mb-2 font-semibold">{title}</h2>
            <Groups testid first rows label show_cost />
        </section>
    }
}

#[component]
fn Groups<L: Fn(&UsageGroup) -> String + 'static>(
    testid: &'static str,
    first: &'static str,
    rows: Vec<UsageGroup>,
    label: L,
    show_cost: bool,
) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="text-sm text-slate-500" data-testid=testid>"No usage in this view."</p> }.into_any();
    }
    view! {
        <table class=TABLE data-testid=testid>
            <thead><tr>
                <th class=TH>{first}</th><th class=TH>"Requests"</th><th class=TH>"Tokens"</th><th class=TH>"Errors"</th>
                <th class=TH>"p95 latency"</th>
                {show_cost.then(|| view! { <th class=TH>"Cost"</th> })}
            </tr></thead>
            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                {rows.iter().map(|g| {
                    let f: &UsageFigures = &g.figures;
                    view! {
                        <tr data-value=g.value.clone()>
                            <td class=TD>{label(g)}</td>
                            <td class=TD data-testid="requests">{f.requests}</td>
                            <td class=TD data-testid="tokens">{f.tokens()}</td>
                            <td class=TD>{format!("{} ({} × 429)", f.errors, f.rate_limited)}</td>
                            <td class=TD>{ms(f.latency_p95_ms)}</td>
                            {show_cost.then(|| view! { <td class=TD data-testid="cost">{cost(f.cost_micros)}</td> })}
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
