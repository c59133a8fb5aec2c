//! Opening an invitation link: accept it when signed in, or create an account for it.

use crate::{
    api::{
        auth::get_me,
        members::{preview_invitation, AcceptInvitation, SignUpWithInvitation},
    },
    components::ui::*,
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use tollgate_domain::invitation::InvitationState;

#[component]
pub fn InvitePage() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.with(|p| p.get("token")).unwrap_or_default();
    let preview = Resource::new(token, preview_invitation);
    let me = Resource::new(|| (), |_| get_me());
    view! {
        <Title text="Invitation" />
        <main class="mx-auto mt-12 max-w-md px-4">
            <h1 class="mb-6 text-2xl font-bold tracking-tight"><span class="text-indigo-600">"Tollgate"</span>" · Invitation"</h1>
            <FormError />
            <Suspense fallback=|| view! { <p class="text-slate-500">"Checking the invitation..."</p> }>
                {move || Suspend::new(async move {
                    let token = token();
                    let (preview, me) = (preview.await, me.await.ok().flatten());
                    match preview {
                        Err(_) => view! { <ErrorBanner message="This invitation link is not valid. Check that you copied all of it, or ask for a new one." /> }.into_any(),
                        Ok(p) if p.state != InvitationState::Pending => view! {
                            <ErrorBanner message=format!("This invitation is {}. Ask an admin of {} for a new one.", p.state.label(), p.tenant_name) />
                        }.into_any(),
                        Ok(p) => {
                            let summary = format!("{} invited you to join {} as {}.", p.invited_by, p.tenant_name, p.role.label());
                            let expires = format!("The invitation expires {}.", p.expires_at.format_utc());
                            let body = match me {
                                Some(me) => view! {
                                    <p class="mb-4 text-sm">{format!("You are signed in as {}.", me.email)}</p>
                                    <form method="post" action=AcceptInvitation::url()>
                                        <input type="hidden" name="token" value=token.clone() />
                                        <button type="submit" class=BUTTON>{format!("Join {}", p.tenant_name)}</button>
                                    </form>
                                }.into_any(),
                                None => {
                                    let fixed_email = p.email.clone();
                                    view! {
                                        <p class="mb-4 text-sm">
                                            "Create your account below, or "
                                            <a class="text-indigo-600 underline" href=format!("/login?next=/invite/{token}")>"sign in"</a>
                                            " if you already have one."
                                        </p>
                                        <form method="post" action=SignUpWithInvitation::url() class="space-y-3">
                                            <input type="hidden" name="token" value=token.clone() />
                                            <div>
                                                <label class=LABEL for="signup-email">"Email"</label>
                                                <input class=INPUT id="signup-email" name="email" type="email" required value=fixed_email.clone().unwrap_or_default() readonly=fixed_email.is_some() autocomplete="username" />
                                            </div>
                                            <div>
                                                <label class=LABEL for="signup-name">"Your name"</label>
                                                <input class=INPUT id="signup-name" name="name" required maxlength="100" autocomplete="name" />
                                            </div>
                                            <div>
                                                <label class=LABEL for="signup-password">"Password (at least 10 characters)"</label>
                                                <input class=INPUT id="signup-password" name="password" type="password" required minlength="10" autocomplete="new-password" />
                                            </div>
                                            <button type="submit" class=BUTTON>"Create account and join"</button>
                                        </form>
                                    }.into_any()
                                }
                            };
                            view! {
                                <div class=CARD>
                                    <p class="mb-1 font-medium" data-testid="invite-summary">{summary}</p>
                                    <p class="mb-4 text-sm text-slate-500">{expires}</p>
                                    {body}
                                </div>
                            }.into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
}
