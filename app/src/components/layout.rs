//! The signed-in shell: header with navigation, tenant switcher and account menu, around the current page.
//! Signed-out visitors never reach it: the server redirects them to /login first.

use crate::{
    api::auth::{get_me, Logout, SwitchTenant},
    components::ui::LoadError,
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::{components::Outlet, hooks::use_location};
use tollgate_domain::{views::Me, TenantRole};

/// Whether the user administers the tenant they are working in.
pub fn is_tenant_admin(me: &Me) -> bool {
    me.platform_admin || me.tenant.as_ref().and_then(|t| t.role) == Some(TenantRole::Admin)
}

#[component]
pub fn Layout() -> impl IntoView {
    // Blocking: the shell renders once, after the user is known. Otherwise the Suspense renders the page twice on the
    // server and drops the first copy while its server calls still run.
    let me = Resource::new_blocking(|| (), |_| get_me());
    view! {
        <Suspense fallback=|| view! { <p class="p-6 text-slate-500">"Loading..."</p> }>
            {move || Suspend::new(async move {
                match me.await {
                    Ok(Some(me)) => {
                        provide_context(me.clone());
                        view! { <Shell me /> }.into_any()
                    }
                    Ok(None) => view! {
                        <main class="mx-auto max-w-md p-8">
                            <p>"You are signed out."</p>
                            <a class="underline" href="/login">"Sign in"</a>
                        </main>
                    }.into_any(),
                    Err(e) => view! { <main class="p-8"><LoadError error=e /></main> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Shell(me: Me) -> impl IntoView {
    let admin = is_tenant_admin(&me);
    let mut links: Vec<(&'static str, &'static str)> = vec![
        ("/catalog", "Catalog"),
        ("/playground", "Playground"),
        ("/subscriptions", "Subscriptions & keys"),
        ("/usage", "Usage"),
        ("/teams", "Teams"),
        ("/members", "Members"),
    ];
    if admin {
        links.push(("/audit", "Audit log"));
    }
    if me.platform_admin {
        links.push(("/admin", "Admin"));
    }
    let location = use_location();
    let current_tenant = me
        .tenant
        .as_ref()
        .map(|t| t.tenant_id.clone())
        .unwrap_or_default();
    let tenant_name = me.tenant.as_ref().map(|t| t.name.clone());
    let role_label = me
        .tenant
        .as_ref()
        .and_then(|t| t.role)
        .map(|r| r.label())
        .unwrap_or(if me.platform_admin {
            "Platform admin"
        } else {
            ""
        });
    view! {
        <div class="min-h-screen">
            <header class="border-b border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
                <div class="mx-auto flex max-w-6xl flex-wrap items-center gap-x-6 gap-y-2 px-4 py-3">
                    <a href="/" class="text-lg font-bold tracking-tight text-indigo-600 dark:text-indigo-400">"Tollgate"</a>
                    <nav aria-label="Main" class="flex flex-wrap gap-1 text-sm">
                        {links.into_iter().map(|(href, label)| {
                            let active = move || location.pathname.get().starts_with(href);
                            view! {
                                <a
                                    href=href
                                    class="rounded-md px-2.5 py-1.5 hover:bg-slate-100 dark:hover:bg-slate-800"
                                    class=("bg-slate-100", active)
                                    class=("font-semibold", active)
                                    attr:aria-current=move || active().then_some("page")
                                >
                                    {label}
                                </a>
                            }
                        }).collect_view()}
                    </nav>
                    <div class="ml-auto flex items-center gap-3 text-sm">
                        {(me.tenants.len() > 1).then(|| view! {
                            <form method="post" action=SwitchTenant::url() class="flex items-center gap-1">
                                <label class="sr-only" for="tenant-switch">"Tenant"</label>
                                <select id="tenant-switch" name="tenant_id" class="rounded-md border-0 py-1 text-sm ring-1 ring-slate-300 dark:bg-slate-800" onchange="this.form.submit()">
                                    {me.tenants.iter().map(|t| {
                                        let selected = t.tenant_id == current_tenant;
                                        view! { <option value=t.tenant_id.clone() selected=selected>{t.name.clone()}</option> }
                                    }).collect_view()}
                                </select>
                                <noscript><button type="submit" class="underline">"Switch"</button></noscript>
                            </form>
                        })}
                        {(me.tenants.len() <= 1).then(|| tenant_name.clone().map(|n| view! { <span class="font-medium" data-testid="tenant-name">{n}</span> }))}
                        <a href="/account" class="text-slate-600 hover:underline dark:text-slate-300" title=role_label>
                            <span data-testid="user-email">{me.email.clone()}</span>
                        </a>
                        <form method="post" action=Logout::url()>
                            <button type="submit" class="rounded-md px-2 py-1 text-slate-600 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800">"Sign out"</button>
                        </form>
                    </div>
                </div>
            </header>
            <main class="mx-auto max-w-6xl px-4 py-8">
                <Outlet />
            </main>
        </div>
    }
}
