//! Invitations: creating, listing and revoking them, and previewing and accepting one by its link's token.

use crate::{internal, Caller, Identity};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tollgate_domain::{
    access::Action,
    audit::AuditAction,
    invitation::{self, InvitationFacts},
    page::{Page, PageRequest},
    text,
    time::Millis,
    views::{InvitationCreated, InvitationPreview, InvitationView},
    DomainError, TenantRole,
};
use tollgate_store::{now_millis, InvitationRow, NewInvitation};

use super::{page_of, role_of};

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
