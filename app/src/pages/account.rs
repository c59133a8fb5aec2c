//! The user's own account: profile facts and active sessions, each revocable.

use crate::{
    api::account::{my_sessions, RevokeSession},
    components::ui::*,
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use tollgate_domain::views::Me;

#[component]
pub fn AccountPage() -> impl IntoView {
    let me = expect_context::<Me>();
    let sessions = Resource::new(|| (), |_| my_sessions());
    view! {
        <Title text="Your account" />
        <PageHeader title="Your account" subtitle=format!("{} · {}", me.name, me.email) />
        <FormError />
        <section class=CARD>
            <h2 class="mb-3 font-semibold">"Active sessions"</h2>
            <p class="mb-3 text-sm text-slate-500">"Every browser where you are signed in. Sign out of any you do not recognise."</p>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match sessions.await {
                        Err(e) => view! { <LoadError error=e /> }.into_any(),
                        Ok(list) => view! {
                            <table class=TABLE data-testid="sessions">
                                <thead><tr><th class=TH>"Browser"</th><th class=TH>"Address"</th><th class=TH>"Method"</th><th class=TH>"Last active"</th><th class=TH>"Expires"</th><th class=TH></th></tr></thead>
                                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                    {list.into_iter().map(|s| view! {
                                        <tr>
                                            <td class=format!("{TD} max-w-xs truncate") title=s.user_agent.clone()>{s.user_agent.clone()}</td>
                                            <td class=TD>{s.ip.clone()}</td>
                                            <td class=TD>{s.method.clone()}</td>
                                            <td class=TD>{s.last_seen_at.format_utc()}</td>
                                            <td class=TD>{s.expires_at.format_utc()}</td>
                                            <td class=TD>{if s.current {
                                                view! { <span class="text-xs font-semibold text-emerald-600">"This browser"</span> }.into_any()
                                            } else {
                                                view! { <ConfirmForm action=RevokeSession::url() confirm="Sign out that session?" label="Sign out" fields=vec![("session_id", s.id.clone())] /> }.into_any()
                                            }}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
        <super::tokens::AccessTokens />
    }
}
