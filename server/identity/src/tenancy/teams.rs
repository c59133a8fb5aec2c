//! Teams of a tenant: listing, reading, creating and deleting them, and adding or removing their members.

use crate::{error::duplicate_as, internal, Caller, Identity};
use tollgate_domain::{
    access::Action,
    audit::AuditAction,
    page::{Page, PageRequest},
    text,
    time::Millis,
    views::{TeamMemberView, TeamView},
    DomainError,
};
use tollgate_store::TeamRow;

use super::page_of;

impl Identity {
    /// A team of `tenant_id`, or NotFound (also for another tenant's team id).
    pub async fn team_in(&self, tenant_id: &str, team_id: &str) -> Result<TeamRow, DomainError> {
        self.store
            .team(tenant_id, team_id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::not_found("team"))
    }

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
            .team_members(tenant_id, &team.id)
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
        if !self
            .store
            .add_team_member(tenant_id, &team.id, &member.id)
            .await
            .map_err(duplicate_as("this person is already in the team"))?
        {
            return Err(DomainError::not_found("team"));
        }
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
            .remove_team_member(tenant_id, &team.id, user_id)
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
