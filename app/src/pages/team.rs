//! One team: its members, adding and removing them, deleting the team (admins).

use crate::{
    api::teams::{get_team, AddTeamMember, DeleteTeam, RemoveTeamMember},
    components::{layout::is_tenant_admin, ui::*},
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use tollgate_domain::views::Me;

#[component]
pub fn TeamPage() -> impl IntoView {
    let me = expect_context::<Me>();
    let admin = is_tenant_admin(&me);
    let params = use_params_map();
    let team_id = move || params.with(|p| p.get("id")).unwrap_or_default();
    let team = Resource::new(team_id, get_team);
    view! {
        <FormError />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading team..."</p> }>
            {move || Suspend::new(async move {
                match team.await {
                    Err(e) => view! { <LoadError error=e /> <a class="underline" href="/teams">"All teams"</a> }.into_any(),
                    Ok((t, members)) => {
                        let id = t.id.clone();
                        view! {
                            <Title text=t.name.clone() />
                            <a class="text-sm text-indigo-600 hover:underline" href="/teams">"← All teams"</a>
                            <PageHeader title=t.name.clone() subtitle=t.description.clone() />
                            <div class="grid gap-6 lg:grid-cols-3">
                                <section class=format!("{CARD} lg:col-span-2")>
                                    <h2 class="mb-3 font-semibold">{format!("Members ({})", members.len())}</h2>
                                    {if members.is_empty() {
                                        view! { <EmptyState title="No one in this team yet" hint="Add members of the tenant by email." /> }.into_any()
                                    } else {
                                        view! {
                                            <table class=TABLE>
                                                <thead><tr><th class=TH>"Name"</th><th class=TH>"Email"</th><th class=TH>"Added"</th><th class=TH></th></tr></thead>
                                                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                                    {members.into_iter().map(|m| {
                                                        let fields = vec![("team_id", id.clone()), ("user_id", m.user_id.clone())];
                                                        let confirm = format!("Remove {} from this team?", m.email);
                                                        view! {
                                                            <tr>
                                                                <td class=TD>{m.name}</td>
                                                                <td class=TD>{m.email}</td>
                                                                <td class=TD>{m.added_at.format_utc()}</td>
                                                                <td class=TD>{admin.then(|| view! { <ConfirmForm action=RemoveTeamMember::url() confirm label="Remove" fields /> })}</td>
                                                            </tr>
                                                        }
                                                    }).collect_view()}
                                                </tbody>
                                            </table>
                                        }.into_any()
                                    }}
                                </section>
                                {admin.then(|| view! {
                                    <section class="space-y-6">
                                        <div class=CARD>
                                            <h2 class="mb-3 font-semibold">"Add a member"</h2>
                                            <form method="post" action=AddTeamMember::url() class="space-y-3">
                                                <input type="hidden" name="team_id" value=id.clone() />
                                                <label class=LABEL for="member-email">"Email of a tenant member"</label>
                                                <input class=INPUT id="member-email" name="email" type="email" required />
                                                <button type="submit" class=BUTTON>"Add to team"</button>
                                            </form>
                                        </div>
                                        <div class=CARD>
                                            <h2 class="mb-2 font-semibold">"Delete team"</h2>
                                            <p class="mb-3 text-sm text-slate-500">"Members stay in the tenant; only the team goes."</p>
                                            <ConfirmForm action=DeleteTeam::url() confirm=format!("Delete the team {}? This cannot be undone.", t.name) label="Delete team" fields=vec![("team_id", id.clone())] />
                                        </div>
                                    </section>
                                })}
                            </div>
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
}
