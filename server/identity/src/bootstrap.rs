//! First start: a platform admin (and a demo tenant) so that a new installation can be signed into at once.
//! Idempotent: nothing happens once a platform admin exists.

use crate::{internal, password};
use rand::{distributions::Alphanumeric, Rng};
use tollgate_domain::{text, DomainError, TenantRole};
use tollgate_store::{NewUser, Store};

pub struct BootstrapOptions {
    pub admin_email: String,
    /// None: generate one and report it once.
    pub admin_password: Option<String>,
    pub demo_tenant: bool,
}

#[derive(Debug, PartialEq)]
pub enum Bootstrapped {
    AlreadyDone,
    /// The admin was created; `generated_password` is set when we made the password up.
    Created {
        email: String,
        generated_password: Option<String>,
    },
}

pub async fn bootstrap(store: &Store, opts: BootstrapOptions) -> Result<Bootstrapped, DomainError> {
    if store.count_platform_admins().await.map_err(internal)? > 0 {
        return Ok(Bootstrapped::AlreadyDone);
    }
    let email = text::email(&opts.admin_email)?;
    let (password, generated) = match opts.admin_password.filter(|p| !p.is_empty()) {
        Some(p) => {
            text::new_password(&p)?;
            (p, false)
        }
        None => (
            rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(20)
                .map(char::from)
                .collect::<String>(),
            true,
        ),
    };
    let hash = password::hash(password.clone()).await?;
    let admin = match store.user_by_email(&email).await.map_err(internal)? {
        Some(existing) => {
            store
                .set_platform_admin(&existing.id, true)
                .await
                .map_err(internal)?;
            store
                .set_password_hash(&existing.id, &hash)
                .await
                .map_err(internal)?;
            existing
        }
        None => store
            .create_user(NewUser {
                email: &email,
                name: "Platform admin",
                password_hash: Some(&hash),
                oidc: None,
                platform_admin: true,
            })
            .await
            .map_err(internal)?,
    };
    if opts.demo_tenant
        && store
            .tenant_by_slug("demo")
            .await
            .map_err(internal)?
            .is_none()
    {
        let tenant = store
            .create_tenant("demo", "Demo tenant")
            .await
            .map_err(internal)?;
        store
            .add_membership(&tenant.id, &admin.id, TenantRole::Admin.as_str())
            .await
            .map_err(internal)?;
        store
            .create_team(&tenant.id, "Platform team", "Created on first start")
            .await
            .map_err(internal)?;
    }
    Ok(Bootstrapped::Created {
        email,
        generated_password: generated.then_some(password),
    })
}
