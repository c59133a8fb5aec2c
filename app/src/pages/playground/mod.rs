//! The playground: try a subscribed model in the browser. The page is server-rendered around one island,
//! `Playground`, which holds the conversation and streams each reply from `POST /playground/api/...` (the gateway,
//! under the team's subscription, authorized by the session; no API key) with `fetch` and a `ReadableStream`,
//! token by token. Two models (or one with two settings) can answer side by side. The conversation is kept in the
//! browser's `localStorage`. What needs no browser lives in `session.rs`; the browser calls in `net.rs`.

#[cfg(feature = "hydrate")]
mod net;
pub mod session;

use crate::{api::playground::playground_choices, components::ui::*};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use session::*;
use tollgate_domain::{
    catalog::Task,
    playground::{PlaygroundChoice, PlaygroundSetup},
};

#[component]
pub fn PlaygroundPage() -> impl IntoView {
    let model = use_query_map()
        .with_untracked(|q| q.get("model"))
        .unwrap_or_default();
    let setup = Resource::new(|| (), |_| playground_choices());
    view! {
        <Title text="Playground" />
        <PageHeader title="Playground" subtitle="Try your teams' subscribed models: replies stream through the gateway under the subscription's limits and are metered as playground traffic. No API key is needed here." />
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading your models..."</p> }>
            {move || {
                let model = model.clone();
                Suspend::new(async move {
                    match setup.await {
                        Err(e) => view! { <LoadError error=e /> }.into_any(),
                        Ok(setup) => view! { <Playground setup model /> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

/// Every signal of the playground, in one `Copy` handle.
#[derive(Clone, Copy)]
struct Ctx {
    choices: StoredValue<Vec<PlaygroundChoice>>,
    api_base: StoredValue<String>,
    picks: [RwSignal<String>; 2],
    compare: RwSignal<bool>,
    system: RwSignal<String>,
    settings: [RwSignal<Settings>; 2],
    turns: RwSignal<Vec<Turn>>,
    draft: RwSignal<String>,
    problem: RwSignal<Option<String>>,
    /// Replies streaming now.
    running: RwSignal<usize>,
    /// The turn being edited, and its new text (read only when saved, so typing re-renders nothing).
    editing: RwSignal<Option<usize>>,
    edit_text: RwSignal<String>,
    code: RwSignal<Option<Lang>>,
    #[cfg(feature = "hydrate")]
    aborts: StoredValue<Vec<web_sys::AbortController>, LocalStorage>,
}

impl Ctx {
    /// The usable choice picked on `side`.
    fn choice(self, side: usize) -> Option<PlaygroundChoice> {
        let pick = self.picks[side].get();
        self.choices.with_value(|all| {
            all.iter()
                .find(|c| c.usable() && c.subscription_id.as_deref() == Some(pick.as_str()))
                .cloned()
        })
    }

    fn task(self) -> Task {
        self.choice(0).map(|c| c.task).unwrap_or(Task::Chat)
    }

    fn sides(self) -> usize {
        if self.compare.get() && self.task() != Task::Embeddings {
            2
        } else {
            1
        }
    }

    /// The request for turn `upto` on `side`, with its model.
    fn request(
        self,
        turns: &[Turn],
        upto: usize,
        side: usize,
    ) -> Result<(PlaygroundChoice, serde_json::Value), String> {
        let choice = self.choice(side).ok_or_else(|| {
            if side == 0 {
                "Pick a model first.".to_string()
            } else {
                "Pick the second model to compare with.".to_string()
            }
        })?;
        let settings = self.settings[side].get_untracked();
        let body = body(
            choice.task,
            &choice.model_id,
            &self.system.get_untracked(),
            turns,
            upto,
            side,
            &settings,
        )
        .map_err(|e| {
            if self.sides() > 1 {
                format!("{}: {e}", side_name(side))
            } else {
                e
            }
        })?;
        Ok((choice, body))
    }

    /// Sends turn `upto` to every side, replacing earlier replies.
    fn run(self, upto: usize) {
        let turns = self.turns.get_untracked();
        let mut calls = Vec::new();
        for side in 0..self.sides() {
            match self.request(&turns, upto, side) {
                Ok(call) => calls.push((side, call)),
                Err(e) => {
                    self.problem.set(Some(e));
                    return;
                }
            }
        }
        self.problem.set(None);
        for (side, (choice, body)) in calls {
            self.turns.update(|t| {
                if let Some(turn) = t.get_mut(upto) {
                    turn.replies[side] = Reply {
                        state: ReplyState::Waiting,
                        ..Reply::default()
                    };
                }
            });
            #[cfg(feature = "hydrate")]
            leptos::task::spawn_local(call(self, side, upto, choice, body.to_string()));
            #[cfg(not(feature = "hydrate"))]
            let _ = (choice, body);
        }
    }

    fn send(self) {
        let text = self.draft.get_untracked();
        if text.trim().is_empty() || self.running.get_untracked() > 0 {
            return;
        }
        if self.choice(0).is_none() {
            self.problem.set(Some("Pick a model first.".into()));
            return;
        }
        // Completions and embeddings answer one input at a time: no conversation to carry.
        if self.task() != Task::Chat {
            self.turns.set(Vec::new());
        }
        self.turns.update(|t| {
            t.push(Turn {
                user: text,
                ..Turn::default()
            })
        });
        self.draft.set(String::new());
        let last = self.turns.with_untracked(|t| t.len().saturating_sub(1));
        self.run(last);
    }

    /// Stops every reply streaming now: the gateway sees the client leave and cuts the engine's stream.
    fn stop(self) {
        #[cfg(feature = "hydrate")]
        self.aborts.update_value(|all| {
            for c in all.drain(..) {
                c.abort();
            }
        });
    }

    fn clear(self) {
        self.stop();
        self.turns.set(Vec::new());
        self.editing.set(None);
        self.problem.set(None);
    }

    /// The next request as code: the conversation so far plus the message being written.
    fn snippet(self, lang: Lang) -> String {
        let mut turns = self.turns.get();
        let draft = self.draft.get();
        if !draft.trim().is_empty() || turns.is_empty() {
            turns.push(Turn {
                user: if draft.trim().is_empty() {
                    "Hello!".into()
                } else {
                    draft
                },
                ..Turn::default()
            });
        }
        let upto = turns.len() - 1;
        self.system.track();
        self.settings[0].track();
        match self.request(&turns, upto, 0) {
            Ok((choice, body)) => snippet(lang, &self.api_base.get_value(), choice.task, &body),
            Err(e) => e,
        }
    }

    fn saved(self) -> Saved {
        Saved {
            picks: [self.picks[0].get(), self.picks[1].get()],
            compare: self.compare.get(),
            system: self.system.get(),
            settings: [self.settings[0].get(), self.settings[1].get()],
            turns: self.turns.get(),
        }
    }

    fn restore(self, saved: Saved, keep_pick: bool) {
        let usable = |pick: &str| {
            self.choices.with_value(|all| {
                all.iter()
                    .any(|c| c.usable() && c.subscription_id.as_deref() == Some(pick))
            })
        };
        let model_of = |pick: &str| {
            self.choices.with_value(|all| {
                all.iter()
                    .find(|c| c.subscription_id.as_deref() == Some(pick))
                    .map(|c| c.model_id.clone())
            })
        };
        for side in 0..2 {
            // A link to a model keeps that model, but the subscription (team) picked for it before stays picked.
            let same_model =
                || model_of(&saved.picks[0]) == model_of(&self.picks[0].get_untracked());
            if (!(keep_pick && side == 0) || same_model()) && usable(&saved.picks[side]) {
                self.picks[side].set(saved.picks[side].clone());
            }
            self.settings[side].set(saved.settings[side].clone());
        }
        self.compare.set(saved.compare);
        self.system.set(saved.system);
        // A reply that was streaming when the page closed ended there.
        let mut turns = saved.turns;
        for r in turns.iter_mut().flat_map(|t| t.replies.iter_mut()) {
            if matches!(r.state, ReplyState::Waiting | ReplyState::Streaming) {
                r.state = ReplyState::Stopped;
                r.note = "Stopped when the page was left.".into();
            }
        }
        self.turns.set(turns);
    }
}

/// The conversation kept in this browser.
#[cfg(feature = "hydrate")]
fn kept() -> Option<Saved> {
    net::load(STORAGE_KEY).and_then(|t| serde_json::from_str(&t).ok())
}

#[cfg(feature = "hydrate")]
fn keep(saved: &Saved) {
    let empty = saved.turns.is_empty() && saved.system.is_empty();
    let text = serde_json::to_string(saved).ok().filter(|_| !empty);
    net::save(STORAGE_KEY, text.as_deref());
}

#[cfg(not(feature = "hydrate"))]
fn kept() -> Option<Saved> {
    None
}

#[cfg(not(feature = "hydrate"))]
fn keep(_: &Saved) {}

fn side_name(side: usize) -> &'static str {
    if side == 0 {
        "Model A"
    } else {
        "Model B"
    }
}

/// One reply's call: POST, then the streamed answer read event by event into the reply, with the gateway's
/// rate-limit headers and the usage; a model that is starting is retried by itself after the time it asks for.
#[cfg(feature = "hydrate")]
async fn call(ctx: Ctx, side: usize, upto: usize, choice: PlaygroundChoice, body: String) {
    let Ok(controller) = web_sys::AbortController::new() else {
        return;
    };
    let signal = controller.signal();
    ctx.aborts.update_value(|a| a.push(controller));
    ctx.running.update(|n| *n += 1);
    let reply = move |f: &mut dyn FnMut(&mut Reply)| {
        ctx.turns.update(|t| {
            if let Some(turn) = t.get_mut(upto) {
                f(&mut turn.replies[side]);
            }
        })
    };
    let subscription = choice.subscription_id.clone().unwrap_or_default();
    let url = format!(
        "/playground/api/{}?subscription={}",
        endpoint(choice.task),
        urlencode(&subscription)
    );
    let stopped = |r: &mut Reply| {
        r.state = ReplyState::Stopped;
        r.note = "Stopped.".into();
    };
    let mut attempts = 0;
    'attempts: loop {
        attempts += 1;
        let started = net::now_ms();
        let (head, response) = match net::post(&url, &body, &signal).await {
            Ok(answer) => answer,
            Err(_) if net::is_abort(&signal) => {
                reply(&mut |r| stopped(r));
                break;
            }
            Err(e) => {
                reply(&mut |r| {
                    r.state = ReplyState::Failed;
                    r.note = format!("The server could not be reached: {e}");
                });
                break;
            }
        };
        reply(&mut |r| {
            r.stats.requests_left = head.requests_left.clone();
            r.stats.tokens_left = head.tokens_left.clone();
            r.stats.month_left = head.month_left.clone();
            if head.status == 200 {
                // A retry got through: what the wait said is over.
                r.note.clear();
            }
        });
        if head.status != 200 {
            let text = net::body_text(&response).await.unwrap_or_default();
            let failure = failure(head.status, &text, head.retry_after);
            match failure.retry_in {
                Some(wait) if attempts < 20 => {
                    for left in (1..=wait).rev() {
                        reply(&mut |r| {
                            r.state = ReplyState::Waiting;
                            r.note = failure
                                .message
                                .replace(&format!("{wait} s"), &format!("{left} s"));
                        });
                        net::sleep(1000).await;
                        if net::is_abort(&signal) {
                            reply(&mut |r| stopped(r));
                            break 'attempts;
                        }
                    }
                    continue;
                }
                _ => {
                    reply(&mut |r| {
                        r.state = ReplyState::Failed;
                        r.note = failure.message.clone();
                    });
                    break;
                }
            }
        }
        if choice.task == Task::Embeddings {
            let text = net::body_text(&response).await.unwrap_or_default();
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let prompt = answer["usage"]["prompt_tokens"].as_u64();
            reply(&mut |r| {
                r.stats.ttft_ms = Some(net::now_ms() - started);
                r.stats.prompt_tokens = prompt;
                r.stats.completion_tokens = Some(0);
                r.stats.cost = prompt.map(|p| {
                    tollgate_domain::playground::cost(p, 0, choice.input_price, choice.output_price)
                });
                match describe_embedding(&answer) {
                    Some(d) => {
                        r.text = d;
                        r.state = ReplyState::Done;
                    }
                    None => {
                        r.state = ReplyState::Failed;
                        r.note = "The answer held no vector.".into();
                    }
                }
            });
            break;
        }
        reply(&mut |r| r.state = ReplyState::Streaming);
        let mut buffer = Vec::new();
        let mut first: Option<f64> = None;
        let outcome = net::stream(&response, |bytes| {
            buffer.extend_from_slice(bytes);
            for d in take_events(&mut buffer) {
                let now = net::now_ms();
                if !d.text.is_empty() && first.is_none() {
                    first = Some(now);
                }
                reply(&mut |r| {
                    r.text.push_str(&d.text);
                    if d.prompt_tokens.is_some() {
                        r.stats.prompt_tokens = d.prompt_tokens;
                        r.stats.completion_tokens = d.completion_tokens;
                    }
                    if let Some(f) = &d.finish_reason {
                        r.stats.finish_reason = Some(f.clone());
                    }
                    if let Some(e) = &d.error {
                        r.state = ReplyState::Failed;
                        r.note = format!("The engine failed: {e}");
                    }
                    r.stats.ttft_ms = first.map(|f| f - started);
                    if !d.text.is_empty() {
                        r.stats.decode_ms = first.map(|f| now - f);
                    }
                });
            }
        })
        .await;
        reply(&mut |r| {
            match &outcome {
                _ if r.state == ReplyState::Failed => {}
                Ok(()) => r.state = ReplyState::Done,
                Err(_) if net::is_abort(&signal) => {
                    r.state = ReplyState::Stopped;
                    r.note = "Stopped: the gateway cut the engine's stream.".into();
                }
                Err(e) => {
                    r.state = ReplyState::Failed;
                    r.note = format!("The reply was cut off: {e}");
                }
            }
            if let (Some(p), Some(c)) = (r.stats.prompt_tokens, r.stats.completion_tokens) {
                r.stats.cost = Some(tollgate_domain::playground::cost(
                    p,
                    c,
                    choice.input_price,
                    choice.output_price,
                ));
            }
        });
        break;
    }
    ctx.running.update(|n| *n = n.saturating_sub(1));
    if ctx.running.get_untracked() == 0 {
        ctx.aborts.update_value(Vec::clear);
    }
}

#[island]
fn Playground(setup: PlaygroundSetup, model: String) -> impl IntoView {
    let first = setup
        .choices
        .iter()
        .filter(|c| c.usable())
        .find(|c| c.model_id == model)
        .or_else(|| setup.choices.iter().find(|c| c.usable()))
        .and_then(|c| c.subscription_id.clone())
        .unwrap_or_default();
    let from_link = !model.is_empty() && !first.is_empty();
    let missing: Vec<PlaygroundChoice> = setup
        .choices
        .iter()
        .filter(|c| !c.usable())
        .cloned()
        .collect();
    let any_usable = setup.choices.iter().any(|c| c.usable());
    let ctx = Ctx {
        choices: StoredValue::new(setup.choices),
        api_base: StoredValue::new(setup.api_base),
        picks: [RwSignal::new(first.clone()), RwSignal::new(first)],
        compare: RwSignal::new(false),
        system: RwSignal::new(String::new()),
        settings: [
            RwSignal::new(Settings::default()),
            RwSignal::new(Settings::default()),
        ],
        turns: RwSignal::new(Vec::new()),
        draft: RwSignal::new(String::new()),
        problem: RwSignal::new(None),
        running: RwSignal::new(0),
        editing: RwSignal::new(None),
        edit_text: RwSignal::new(String::new()),
        code: RwSignal::new(None),
        #[cfg(feature = "hydrate")]
        aborts: StoredValue::new_local(Vec::new()),
    };
    // The conversation survives a reload: read back once hydrated, written whenever nothing is streaming.
    let loaded = RwSignal::new(false);
    Effect::new(move |_| {
        let saved = ctx.saved();
        if loaded.get_untracked() && ctx.running.get() == 0 {
            keep(&saved);
        }
    });
    Effect::new(move |_| {
        if let Some(saved) = kept() {
            ctx.restore(saved, from_link);
        }
        loaded.set(true);
    });
    // Leaving the page cancels what is streaming.
    on_cleanup(move || ctx.stop());

    let missing_view = (!missing.is_empty()).then(|| {
        let count = missing.len();
        view! {
            <details class="mt-3 text-sm" data-testid="missing-models" open=!any_usable>
                <summary class="cursor-pointer text-slate-600 dark:text-slate-400">{format!("Why {count} model(s) are not offered")}</summary>
                <ul class="mt-2 space-y-1">
                    {missing.into_iter().map(|c| view! {
                        <li data-testid="missing-model" data-model=c.model_id.clone()>
                            <a class="font-medium text-indigo-600 hover:underline" href=format!("/catalog/{}", c.model_id)>{c.model_name.clone()}</a>
                            ": "{c.why.clone()}
                        </li>
                    }).collect_view()}
                </ul>
            </details>
        }
    });

    view! {
        <div class="space-y-4" data-testid="playground">
            {(!any_usable).then(|| view! {
                <EmptyState title="No model to try yet" hint="The playground uses your teams' active subscriptions. Subscribe a team to a model in the catalog; the list below says what each model is missing." />
            })}
            <section class=CARD aria-label="Models">
                <div class="grid gap-4 md:grid-cols-2">
                    <Picker ctx side=0 />
                    <Show when={move || ctx.compare.get()}><Picker ctx side=1 /></Show>
                </div>
                <div class="mt-3 flex items-center gap-2">
                    <input type="checkbox" id="compare" class="h-4 w-4"
                        prop:checked=move || ctx.compare.get()
                        on:change=move |ev| ctx.compare.set(event_target_checked(&ev)) />
                    <label for="compare" class="text-sm">"Compare side by side: two models, or one model with two settings"</label>
                </div>
                {missing_view}
            </section>
            <section class=CARD aria-label="Settings">
                <Show when={move || ctx.task() == Task::Chat}>
                    <label class=LABEL for="system">"System prompt"</label>
                    <textarea id="system" class=INPUT rows="2" placeholder="You are a helpful assistant."
                        prop:value=move || ctx.system.get()
                        on:input=move |ev| ctx.system.set(event_target_value(&ev))></textarea>
                </Show>
                <div class={move || if ctx.sides() > 1 { "mt-3 grid gap-4 md:grid-cols-2" } else { "mt-3 grid gap-4" }}>
                    <SettingsForm ctx side=0 />
                    <Show when=move || { ctx.sides() > 1 }><SettingsForm ctx side=1 /></Show>
                </div>
            </section>
            {move || ctx.problem.get().map(|p| view! { <ErrorBanner message=p /> })}
            <Conversation ctx />
            <Composer ctx />
            <CodePanel ctx />
        </div>
    }
}

/// The model of one side: the active subscriptions of the caller's teams.
#[component]
fn Picker(ctx: Ctx, side: usize) -> impl IntoView {
    let id = format!("model-{side}");
    let usable: Vec<PlaygroundChoice> = ctx
        .choices
        .with_value(|all| all.iter().filter(|c| c.usable()).cloned().collect());
    let label = if side == 0 { "Model" } else { "Model B" };
    view! {
        <div>
            <label class=LABEL for=id.clone()>{label}</label>
            <select id=id class=INPUT
                on:change=move |ev| ctx.picks[side].set(event_target_value(&ev))
                prop:value={move || ctx.picks[side].get()}>
                {usable.into_iter().map(|c| {
                    let value = c.subscription_id.clone().unwrap_or_default();
                    let selected = move || ctx.picks[side].get() == value;
                    let value = c.subscription_id.clone().unwrap_or_default();
                    view! {
                        <option value=value selected=selected>
                            {format!("{} · {} · {} plan", c.model_name, c.team_name, c.plan_name)}
                        </option>
                    }
                }).collect_view()}
            </select>
            {move || ctx.choice(side).map(|c| view! {
                <p class="mt-1 text-xs text-slate-500" data-testid=format!("model-facts-{side}")>
                    {format!("{} · {} in / {} out per 1M tokens · {}", c.task.label(), c.input_price, c.output_price, limits_text(&c.limits))}
                </p>
            })}
        </div>
    }
}

fn limits_text(l: &tollgate_domain::grant::Limits) -> String {
    let mut parts = Vec::new();
    if let Some(r) = l.requests_per_minute {
        parts.push(format!("{r} requests/min"));
    }
    if let Some(t) = l.tokens_per_minute {
        parts.push(format!("{t} tokens/min"));
    }
    if let Some(m) = l.monthly_tokens {
        parts.push(format!("{m} tokens/month"));
    }
    if parts.is_empty() {
        "no limits".into()
    } else {
        parts.join(", ")
    }
}

type Field = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Settings) -> String,
    fn(&mut Settings, String),
);

const FIELDS: [Field; 4] = [
    (
        "temperature",
        "Temperature",
        "0 to 2",
        |s| s.temperature.clone(),
        |s, v| s.temperature = v,
    ),
    (
        "top-p",
        "Top P",
        "0 to 1",
        |s| s.top_p.clone(),
        |s, v| s.top_p = v,
    ),
    (
        "max-tokens",
        "Max tokens",
        "default",
        |s| s.max_tokens.clone(),
        |s, v| s.max_tokens = v,
    ),
    (
        "seed",
        "Seed",
        "random",
        |s| s.seed.clone(),
        |s, v| s.seed = v,
    ),
];

#[component]
fn SettingsForm(ctx: Ctx, side: usize) -> impl IntoView {
    let settings = ctx.settings[side];
    let title = move || {
        if ctx.sides() > 1 {
            format!("Settings of {}", side_name(side))
        } else {
            "Settings".into()
        }
    };
    view! {
        <fieldset class="grid grid-cols-2 gap-3 sm:grid-cols-4" data-testid=format!("settings-{side}")>
            <legend class="col-span-full mb-1 text-sm font-semibold">{title}</legend>
            {FIELDS.into_iter().map(|(key, label, hint, get, set)| {
                let id = format!("{key}-{side}");
                view! {
                    <div>
                        <label class=LABEL for=id.clone()>{label}</label>
                        <input id=id class=INPUT inputmode="decimal" placeholder=hint
                            prop:value=move || settings.with(get)
                            on:input=move |ev| settings.update(|s| set(s, event_target_value(&ev))) />
                    </div>
                }
            }).collect_view()}
            <div class="col-span-2">
                <label class=LABEL for=format!("stop-{side}")>"Stop sequences (one per line)"</label>
                <textarea id=format!("stop-{side}") class=INPUT rows="1"
                    prop:value=move || settings.with(|s| s.stop.clone())
                    on:input=move |ev| settings.update(|s| s.stop = event_target_value(&ev))></textarea>
            </div>
            <Show when={move || ctx.choice(side).is_some_and(|c| c.task == Task::Chat)}>
                <div class="col-span-2 flex items-center gap-2">
                    <input type="checkbox" id=format!("json-{side}") class="h-4 w-4"
                        prop:checked=move || settings.with(|s| s.json)
                        on:change=move |ev| settings.update(|s| s.json = event_target_checked(&ev)) />
                    <label for=format!("json-{side}") class="text-sm">"JSON output (response_format: json_object)"</label>
                </div>
            </Show>
        </fieldset>
    }
}

#[component]
fn Conversation(ctx: Ctx) -> impl IntoView {
    view! {
        <section aria-label="Conversation" aria-live="polite" class="space-y-3" data-testid="conversation">
            {move || {
                let turns = ctx.turns.get();
                let sides = ctx.sides();
                let last = turns.len().saturating_sub(1);
                let idle = ctx.running.get() == 0;
                let task = ctx.task();
                turns.into_iter().enumerate().map(|(i, turn)| {
                    let editing = (ctx.editing.get() == Some(i)).then(|| ctx.edit_text.get_untracked());
                    view! {
                        <article class=CARD data-testid="turn">
                            <div class="mb-2 flex items-start justify-between gap-2">
                                <div class="min-w-0 flex-1">
                                    <p class="text-xs font-semibold uppercase text-slate-500">{match task { Task::Chat => "You", Task::Completion => "Prompt", Task::Embeddings => "Input" }}</p>
                                    {match editing {
                                        Some(text) => view! {
                                            <label class="sr-only" for=format!("edit-{i}")>"Edit the message"</label>
                                            <textarea id=format!("edit-{i}") class=INPUT rows="2" prop:value=text
                                                on:input=move |ev| ctx.edit_text.set(event_target_value(&ev))></textarea>
                                            <div class="mt-1 flex gap-2">
                                                <button type="button" class=BUTTON on:click=move |_| {
                                                    if ctx.editing.get_untracked() == Some(i) {
                                                        let text = ctx.edit_text.get_untracked();
                                                        ctx.turns.update(|t| if let Some(turn) = t.get_mut(i) { turn.user = text; });
                                                        ctx.editing.set(None);
                                                        // What followed answered the old message.
                                                        ctx.turns.update(|t| t.truncate(i + 1));
                                                        ctx.run(i);
                                                    }
                                                }>"Save and resend"</button>
                                                <button type="button" class=BUTTON_SECONDARY on:click=move |_| ctx.editing.set(None)>"Cancel"</button>
                                            </div>
                                        }.into_any(),
                                        None => view! { <p class="whitespace-pre-wrap" data-testid="user-message">{turn.user.clone()}</p> }.into_any(),
                                    }}
                                </div>
                                <div class="flex shrink-0 gap-1">
                                    <button type="button" class=BUTTON_SECONDARY disabled=!idle
                                        aria-label=format!("Edit message {}", i + 1)
                                        on:click={
                                            let text = turn.user.clone();
                                            move |_| {
                                                ctx.edit_text.set(text.clone());
                                                ctx.editing.set(Some(i));
                                            }
                                        }>"Edit"</button>
                                    <button type="button" class=BUTTON_SECONDARY disabled=!idle
                                        aria-label=format!("Delete message {}", i + 1)
                                        on:click=move |_| ctx.turns.update(|t| { if i < t.len() { t.remove(i); } })>"Delete"</button>
                                    {(i == last).then(|| view! {
                                        <button type="button" class=BUTTON_SECONDARY disabled=!idle
                                            on:click=move |_| ctx.run(i)>"Regenerate"</button>
                                    })}
                                </div>
                            </div>
                            <div class={if sides > 1 { "grid gap-3 md:grid-cols-2" } else { "grid gap-3" }}>
                                {turn.replies.into_iter().take(sides).enumerate().map(|(side, r)| view! {
                                    <ReplyView reply=r side sides />
                                }).collect_view()}
                            </div>
                        </article>
                    }
                }).collect_view()
            }}
        </section>
    }
}

#[component]
fn ReplyView(reply: Reply, side: usize, sides: usize) -> impl IntoView {
    let state = match reply.state {
        ReplyState::Idle => "idle",
        ReplyState::Waiting => "waiting",
        ReplyState::Streaming => "streaming",
        ReplyState::Done => "done",
        ReplyState::Stopped => "stopped",
        ReplyState::Failed => "failed",
    };
    let failed = reply.state == ReplyState::Failed;
    let stats = reply.stats.line();
    view! {
        <div class="rounded-md bg-slate-50 p-3 dark:bg-slate-800" data-testid="reply" data-side=side.to_string() data-state=state>
            {(sides > 1).then(|| view! { <p class="text-xs font-semibold uppercase text-slate-500">{side_name(side)}</p> })}
            <p class="whitespace-pre-wrap" data-testid="reply-text">{reply.text.clone()}</p>
            {(reply.state == ReplyState::Waiting && reply.note.is_empty()).then(|| view! { <p class="text-sm text-slate-500" role="status">"Waiting for the first token..."</p> })}
            {(reply.state == ReplyState::Idle).then(|| view! { <p class="text-sm text-slate-500">"Not sent to this model."</p> })}
            {(!reply.note.is_empty()).then(|| if failed {
                view! { <p class="mt-2 text-sm text-red-700 dark:text-red-300" role="alert" data-testid="reply-error">{reply.note.clone()}</p> }.into_any()
            } else {
                view! { <p class="mt-2 text-sm text-amber-700 dark:text-amber-300" role="status" data-testid="reply-note">{reply.note.clone()}</p> }.into_any()
            })}
            {(!stats.is_empty()).then(|| view! { <p class="mt-2 text-xs text-slate-500" data-testid="reply-stats">{stats}</p> })}
        </div>
    }
}

#[component]
fn Composer(ctx: Ctx) -> impl IntoView {
    let label = move || match ctx.task() {
        Task::Chat => "Message",
        Task::Completion => "Prompt",
        Task::Embeddings => "Text to embed",
    };
    let action = move || match ctx.task() {
        Task::Embeddings => "Embed",
        _ => "Send",
    };
    view! {
        <section class=CARD aria-label="Compose">
            <label class=LABEL for="message">{label}</label>
            <textarea id="message" class=INPUT rows="3" aria-describedby="message-hint"
                prop:value=move || ctx.draft.get()
                on:input=move |ev| ctx.draft.set(event_target_value(&ev))
                on:keydown=move |ev| {
                    if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                        ev.prevent_default();
                        ctx.send();
                    }
                }></textarea>
            <p id="message-hint" class="mt-1 text-xs text-slate-500">"Ctrl+Enter sends. The conversation is kept in this browser until you clear it."</p>
            <div class="mt-2 flex flex-wrap gap-2">
                <button type="button" class=BUTTON data-testid="send"
                    disabled={move || ctx.running.get() > 0}
                    on:click=move |_| ctx.send()>{action}</button>
                <button type="button" class=BUTTON_SECONDARY data-testid="stop"
                    disabled=move || ctx.running.get() == 0
                    on:click=move |_| ctx.stop()>"Stop"</button>
                <button type="button" class=BUTTON_SECONDARY data-testid="clear"
                    on:click=move |_| ctx.clear()>"Clear conversation"</button>
            </div>
        </section>
    }
}

#[component]
fn CodePanel(ctx: Ctx) -> impl IntoView {
    let code = move || {
        ctx.code
            .get()
            .map(|lang| ctx.snippet(lang))
            .unwrap_or_default()
    };
    view! {
        <section class=CARD aria-label="As code">
            <h2 class="mb-2 font-semibold">"Copy as code"</h2>
            <p class="mb-2 text-sm text-slate-500">"The next request with the current parameters, against this server's /v1, with a placeholder for your API key (create one on the subscription's page)."</p>
            <div class="flex flex-wrap gap-2" role="group" aria-label="Language">
                {Lang::ALL.into_iter().map(|lang| view! {
                    <button type="button" class=BUTTON_SECONDARY
                        aria-pressed=move || (ctx.code.get() == Some(lang)).to_string()
                        on:click=move |_| ctx.code.set(Some(lang))>{lang.label()}</button>
                }).collect_view()}
            </div>
            <Show when={move || ctx.code.get().is_some()}>
                <pre class="mt-3 overflow-x-auto rounded bg-slate-900 p-3 text-xs text-slate-100" data-testid="code"><code>{code}</code></pre>
                <button type="button" class=BUTTON_SECONDARY data-testid="copy-code"
                    data-copy=code
                    onclick="navigator.clipboard.writeText(this.dataset.copy).then(() => { this.textContent = 'Copied'; setTimeout(() => this.textContent = 'Copy', 1500) })">"Copy"</button>
            </Show>
        </section>
    }
}
