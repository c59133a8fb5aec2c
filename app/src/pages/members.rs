//! Members of the current tenant: roles, removal, and invitations (admins).

use crate::{
    api::{
        members::{
            list_invitations, list_members, ChangeRole, InviteMember, RemoveMember,
            RevokeInvitation,
        },
        teams::list_teams,
    },
    components::{layout::is_tenant_admin, ui::*},
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use tollgate_domain::{invitation::InvitationState, views::Me, TenantRole};

#[component]
pub fn MembersPage() -> impl IntoView {
    let me = expect_context::<Me>();
    let admin = is_tenant_admin(&me);
    let (search, page) = (query_search(), query_page());
    let members = Resource::new(
        move || (search.get(), page.get()),
        |(s, p)| list_members(s, p),
    );
    view! {
        <Title text="Members" />
        <PageHeader title="Members" subtitle="People in this tenant and their roles." />
        <FormError />
        <div class="grid gap-6 lg:grid-cols-3">
            <section class="lg:col-span-2">
                <SearchBox placeholder="Search by name or email" />
                <Transition fallback=|| view! { <p class="text-slate-500">"Loading members..."</p> }>
                    {move || Suspend::new(async move {
                        match members.await {
                            Err(e) => view! { <LoadError error=e /> }.into_any(),
                            Ok(p) if p.items.is_empty() => view! { <EmptyState title="No members found" hint="No member matches this search." /> }.into_any(),
                            Ok(p) => view! {
                                <div class=CARD>
                                    <table class=TABLE data-testid="members">
                                        <thead><tr><th class=TH>"Name"</th><th class=TH>"Email"</th><th class=TH>"Role"</th><th class=TH>"Joined"</th><th class=TH></th></tr></thead>
                                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                            {p.items.iter().map(|m| {
                                                let role_cell = if admin {
                                                    view! {
                                                        <form method="post" action=ChangeRole::url() class="flex gap-1">
                                                            <input type="hidden" name="user_id" value=m.user_id.clone() />
                                                            <label class="sr-only" for=format!("role-{}", m.user_id)>{format!("Role of {}", m.email)}</label>
                                                            <select id=format!("role-{}", m.user_id) name="role" class="rounded-md border-0 py-1 text-sm ring-1 ring-slate-300 dark:bg-slate-800">
                                                                {TenantRole::ALL.into_iter().map(|r| view! { <option value=r.as_str() selected=r == m.role>{r.label()}</option> }).collect_view()}
                                                            </select>
                                                            <button type="submit" class=BUTTON_SECONDARY>"Save"</button>
                                                        </form>
                                                    }.into_any()
                                                } else {
                                                    view! { <span>{m.role.label()}</span> }.into_any()
                                                };
                                                let remove = admin.then(|| view! {
                                                    <ConfirmForm action=RemoveMember::url() confirm=format!("Remove {} from the tenant? They lose access to its teams and keys.", m.email) label="Remove" fields=vec![("user_id", m.user_id.clone())] />
                                                });
                                                view! {
                                                    <tr data-email=m.email.clone()>
                                                        <td class=TD>{m.name.clone()}</td>
                                                        <td class=TD>{m.email.clone()}</td>
                                                        <td class=TD>{role_cell}</td>
                                                        <td class=TD>{m.joined_at.format_utc()}</td>
                                                        <td class=TD>{remove}</td>
                                                    </tr>
                                                }
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                    <Pager page=p />
                                </div>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </section>
            {admin.then(|| view! { <InvitePanel /> })}
        </div>
    }
}

/// Inviting and the invitations so far: the page's one interactive part (an island), because the link a new
/// invitation returns is shown once, in place, and the list refreshes without leaving the page.
#[island]
fn InvitePanel() -> impl IntoView {
    let invite = ServerAction::<InviteMember>::new();
    view! {
        <div>
            <InviteForm invite />
            <Invitations invite />
        </div>
    }
}

/// The invite form. An ActionForm: the link it returns is shown once, right here, and never again.
#[component]
fn InviteForm(invite: ServerAction<InviteMember>) -> impl IntoView {
    let teams = Resource::new(|| (), |_| list_teams(String::new(), 1));
    view! {
        <section class=CARD>
            <h2 class="mb-3 font-semibold">"Invite someone"</h2>
            <ActionForm action=invite attr:class="space-y-3">
                <div>
                    <label class=LABEL for="invite-email">"Email (optional)"</label>
                    <input class=INPUT id="invite-email" name="email" type="email" placeholder="Leave empty for a link anyone can use once" />
                </div>
                <div>
                    <label class=LABEL for="invite-role">"Role"</label>
                    <select class=INPUT id="invite-role" name="role">
                        {TenantRole::ALL.into_iter().map(|r| view! { <option value=r.as_str() selected=r == TenantRole::Developer>{r.label()}</option> }).collect_view()}
                    </select>
                </div>
                <div>
                    <label class=LABEL for="invite-team">"Also add to team"</label>
                    <select class=INPUT id="invite-team" name="team_id">
                        <option value="">"No team"</option>
                        <Suspense fallback=|| ()>
                            {move || Suspend::new(async move {
                                teams.await.map(|p| p.items.into_iter().map(|t| view! { <option value=t.id>{t.name}</option> }).collect_view()).ok()
                            })}
                        </Suspense>
                    </select>
                </div>
                <div>
                    <label class=LABEL for="invite-hours">"Valid for (hours)"</label>
                    <input class=INPUT id="invite-hours" name="valid_hours" type="number" min="1" max="336" value="72" />
                </div>
                <button type="submit" class=BUTTON disabled=move || invite.pending().get()>"Create invitation link"</button>
            </ActionForm>
            {move || invite.value().get().map(|result| match result {
                Err(e) => view! { <div class="mt-3"><ErrorBanner message=describe(&e) /></div> }.into_any(),
                Ok(created) => view! {
                    <div class="mt-4 rounded-md bg-indigo-50 p-3 text-sm ring-1 ring-indigo-200 dark:bg-indigo-950 dark:ring-indigo-900" data-testid="invite-created">
                        <p class="mb-2 font-medium">"Send this link to the person you invite. It works once and is shown only now."</p>
                        <code class="block break-all rounded bg-white p-2 text-xs dark:bg-slate-900" data-testid="invite-link">{created.link.clone()}</code>
                        <div class="mt-2"><CopyButton text=created.link label="Copy link" /></div>
                    </div>
                }.into_any(),
            })}
        </section>
    }
}

#[component]
fn Invitations(invite: ServerAction<InviteMember>) -> impl IntoView {
    // Refetched after each new invitation.
    let invitations = Resource::new(move || invite.version().get(), |_| list_invitations(1));
    view! {
        <section class=format!("{CARD} mt-6")>
            <h2 class="mb-3 font-semibold">"Invitations"</h2>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match invitations.await {
                        Err(e) => view! { <LoadError error=e /> }.into_any(),
                        Ok(p) if p.items.is_empty() => view! { <p class="text-sm text-slate-500">"No invitations yet."</p> }.into_any(),
                        Ok(p) => view! {
                            <table class=TABLE>
                                <thead><tr><th class=TH>"For"</th><th class=TH>"Role"</th><th class=TH>"Status"</th><th class=TH>"Expires"</th><th class=TH></th></tr></thead>
                                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                    {p.items.into_iter().map(|i| {
                                        let pending = i.state == InvitationState::Pending;
                                        let who = i.email.clone().unwrap_or_else(|| "anyone with the link".into());
                                        view! {
                                            <tr>
                                                <td class=TD>{who.clone()}{i.team_name.map(|t| format!(" (team {t})"))}</td>
                                                <td class=TD>{i.role.label()}</td>
                                                <td class=TD>{i.state.label()}</td>
                                                <td class=TD>{i.expires_at.format_utc()}</td>
                                                <td class=TD>{pending.then(|| view! {
                                                    <ConfirmForm action=RevokeInvitation::url() confirm=format!("Withdraw the invitation for {who}?") label="Withdraw" fields=vec![("invitation_id", i.id.clone())] />
                                                })}</td>
                                            </tr>
                                        }
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
