//! Tenants, teams, members and invitations. Each operation authorizes first (`authorize`), then reads or
//! writes rows scoped by the tenant id, so an id from another tenant finds nothing and answers NotFound.

use crate::{error::duplicate_as, internal, Caller, Identity};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tollgate_domain::{
    access::{decide, Action, Principal},
    audit::AuditAction,
    invitation::{self, InvitationFacts},
    membership,
    page::{Page, PageRequest},
    text,
    time::Millis,
    views::{
        InvitationCreated, InvitationPreview, InvitationView, MemberView, TeamMemberView, TeamView,
        TenantView,
    },
    DomainError, TenantRole,
};
use tollgate_store::{now_millis, InvitationRow, NewInvitation, TeamRow};

fn page_of<T>(items: Vec<T>, total: i64, page: PageRequest) -> Page<T> {
    Page {
        items,
        total: u64::try_from(total).unwrap_or(0),
        page: page.page,
        per_page: page.per_page,
    }
}

fn role_of(s: &str) -> TenantRole {
    // Stored roles are written only from TenantRole::as_str; anything else is treated as least privilege.
    s.parse().unwrap_or(TenantRole::Viewer)
}

/// Hash of an invitation token as stored; the token itself exists only in the link.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Identity {
    /// Checks `action` in `tenant_id` for the caller, with their role read fresh from the database (a role
    /// change applies on the next click). Returns that role.
    pub async fn authorize(
        &self,
        caller: &Caller,
        tenant_id: &str,
        action: Action,
    ) -> Result<Option<TenantRole>, DomainError> {
        let role = self
            .store
            .membership_role(tenant_id, &caller.user_id)
            .await
            .map_err(internal)?
            .map(|r| role_of(&r));
        decide(
            Principal {
                platform_admin: caller.platform_admin,
                role_in_tenant: role,
            },
            action,
        )?;
        Ok(role)
    }

    /// A team of `tenant_id`, or NotFound (also for another tenant's team id).
    pub async fn team_in(&self, tenant_id: &str, team_id: &str) -> Result<TeamRow, DomainError> {
        self.store
            .team(tenant_id, team_id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::not_found("team"))
    }

    fn require_platform_admin(caller: &Caller, action: Action) -> Result<(), DomainError> {
        decide(
            Principal {
                platform_admin: caller.platform_admin,
                role_in_tenant: None,
            },
            action,
        )
    }

    // === Tenants (platform admins) ===

    pub async fn create_tenant(
        &self,
        caller: &Caller,
        name: &str,
        slug: &str,
    ) -> Result<TenantView, DomainError> {
        Self::require_platform_admin(caller, Action::ManageTenants)?;
        let name = text::name("Tenant name", name, 100)?;
        let slug = text::slug(
            if slug.trim().is_empty() {
                text::slugify(&name)
            } else {
                slug.to_string()
            }
            .as_str(),
        )?;
        let t = self
            .store
            .create_tenant(&slug, &name)
            .await
            .map_err(duplicate_as("a tenant with this short name already exists"))?;
        self.audit(
            caller,
            Some(&t.id),
            AuditAction::TenantCreated,
            "tenant",
            &t.id,
            &t.name,
        )
        .await;
        Ok(TenantView {
            id: t.id,
            slug: t.slug,
            name: t.name,
            members: 0,
            teams: 0,
            created_at: Millis(t.created_at),
        })
    }

    pub async fn list_tenants(
        &self,
        caller: &Caller,
        search: &str,
        page: PageRequest,
    ) -> Result<Page<TenantView>, DomainError> {
        Self::require_platform_admin(caller, Action::ManageTenants)?;
        let (rows, total) = self
            .store
            .list_tenants(search, page.offset(), page.limit())
            .await
            .map_err(internal)?;
        let items = rows
            .into_iter()
            .map(|t| TenantView {
                id: t.id,
                slug: t.slug,
                name: t.name,
                members: u64::try_from(t.members).unwrap_or(0),
                teams: u64::try_from(t.teams).unwrap_or(0),
                created_at: Millis(t.created_at),
            })
            .collect();
        Ok(page_of(items, total, page))
    }

    // === Teams ===

    pub async fn list_teams(
        &self,
        caller: &Caller,
        tenant_id: &str,
        search: &str,
        page: PageRequest,
    ) -> Result<Page<TeamView>, DomainError> {
        self.authorize(caller, tenant_id, Action::ViewTeams).await?;
        let (rows, total) = self
            .store
            .list_teams(tenant_id, search, page.offset(), page.limit())
            .await
            .map_err(internal)?;
        Ok(page_of(
            rows.into_iter().map(team_view).collect(),
            total,
            page,
        ))
    }

    pub async fn team(
        &self,
        caller: &Caller,
        tenant_id: &str,
        team_id: &str,
    ) -> Result<(TeamView, Vec<TeamMemberView>), DomainError> {
        self.authorize(caller, tenant_id, Action::ViewTeams).await?;
        let team = self.team_in(tenant_id, team_id).await?;
        let members = self
            .store
            .team_members(&team.id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|m| TeamMemberView {
                user_id: m.user_id,
                email: m.email,
                name: m.name,
                added_at: Millis(m.created_at),
            })
            .collect();
        Ok((team_view(team), members))
    }

    pub async fn create_team(
        &self,
        caller: &Caller,
        tenant_id: &str,
        name: &str,
        description: &str,
    ) -> Result<TeamView, DomainError> {
        self.authorize(caller, tenant_id, Action::ManageTeams)
            .await?;
        let name = text::name("Team name", name, 80)?;
        let description = description.trim();
        if description.chars().count() > 500 {
            return Err(DomainError::invalid(
                "the description must be at most 500 characters",
            ));
        }
        let team = self
            .store
            .create_team(tenant_id, &name, description)
            .await
            .map_err(duplicate_as(
                "a team with this name already exists in this tenant",
            ))?;
        self.audit(
            caller,
            Some(tenant_id),
            AuditAction::TeamCreated,
            "team",
            &team.id,
            &team.name,
        )
        .await;
        Ok(team_view(team))
    }

    pub async fn delete_team(
        &self,
        caller: &Caller,
        tenant_id: &str,
        team_id: &str,
    ) -> Result<(), DomainError> {
        self.authorize(caller, tenant_id, Action::ManageTeams)
            .await?;
        let team = self.team_in(tenant_id, team_id).await?;
        self.store
            .delete_team(tenant_id, team_id)
            .await
            .map_err(internal)?;
        self.audit(
            caller,
            Some(tenant_id),
            AuditAction::TeamDeleted,
            "team",
            team_id,
            &team.name,
        )
        .await;
        Ok(())
    }

    /// Adds a member of the tenant to one of its teams (by email, as the admin types it).
    pub async fn add_team_member(
        &self,
        caller: &Caller,
        tenant_id: &str,
        team_id: &str,
        email: &str,
    ) -> Result<(), DomainError> {
        self.authorize(caller, tenant_id, Action::ManageTeams)
            .await?;
        let team = self.team_in(tenant_id, team_id).await?;
        let email = text::email(email)?;
        let user = self.store.user_by_email(&email).await.map_err(internal)?;
        let member = match user {
            Some(u)
                if self
                    .store
                    .membership_role(tenant_id, &u.id)
                    .await
                    .map_err(internal)?
                    .is_some() =>
            {
                u
            }
            _ => {
                return Err(DomainError::invalid(format!(
                    "{email} is not a member of this tenant: invite them first"
                )))
            }
        };
        self.store
            .add_team_member(&team.id, &member.id)
            .await
            .map_err(duplicate_as("this person is already in the team"))?;
        self.audit(
            caller,
            Some(tenant_id),
            AuditAction::TeamMemberAdded,
            "team",
            &team.id,
            &format!("{} added to {}", member.email, team.name),
        )
        .await;
        Ok(())
    }

    pub async fn remove_team_member(
        &self,
        caller: &Caller,
        tenant_id: &str,
        team_id: &str,
        user_id: &str,
    ) -> Result<(), DomainError> {
        self.authorize(caller, tenant_id, Action::ManageTeams)
            .await?;
        let team = self.team_in(tenant_id, team_id).await?;
        if !self
            .store
            .remove_team_member(&team.id, user_id)
            .await
            .map_err(internal)?
        {
            return Err(DomainError::not_found("team member"));
        }
        self.audit(
            caller,
            Some(tenant_id),
            AuditAction::TeamMemberRemoved,
            "team",
            &team.id,
            user_id,
        )
        .await;
        Ok(())
    }

    // === Members ===

    pub async fn list_members(
        &self,
        caller: &Caller,
        tenant_id: &str,
        search: &str,
        page: PageRequest,
    ) -> Result<Page<MemberView>, DomainError> {
        self.authorize(caller, tenant_id, Action::ViewMembers)
            .await?;
        let (rows, total) = self
            .store
            .list_members(tenant_id, search, page.offset(), page.limit())
            .await
            .map_err(internal)?;
        let items = rows
            .into_iter()
            .map(|m| MemberView {
                user_id: m.user_id,
                email: m.email,
                name: m.name,
                role: role_of(&m.role),
                joined_at: Millis(m.created_at),
            })
            .collect();
        Ok(page_of(items, total, page))
    }

    pub async fn change_role(
        &self,
        caller: &Caller,
        tenant_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<(), DomainError> {
        self.authorize(caller, tenant_id, Action::ChangeRoles)
            .await?;
        let new_role: TenantRole = role.parse()?;
        let member = self
            .store
            .member(tenant_id, user_id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::not_found("member"))?;
        let current = role_of(&member.role);
        let admins =
            u64::try_from(self.store.count_admins(tenant_id).await.map_err(internal)?).unwrap_or(0);
        membership::check_role_change(current, new_role, admins)?;
        self.store
            .set_membership_role(tenant_id, user_id, new_role.as_str())
            .await
            .map_err(internal)?;
        self.audit(
            caller,
            Some(tenant_id),
            AuditAction::MemberRoleChanged,
            "user",
            user_id,
            &format!("{}: {} -> {}", member.email, current, new_role),
        )
        .await;
        Ok(())
    }

    pub async fn remove_member(
        &self,
        caller: &Caller,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<(), DomainError> {
        self.authorize(caller, tenant_id, Action::RemoveMembers)
            .await?;
        let member = self
            .store
            .member(tenant_id, user_id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::not_found("member"))?;
        let admins =
            u64::try_from(self.store.count_admins(tenant_id).await.map_err(internal)?).unwrap_or(0);
        membership::check_removal(role_of(&member.role), admins)?;
        self.store
            .remove_membership(tenant_id, user_id)
            .await
            .map_err(internal)?;
        self.audit(
            caller,
            Some(tenant_id),
            AuditAction::MemberRemoved,
            "user",
            user_id,
            &member.email,
        )
        .await;
        Ok(())
    }

    // === Invitations ===

    #[allow(clippy::too_many_arguments)]
    pub async fn invite(
        &self,
        caller: &Caller,
        tenant_id: &str,
        email: Option<&str>,
        role: &str,
        team_id: Option<&str>,
        ttl_hours: Option<u32>,
    ) -> Result<InvitationCreated, DomainError> {
        self.authorize(caller, tenant_id, Action::InviteMembers)
            .await?;
        let role: TenantRole = role.parse()?;
        let email = email
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(text::email)
            .transpose()?;
        let team_id = team_id.map(str::trim).filter(|t| !t.is_empty());
        if let Some(team) = team_id {
            self.team_in(tenant_id, team).await?;
        }
        if let Some(e) = &email {
            if let Some(u) = self.store.user_by_email(e).await.map_err(internal)? {
                if self
                    .store
                    .membership_role(tenant_id, &u.id)
                    .await
                    .map_err(internal)?
                    .is_some()
                {
                    return Err(DomainError::conflict(format!(
                        "{e} is already a member of this tenant"
                    )));
                }
            }
        }
        let expires_at = invitation::expiry(Millis(now_millis()), ttl_hours)?;
        let token = new_token();
        let id = self
            .store
            .create_invitation(NewInvitation {
                tenant_id,
                email: email.as_deref(),
                role: role.as_str(),
                team_id,
                token_hash: &token_hash(&token),
                invited_by: &caller.email,
                expires_at: expires_at.0,
            })
            .await
            .map_err(internal)?;
        let row = self
            .store
            .invitation(tenant_id, &id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::Internal)?;
        let detail = format!(
            "{} as {}",
            email.as_deref().unwrap_or("anyone with the link"),
            role
        );
        self.audit(
            caller,
            Some(tenant_id),
            AuditAction::MemberInvited,
            "invitation",
            &id,
            &detail,
        )
        .await;
        Ok(InvitationCreated {
            invitation: invitation_view(row),
            link: format!("{}/invite/{}", self.settings.public_url, token),
        })
    }

    pub async fn list_invitations(
        &self,
        caller: &Caller,
        tenant_id: &str,
        page: PageRequest,
    ) -> Result<Page<InvitationView>, DomainError> {
        self.authorize(caller, tenant_id, Action::InviteMembers)
            .await?;
        let (rows, total) = self
            .store
            .list_invitations(tenant_id, page.offset(), page.limit())
            .await
            .map_err(internal)?;
        Ok(page_of(
            rows.into_iter().map(invitation_view).collect(),
            total,
            page,
        ))
    }

    pub async fn revoke_invitation(
        &self,
        caller: &Caller,
        tenant_id: &str,
        id: &str,
    ) -> Result<(), DomainError> {
        self.authorize(caller, tenant_id, Action::InviteMembers)
            .await?;
        let inv = self
            .store
            .invitation(tenant_id, id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::not_found("invitation"))?;
        Self::invitation_facts(&inv).check_acceptable(Millis(now_millis()))?;
        if !self
            .store
            .revoke_invitation(tenant_id, id)
            .await
            .map_err(internal)?
        {
            return Err(DomainError::conflict(
                "this invitation can no longer be withdrawn",
            ));
        }
        self.audit(
            caller,
            Some(tenant_id),
            AuditAction::InvitationRevoked,
            "invitation",
            id,
            inv.email.as_deref().unwrap_or(""),
        )
        .await;
        Ok(())
    }

    pub(crate) async fn invitation_for_token(
        &self,
        token: &str,
    ) -> Result<InvitationRow, DomainError> {
        self.store
            .invitation_by_token_hash(&token_hash(token.trim()))
            .await
            .map_err(internal)?
            .ok_or(DomainError::not_found("invitation"))
    }

    pub(crate) fn invitation_facts(inv: &InvitationRow) -> InvitationFacts {
        InvitationFacts {
            expires_at: Millis(inv.expires_at),
            accepted_at: inv.accepted_at.map(Millis),
            revoked_at: inv.revoked_at.map(Millis),
        }
    }

    /// What the link's holder sees before accepting (no sign-in needed: the token is the credential).
    pub async fn preview_invitation(&self, token: &str) -> Result<InvitationPreview, DomainError> {
        let inv = self.invitation_for_token(token).await?;
        let tenant = self
            .store
            .tenant_by_id(&inv.tenant_id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::not_found("invitation"))?;
        Ok(InvitationPreview {
            tenant_name: tenant.name,
            role: role_of(&inv.role),
            email: inv.email.clone(),
            invited_by: inv.invited_by.clone(),
            expires_at: Millis(inv.expires_at),
            state: Self::invitation_facts(&inv).state(Millis(now_millis())),
        })
    }

    /// Accepts an invitation for the signed-in caller: single use, checked atomically in the database.
    pub async fn accept_invitation(
        &self,
        caller: &Caller,
        token: &str,
    ) -> Result<String, DomainError> {
        let inv = self.invitation_for_token(token).await?;
        invitation::check_invitee(inv.email.as_deref(), &caller.email)?;
        Self::invitation_facts(&inv).check_acceptable(Millis(now_millis()))?;
        if !self
            .store
            .accept_invitation(&inv, &caller.user_id)
            .await
            .map_err(internal)?
        {
            return Err(DomainError::conflict(
                "this invitation has already been used",
            ));
        }
        self.audit(
            caller,
            Some(&inv.tenant_id),
            AuditAction::InvitationAccepted,
            "invitation",
            &inv.id,
            &format!("{} joined as {}", caller.email, inv.role),
        )
        .await;
        Ok(inv.tenant_id)
    }
}

fn team_view(t: tollgate_store::TeamRow) -> TeamView {
    TeamView {
        id: t.id,
        name: t.name,
        description: t.description,
        members: u64::try_from(t.members).unwrap_or(0),
        created_at: Millis(t.created_at),
    }
}

fn invitation_view(r: InvitationRow) -> InvitationView {
    let state = Identity::invitation_facts(&r).state(Millis(now_millis()));
    InvitationView {
        id: r.id,
        email: r.email,
        role: role_of(&r.role),
        team_name: r.team_name,
        invited_by: r.invited_by,
        created_at: Millis(r.created_at),
        expires_at: Millis(r.expires_at),
        state,
    }
}
