//! Sign-in: the local account form and, when configured, the single sign-on button.

use crate::{
    api::auth::{get_login_options, Login},
    components::ui::{FormError, Notice, BUTTON, BUTTON_SECONDARY, CARD, INPUT, LABEL},
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let options = Resource::new(|| (), |_| get_login_options());
    let query = use_query_map();
    let next = move || query.with(|q| q.get("next")).unwrap_or_else(|| "/".into());
    let signed_out = move || query.with(|q| q.get("signed_out").is_some());
    let sso_error = move || query.with(|q| q.get("sso_error"));
    view! {
        <Title text="Sign in" />
        <main class="mx-auto mt-16 max-w-sm px-4">
            <h1 class="mb-6 text-center text-2xl font-bold tracking-tight">
                <span class="text-indigo-600 dark:text-indigo-400">"Tollgate"</span>" · Sign in"
            </h1>
            <Show when=signed_out><Notice message="You have signed out." /></Show>
            {move || sso_error().map(|m| view! { <crate::components::ui::ErrorBanner message=m /> })}
            <FormError />
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let opts = options.await.ok();
                    let local = opts.as_ref().is_none_or(|o| o.local);
                    let sso = opts.and_then(|o| o.oidc);
                    view! {
                        <div class=CARD>
                            {sso.map(|name| view! {
                                <a class=format!("{BUTTON_SECONDARY} w-full justify-center") href=move || format!("/auth/oidc/start?next={}", crate::components::ui::urlencode(&next()))>
                                    {format!("Sign in with {name}")}
                                </a>
                                <div class="my-4 text-center text-xs uppercase text-slate-400">"or"</div>
                            })}
                            <Show when=move || local>
                                <form method="post" action=Login::url() class="space-y-4">
                                    <input type="hidden" name="next" value=next />
                                    <div>
                                        <label class=LABEL for="email">"Email"</label>
                                        <input class=INPUT id="email" name="email" type="email" autocomplete="username" required />
                                    </div>
                                    <div>
                                        <label class=LABEL for="password">"Password"</label>
                                        <input class=INPUT id="password" name="password" type="password" autocomplete="current-password" required />
                                    </div>
                                    <button type="submit" class=format!("{BUTTON} w-full justify-center")>"Sign in"</button>
                                </form>
                            </Show>
                        </div>
                    }
                })}
            </Suspense>
        </main>
    }
}
