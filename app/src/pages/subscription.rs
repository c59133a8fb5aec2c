//! One subscription: its state and history, the decisions the caller may take, and its API keys (create — shown
//! once — rotate with a grace period, revoke).

use crate::{
    api::{
        catalog::list_plans,
        keys::{key_choices, list_keys, CreateKey, RevokeKey, RotateKey},
        subscriptions::{get_subscription, ChangePlan, DecideSubscription},
    },
    components::{badges::*, layout::is_tenant_admin, ui::*},
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use tollgate_domain::{
    api_key::{KeyCoverage, KeyCreated, KeyView},
    subscription::{State, SubscriptionView},
    views::Me,
};

#[component]
pub fn SubscriptionPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id")).unwrap_or_default();
    let sub = Resource::new(id, get_subscription);
    view! {
        <FormError />
        <a class="text-sm text-indigo-600 hover:underline" href="/subscriptions">"← Subscriptions"</a>
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading the subscription..."</p> }>
            {move || Suspend::new(async move {
                match sub.await {
                    Err(e) => view! { <LoadError error=e /> }.into_any(),
                    Ok((s, _)) => {
                        let active = s.state == State::Active;
                        // What else a new key may cover: the team's other active subscriptions (none for a caller
                        // who may not make keys, or when this one is not active).
                        let choices = if active { key_choices(s.id.clone()).await.unwrap_or_default() } else { Vec::new() };
                        view! {
                            <Title text=format!("{} · {}", s.model_name, s.team_name) />
                            <Summary s=s.clone() />
                            <KeysPanel subscription_id=s.id.clone() active><CoverageChoice choices /></KeysPanel>
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn Summary(s: SubscriptionView) -> impl IntoView {
    let me = expect_context::<Me>();
    let admin = is_tenant_admin(&me);
    let id = s.id.clone();
    view! {
        <header class="mb-6 mt-2 flex flex-wrap items-start justify-between gap-3">
            <div>
                <h1 class="text-2xl font-bold tracking-tight">{s.model_name.clone()}</h1>
                <p class="text-sm text-slate-500">
                    "Team " <span class="font-medium">{s.team_name.clone()}</span> " · plan " <span class="font-medium" data-testid="plan-name">{s.plan_name.clone()}</span>
                    " · model id " <code class="font-mono">{s.model_id.clone()}</code>
                </p>
                <LifecycleNotice notice=s.model_notice.clone() />
            </div>
            <SubscriptionBadge state=s.state />
        </header>
        <section class=format!("{CARD} mb-6")>
            <dl class="grid gap-3 text-sm sm:grid-cols-4">
                <div><dt class="text-xs font-medium text-slate-500">"Requested by"</dt><dd>{s.requested_by.clone()}</dd></div>
                <div><dt class="text-xs font-medium text-slate-500">"Requested"</dt><dd>{s.created_at.format_utc()}</dd></div>
                <div><dt class="text-xs font-medium text-slate-500">"Last change"</dt><dd>{s.updated_at.format_utc()}{s.decided_by.clone().map(|d| format!(" by {d}"))}</dd></div>
                <div><dt class="text-xs font-medium text-slate-500">"Note"</dt><dd>{if s.note.is_empty() { "—".to_string() } else { s.note.clone() }}</dd></div>
            </dl>
            {(!s.reason.is_empty()).then(|| view! {
                <p class="mt-3 rounded-md bg-amber-50 p-2 text-sm text-amber-900 dark:bg-amber-950 dark:text-amber-200" data-testid="decision-reason">{format!("Reason: {}", s.reason)}</p>
            })}
            {s.state.is_pending().then(|| view! {
                <p class="mt-3 text-sm text-slate-600 dark:text-slate-400">{match s.state {
                    State::PendingTenant => "Waiting for a tenant admin to approve. You can create keys once it is active.",
                    _ => "Waiting for a platform admin to approve this restricted model.",
                }}</p>
            })}
            <Decisions s=s.clone() admin platform=me.platform_admin />
            {(admin && matches!(s.state, State::Active | State::Suspended)).then(|| view! { <PlanChange id=id.clone() current=s.plan_id.clone() /> })}
        </section>
    }
}

/// The buttons for the changes this user may make now; the server checks again.
#[component]
fn Decisions(s: SubscriptionView, admin: bool, platform: bool) -> impl IntoView {
    let may_approve = match s.state {
        State::PendingTenant => admin,
        State::PendingPlatform => platform,
        _ => false,
    };
    let id = s.id.clone();
    let with_reason = |change: &'static str, label: &'static str, id: String| {
        view! {
            <form method="post" action=DecideSubscription::url() class="flex items-end gap-2">
                <input type="hidden" name="id" value=id />
                <input type="hidden" name="change" value=change />
                <div>
                    <label class="sr-only" for=format!("reason-{change}")>"Reason"</label>
                    <input id=format!("reason-{change}") name="reason" class=INPUT placeholder="Reason (shown to the team)" required maxlength="500" />
                </div>
                <button type="submit" class=BUTTON_DANGER>{label}</button>
            </form>
        }
    };
    view! {
        <div class="mt-4 flex flex-wrap items-end gap-3">
            {may_approve.then(|| view! {
                <form method="post" action=DecideSubscription::url()>
                    <input type="hidden" name="id" value=id.clone() />
                    <input type="hidden" name="change" value="approve" />
                    <input type="hidden" name="reason" value="" />
                    <button type="submit" class=BUTTON>"Approve"</button>
                </form>
            })}
            {may_approve.then(|| with_reason("reject", "Reject", id.clone()))}
            {(admin && s.state == State::Active).then(|| with_reason("suspend", "Suspend", id.clone()))}
            {(admin && s.state == State::Suspended).then(|| view! {
                <form method="post" action=DecideSubscription::url()>
                    <input type="hidden" name="id" value=id.clone() />
                    <input type="hidden" name="change" value="resume" />
                    <input type="hidden" name="reason" value="" />
                    <button type="submit" class=BUTTON>"Resume"</button>
                </form>
            })}
            {s.state.is_live().then(|| view! {
                <ConfirmForm action=DecideSubscription::url() confirm="Cancel this subscription? Its keys stop working at once." label="Cancel subscription"
                    fields=vec![("id", id.clone()), ("change", "cancel".into()), ("reason", String::new())] />
            })}
        </div>
    }
}

#[component]
fn PlanChange(id: String, current: String) -> impl IntoView {
    let plans = Resource::new(|| (), |_| list_plans(String::new()));
    view! {
        <form method="post" action=ChangePlan::url() class="mt-4 flex items-end gap-2">
            <input type="hidden" name="id" value=id />
            <div>
                <label class=LABEL for="change-plan">"Move to plan"</label>
                <select id="change-plan" name="plan_id" class=INPUT>
                    <Suspense fallback=|| ()>
                        {move || {
                            let current = current.clone();
                            Suspend::new(async move {
                                plans.await.map(|ps| ps.into_iter().filter(|p| !p.archived).map(|p| {
                                    let selected = p.id == current;
                                    view! { <option value=p.id selected=selected>{p.name}</option> }
                                }).collect_view()).ok()
                            })
                        }}
                    </Suspense>
                </select>
            </div>
            <button type="submit" class=BUTTON_SECONDARY>"Change plan"</button>
        </form>
    }
}

/// The keys of a subscription: the one interactive part of the page (an island), because a created or rotated
/// key is shown once, in place, and the list refreshes without leaving the page.
#[island]
fn KeysPanel(subscription_id: String, active: bool, children: Children) -> impl IntoView {
    let create = ServerAction::<CreateKey>::new();
    let rotate = ServerAction::<RotateKey>::new();
    let id = subscription_id.clone();
    let sub_id = subscription_id;
    let keys = Resource::new(
        move || (create.version().get(), rotate.version().get()),
        move |_| {
            let id = id.clone();
            async move { list_keys(id).await }
        },
    );
    // The new-key form is rendered once, outside the list that refreshes: its model choices are server-rendered
    // children (`CoverageChoice`), so they cost the island nothing.
    view! {
        <div class="grid gap-6 lg:grid-cols-3">
            <section class=format!("{CARD} lg:col-span-2")>
                <h2 class="mb-3 font-semibold">"API keys"</h2>
                <ShownOnce result=move || create.value().get() />
                <ShownOnce result=move || rotate.value().get() />
                <Transition fallback=|| view! { <p class="text-slate-500">"Loading keys..."</p> }>
                    {move || Suspend::new(async move {
                        match keys.await {
                            Err(e) => view! { <LoadError error=e /> }.into_any(),
                            Ok(keys) => view! { <KeyList active keys rotate /> }.into_any(),
                        }
                    })}
                </Transition>
            </section>
            {active.then(move || view! {
                <section class=CARD>
                    <h2 class="mb-3 font-semibold">"New key"</h2>
                    <ActionForm action=create attr:class="space-y-3">
                        <input type="hidden" name="subscription_id" value=sub_id.clone() />
                        <div>
                            <label class=LABEL for="key-name">"Name"</label>
                            <input class=INPUT id="key-name" name="name" required maxlength="60" placeholder="e.g. staging backend" />
                        </div>
                        {children()}
                        <div>
                            <label class=LABEL for="key-expiry">"Expires"</label>
                            <select class=INPUT id="key-expiry" name="expiry_days">
                                <option value="">"Never"</option>
                                <option value="7">"In 7 days"</option>
                                <option value="30">"In 30 days"</option>
                                <option value="90" selected=true>"In 90 days"</option>
                                <option value="365">"In a year"</option>
                            </select>
                        </div>
                        <button type="submit" class=BUTTON disabled=move || create.pending().get()>"Create key"</button>
                    </ActionForm>
                </section>
            })}
        </div>
    }
}

/// What a new key covers besides this subscription: one `<select>`, rendered on the server.
#[component]
fn CoverageChoice(choices: Vec<KeyCoverage>) -> impl IntoView {
    // Its own bottom margin: the form's `space-y-3` does not reach through the island's children wrapper.
    view! {
        <div class="mb-3">
            <label class=LABEL for="key-coverage">"Models"</label>
            <select class=INPUT id="key-coverage" name="coverage">
                <option value="">"This model only"</option>
                {choices.into_iter().map(|c| view! { <option value=c.subscription_id>{format!("This model and {}", c.model_id)}</option> }).collect_view()}
                <option value="team">"Every model of this team, now and later"</option>
            </select>
        </div>
    }
}

#[component]
fn KeyList(active: bool, keys: Vec<KeyView>, rotate: ServerAction<RotateKey>) -> impl IntoView {
    view! {
                {if keys.is_empty() {
                    view! { <EmptyState title="No keys yet" hint=if active { "Create a key to call this model." } else { "Keys can be created once the subscription is active." } /> }.into_any()
                } else {
                    view! {
                        <table class=TABLE data-testid="keys">
                            <thead><tr><th class=TH>"Name"</th><th class=TH>"Key"</th><th class=TH>"State"</th><th class=TH>"Created"</th><th class=TH>"Last used"</th><th class=TH>"Expires"</th><th class=TH></th></tr></thead>
                            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                {keys.into_iter().map(|k| {
                                    let usable = k.state.usable();
                                    let rotatable = k.state == tollgate_domain::api_key::KeyState::Active;
                                    let (rotate_id, revoke_id, revoke_name) = (k.id.clone(), k.id.clone(), k.name.clone());
                                    view! {
                                        <tr data-key=k.id.clone()>
                                            <td class=TD>
                                                {k.name.clone()}<p class="text-xs text-slate-500">{format!("by {}", k.created_by)}</p>
                                                {covers(&k)}
                                            </td>
                                            <td class=TD><code class="font-mono text-xs" data-testid="key-prefix">{format!("{}…", k.prefix)}</code></td>
                                            <td class=TD><KeyBadge state=k.state /></td>
                                            <td class=TD>{k.created_at.format_utc()}</td>
                                            <td class=TD>{k.last_used_at.map(|t| t.format_utc()).unwrap_or_else(|| "never".into())}</td>
                                            <td class=TD>{k.expires_at.map(|t| t.format_utc()).unwrap_or_else(|| "never".into())}</td>
                                            <td class=TD>
                                                <div class="flex flex-wrap gap-2">
                                                    {rotatable.then(move || view! {
                                                        <ActionForm action=rotate attr:class="flex gap-1">
                                                            <input type="hidden" name="key_id" value=rotate_id.clone() />
                                                            <label class="sr-only" for=format!("grace-{rotate_id}")>"Old key stays valid for"</label>
                                                            <select id=format!("grace-{rotate_id}") name="grace_hours" class="rounded-md border-0 py-1 text-xs ring-1 ring-slate-300 dark:bg-slate-800" title="How long the old key keeps working">
                                                                <option value="0">"old key stops now"</option>
                                                                <option value="1">"1 hour grace"</option>
                                                                <option value="24" selected=true>"24 hours grace"</option>
                                                                <option value="168">"7 days grace"</option>
                                                            </select>
                                                            <button type="submit" class=BUTTON_SECONDARY>"Rotate"</button>
                                                        </ActionForm>
                                                    })}
                                                    {usable.then(move || view! {
                                                        <ConfirmForm action=RevokeKey::url() confirm=format!("Revoke the key {revoke_name}? Programs using it stop working within seconds.") label="Revoke" fields=vec![("key_id", revoke_id)] />
                                                    })}
                                                </div>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
    }
}

/// The other models a key covers, under its name.
fn covers(key_view: &KeyView) -> Option<impl IntoView> {
    let text = if key_view.team_wide {
        Some("Also: every model of the team".to_string())
    } else if key_view.also.is_empty() {
        None
    } else {
        let models: Vec<&str> = key_view.also.iter().map(|c| c.model_id.as_str()).collect();
        Some(format!("Also: {}", models.join(", ")))
    };
    text.map(|t| view! { <p class="text-xs text-indigo-700 dark:text-indigo-300" data-testid="key-covers">{t}</p> })
}

/// A key just created or rotated: the only time its secret is shown.
#[component]
fn ShownOnce(
    result: impl Fn() -> Option<Result<KeyCreated, crate::error::AppError>> + Send + Sync + 'static,
) -> impl IntoView {
    move || {
        result().map(|r| match r {
        Err(e) => view! { <ErrorBanner message=describe(&e) /> }.into_any(),
        Ok(created) => view! {
            <div class="mb-4 rounded-md bg-indigo-50 p-3 text-sm ring-1 ring-indigo-200 dark:bg-indigo-950 dark:ring-indigo-900" data-testid="key-created">
                <p class="mb-2 font-medium">{format!("Your new key \"{}\". Copy it now: it is shown only once.", created.key.name)}</p>
                <code class="block break-all rounded bg-white p-2 font-mono text-xs dark:bg-slate-900" data-testid="key-secret">{created.secret.clone()}</code>
                <div class="mt-2"><CopyButton text=created.secret label="Copy key" /></div>
            </div>
        }.into_any(),
    })
    }
}
