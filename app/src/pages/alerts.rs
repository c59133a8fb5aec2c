//! Usage alerts: the alerts the caller may see, newest first, in plain words with each delivery's status, paged
//! by a cursor in the URL; and, for tenant admins, the tenant's alert webhook. Server-rendered; the webhook's
//! secret is shown once where it is made, so setting and rotating it is the page's one island (like the keys and
//! tokens panels); removing it is a plain confirmed form.

use crate::{
    api::alerts::{read_alerts, DeleteAlertWebhook, RotateAlertWebhook, SetAlertWebhook},
    components::ui::*,
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use tollgate_domain::usage::alerts::{AlertDeliveryView, AlertPage, WebhookView};

#[component]
pub fn AlertsPage() -> impl IntoView {
    let query = use_query_map();
    let after = Memo::new(move |_| query.with(|q| q.get("after").unwrap_or_default()));
    let data = Resource::new(move || after.get(), read_alerts);
    view! {
        <Title text="Usage alerts" />
        <PageHeader
            title="Usage alerts"
            subtitle="Sent once per threshold and period: at 50, 90 and 100 % of a subscription's monthly tokens, and when a team is refused by a rate limit repeatedly."
        />
        <p class="mb-4 text-sm"><a class="underline" href="/usage">"← Back to usage"</a></p>
        <Transition fallback=|| view! { <p class="text-slate-500">"Reading alerts..."</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <LoadError error=e /> }.into_any(),
                    Ok(d) => {
                        let webhook = d.can_manage.then(|| view! { <Webhook hook=d.webhook.clone() /> });
                        view! { <Alerts page=d.page /> {webhook} }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn Alerts(page: AlertPage) -> impl IntoView {
    if page.items.is_empty() {
        return view! {
            <EmptyState
                title="No alerts yet"
                hint="Alerts appear here when a subscription reaches 50, 90 or 100 % of its monthly token quota, or when a team is refused by a rate limit repeatedly."
            />
        }
        .into_any();
    }
    let next = page
        .next
        .map(|n| format!("/usage/alerts?after={}", urlencode(&n)));
    view! {
        <section class=CARD aria-label="Alerts">
            <table class=TABLE data-testid="alerts">
                <thead><tr><th class=TH>"When"</th><th class=TH>"Alert"</th><th class=TH>"Delivery"</th></tr></thead>
                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                    {page.items.into_iter().map(|a| view! {
                        <tr data-alert=a.id.clone() data-kind=a.kind.as_str()>
                            <td class=TD>{a.at.format_utc()}</td>
                            <td class=TD data-testid="alert-message">{a.message.clone()}</td>
                            <td class=TD>{deliveries(&a.deliveries)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            {next.map(|href| view! { <p class="mt-3 text-sm"><a class="underline" href=href>"Older alerts →"</a></p> })}
        </section>
    }
    .into_any()
}

/// Each channel's status in words: "email: delivered", "webhook: will retry (HTTP 500)", ...
fn deliveries(list: &[AlertDeliveryView]) -> String {
    if list.is_empty() {
        return "not sent: no email or webhook configured".into();
    }
    list.iter()
        .map(|d| {
            let status = match d.status.as_str() {
                "delivered" => "delivered".to_string(),
                "pending" if d.attempts == 0 => "sending".to_string(),
                "pending" => format!("will retry ({})", d.last_error),
                _ => format!("failed after {} attempts ({})", d.attempts, d.last_error),
            };
            format!("{}: {status}", d.channel)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[component]
fn Webhook(hook: Option<WebhookView>) -> impl IntoView {
    let current = hook.as_ref().map(|h| h.url.clone());
    view! {
        <section class=format!("{CARD} mt-6") aria-label="Alert webhook" data-testid="alert-webhook">
            <h2 class="mb-1 font-semibold">"Alert webhook"</h2>
            <p class="mb-3 text-sm text-slate-500">
                "Every alert of this tenant is posted here as JSON, signed: the "<code>"Tollgate-Signature"</code>
                " header is "<code>"t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">"</code>" under the secret. Failed deliveries are retried with backoff."
            </p>
            {hook.map(|h| view! {
                <p class="mb-3 text-sm">"Posting to "<code data-testid="webhook-url">{h.url}</code>" since "{h.created_at.format_utc()}"."</p>
            })}
            <WebhookPanel current=current.clone() />
            {current.is_some().then(|| view! {
                <div class="mt-3">
                    <ConfirmForm action=DeleteAlertWebhook::url() confirm="Remove the alert webhook? Alerts will no longer be posted to it." label="Remove webhook" fields=vec![] />
                </div>
            })}
        </section>
    }
}

/// An island: setting the URL (a new webhook's secret) and rotating the secret show the secret once, in place.
#[island]
fn WebhookPanel(current: Option<String>) -> impl IntoView {
    let set = ServerAction::<SetAlertWebhook>::new();
    let rotate = ServerAction::<RotateAlertWebhook>::new();
    let shown = move || {
        let result = rotate.value().get().or_else(|| set.value().get());
        result.map(|r| match r {
            Err(e) => view! { <ErrorBanner message=describe(&e) /> }.into_any(),
            Ok(h) => match h.secret {
                Some(secret) => view! {
                    <div class="mb-4 rounded-md bg-indigo-50 p-3 text-sm ring-1 ring-indigo-200 dark:bg-indigo-950 dark:ring-indigo-900" data-testid="webhook-secret-shown">
                        <p class="mb-2 font-medium">"Copy the signing secret now: it is shown only once."</p>
                        <code class="block break-all rounded bg-white p-2 font-mono text-xs dark:bg-slate-900" data-testid="webhook-secret">{secret.clone()}</code>
                        <div class="mt-2"><CopyButton text=secret label="Copy secret" /></div>
                    </div>
                }.into_any(),
                None => view! { <Notice message=format!("Saved: alerts are posted to {}.", h.url) /> }.into_any(),
            },
        })
    };
    let has_hook = current.is_some();
    view! {
        <div>
            {shown}
            <ActionForm action=set attr:class="flex flex-wrap items-end gap-2">
                <div class="grow">
                    <label class=LABEL for="webhook-url">"Webhook URL"</label>
                    <input class=INPUT id="webhook-url" name="url" type="url" required maxlength="2048"
                        placeholder="https://hooks.example.com/tollgate" value=current.unwrap_or_default() />
                </div>
                <button type="submit" class=BUTTON>{if has_hook { "Save URL" } else { "Add webhook" }}</button>
            </ActionForm>
            {has_hook.then(|| view! {
                <ActionForm action=rotate attr:class="mt-3"
                    attr:onsubmit="return confirm('Rotate the signing secret? The current secret stops working at once.')">
                    <button type="submit" class=BUTTON_SECONDARY>"Rotate secret"</button>
                </ActionForm>
            })}
        </div>
    }
}
