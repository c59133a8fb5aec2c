//! Personal access tokens for the management API, on the account page: create (shown once), list, revoke.

use crate::{
    api::tokens::{list_tokens, CreateToken, RevokeToken},
    components::{badges::KeyBadge, ui::*},
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

/// An island: the token just created is shown once, in place, and the list refreshes.
#[island]
pub fn AccessTokens() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let tokens = Resource::new(move || create.version().get(), |_| list_tokens());
    view! {
        <section class=format!("{CARD} mt-6") data-testid="access-tokens">
            <h2 class="mb-1 font-semibold">"Personal access tokens"</h2>
            <p class="mb-3 text-sm text-slate-500">"For scripts and CI calling the management API (/api/v1) as you. Send as "<code>"Authorization: Bearer tgp-..."</code>". See "<a class="underline" href="/api/v1/openapi.json">"the OpenAPI document"</a>"."</p>
            {move || create.value().get().map(|r| match r {
                Err(e) => view! { <ErrorBanner message=describe(&e) /> }.into_any(),
                Ok(created) => view! {
                    <div class="mb-4 rounded-md bg-indigo-50 p-3 text-sm ring-1 ring-indigo-200 dark:bg-indigo-950 dark:ring-indigo-900" data-testid="token-created">
                        <p class="mb-2 font-medium">"Copy your new token now: it is shown only once."</p>
                        <code class="block break-all rounded bg-white p-2 font-mono text-xs dark:bg-slate-900" data-testid="token-secret">{created.secret.clone()}</code>
                        <div class="mt-2"><CopyButton text=created.secret label="Copy token" /></div>
                    </div>
                }.into_any(),
            })}
            <ActionForm action=create attr:class="mb-4 flex flex-wrap items-end gap-2">
                <div>
                    <label class=LABEL for="token-name">"Name"</label>
                    <input class=INPUT id="token-name" name="name" required maxlength="60" placeholder="e.g. CI pipeline" />
                </div>
                <div>
                    <label class=LABEL for="token-scope">"Scope"</label>
                    <select class=INPUT id="token-scope" name="scope">
                        <option value="read">"Read only"</option>
                        <option value="write">"Read and write"</option>
                    </select>
                </div>
                <div>
                    <label class=LABEL for="token-expiry">"Expires in"</label>
                    <select class=INPUT id="token-expiry" name="expiry_days">
                        <option value="7">"7 days"</option>
                        <option value="30" selected=true>"30 days"</option>
                        <option value="90">"90 days"</option>
                        <option value="365">"1 year"</option>
                    </select>
                </div>
                <button type="submit" class=BUTTON>"Create token"</button>
            </ActionForm>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match tokens.await {
                        Err(e) => view! { <LoadError error=e /> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="text-sm text-slate-500">"No tokens yet."</p> }.into_any(),
                        Ok(list) => view! {
                            <table class=TABLE>
                                <thead><tr><th class=TH>"Name"</th><th class=TH>"Token"</th><th class=TH>"Scope"</th><th class=TH>"State"</th><th class=TH>"Last used"</th><th class=TH>"Expires"</th><th class=TH></th></tr></thead>
                                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                    {list.into_iter().map(|t| view! {
                                        <tr>
                                            <td class=TD>{t.name.clone()}</td>
                                            <td class=TD><code class="font-mono text-xs">{format!("{}…", t.prefix)}</code></td>
                                            <td class=TD>{t.scope.as_str()}</td>
                                            <td class=TD><KeyBadge state=t.state /></td>
                                            <td class=TD>{t.last_used_at.map(|x| x.format_utc()).unwrap_or_else(|| "never".into())}</td>
                                            <td class=TD>{t.expires_at.map(|x| x.format_utc()).unwrap_or_default()}</td>
                                            <td class=TD>{t.state.usable().then(|| view! {
                                                <ConfirmForm action=RevokeToken::url() confirm=format!("Revoke the token {}?", t.name) label="Revoke" fields=vec![("token_id", t.id.clone())] />
                                            })}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
