//! /api/v1 tenants, teams, members, invitations and the audit log: thin handlers over `Identity`.

use super::{auth::ApiCaller, error::ApiResult, PageQuery};
use crate::state::AppState;
use axum::{
    extract::{rejection::JsonRejection, rejection::QueryRejection, Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use tollgate_domain::{
    page::Page,
    time::Millis,
    views::{
        AuditEventView, AuditFilter, InvitationCreated, InvitationView, Me, MemberView,
        PlatformViewerView, TeamMemberView, TeamView, TenantView,
    },
};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// Case-insensitive text search.
    #[serde(default)]
    pub search: String,
    /// 1-based page number.
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    pub per_page: Option<u32>,
}

impl Search {
    fn page(&self) -> tollgate_domain::page::PageRequest {
        PageQuery {
            page: self.page,
            per_page: self.per_page,
        }
        .request()
    }
}

/// The caller, their tenants and roles.
#[utoipa::path(get, path = "/me", tag = "identity", responses((status = 200, body = Me)))]
pub async fn me(ApiCaller(caller): ApiCaller, State(s): State<AppState>) -> ApiResult<Json<Me>> {
    Ok(Json(s.identity.me(&caller).await?))
}

/// All tenants (platform admins).
#[utoipa::path(get, path = "/tenants", tag = "tenancy", params(Search), responses((status = 200, body = Page<TenantView>)))]
pub async fn list_tenants(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    q: Result<Query<Search>, QueryRejection>,
) -> ApiResult<Json<Page<TenantView>>> {
    let Query(q) = q?;
    Ok(Json(
        s.identity
            .list_tenants(&caller, &q.search, q.page())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewTenant {
    pub name: String,
    #[serde(default)]
    pub slug: String,
}

/// Create a tenant (platform admins).
#[utoipa::path(post, path = "/tenants", tag = "tenancy", request_body = NewTenant, responses((status = 201, body = TenantView)))]
pub async fn create_tenant(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    body: Result<Json<NewTenant>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    let Json(b) = body?;
    Ok((
        StatusCode::CREATED,
        Json(s.identity.create_tenant(&caller, &b.name, &b.slug).await?),
    ))
}

/// The tenant's teams.
#[utoipa::path(get, path = "/teams", tag = "tenancy", params(Search), responses((status = 200, body = Page<TeamView>)))]
pub async fn list_teams(
    caller: ApiCaller,
    State(s): State<AppState>,
    q: Result<Query<Search>, QueryRejection>,
) -> ApiResult<Json<Page<TeamView>>> {
    let Query(q) = q?;
    let tenant = caller.tenant()?;
    Ok(Json(
        s.identity
            .list_teams(&caller.0, &tenant, &q.search, q.page())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewTeam {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Create a team (tenant admins).
#[utoipa::path(post, path = "/teams", tag = "tenancy", request_body = NewTeam, responses((status = 201, body = TeamView)))]
pub async fn create_team(
    caller: ApiCaller,
    State(s): State<AppState>,
    body: Result<Json<NewTeam>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<TeamView>)> {
    let Json(b) = body?;
    let tenant = caller.tenant()?;
    Ok((
        StatusCode::CREATED,
        Json(
            s.identity
                .create_team(&caller.0, &tenant, &b.name, &b.description)
                .await?,
        ),
    ))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TeamWithMembers {
    #[serde(flatten)]
    pub team: TeamView,
    pub members_list: Vec<TeamMemberView>,
}

/// A team with its members.
#[utoipa::path(get, path = "/teams/{id}", tag = "tenancy", responses((status = 200, body = TeamWithMembers)))]
pub async fn get_team(
    caller: ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TeamWithMembers>> {
    let tenant = caller.tenant()?;
    let (team, members_list) = s.identity.team(&caller.0, &tenant, &id).await?;
    Ok(Json(TeamWithMembers { team, members_list }))
}

/// Delete a team (tenant admins).
#[utoipa::path(delete, path = "/teams/{id}", tag = "tenancy", responses((status = 204)))]
pub async fn delete_team(
    caller: ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let tenant = caller.tenant()?;
    s.identity.delete_team(&caller.0, &tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TeamMember {
    pub email: String,
}

/// Add a tenant member to a team.
#[utoipa::path(post, path = "/teams/{id}/members", tag = "tenancy", request_body = TeamMember, responses((status = 204)))]
pub async fn add_team_member(
    caller: ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<TeamMember>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let Json(b) = body?;
    let tenant = caller.tenant()?;
    s.identity
        .add_team_member(&caller.0, &tenant, &id, &b.email)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove someone from a team.
#[utoipa::path(delete, path = "/teams/{id}/members/{user_id}", tag = "tenancy", responses((status = 204)))]
pub async fn remove_team_member(
    caller: ApiCaller,
    State(s): State<AppState>,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = caller.tenant()?;
    s.identity
        .remove_team_member(&caller.0, &tenant, &id, &user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's members.
#[utoipa::path(get, path = "/members", tag = "tenancy", params(Search), responses((status = 200, body = Page<MemberView>)))]
pub async fn list_members(
    caller: ApiCaller,
    State(s): State<AppState>,
    q: Result<Query<Search>, QueryRejection>,
) -> ApiResult<Json<Page<MemberView>>> {
    let Query(q) = q?;
    let tenant = caller.tenant()?;
    Ok(Json(
        s.identity
            .list_members(&caller.0, &tenant, &q.search, q.page())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RoleChange {
    pub role: String,
}

/// Change a member's role (tenant admins).
#[utoipa::path(put, path = "/members/{user_id}", tag = "tenancy", request_body = RoleChange, responses((status = 204)))]
pub async fn change_role(
    caller: ApiCaller,
    State(s): State<AppState>,
    Path(user_id): Path<String>,
    body: Result<Json<RoleChange>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let Json(b) = body?;
    let tenant = caller.tenant()?;
    s.identity
        .change_role(&caller.0, &tenant, &user_id, &b.role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member from the tenant (tenant admins).
#[utoipa::path(delete, path = "/members/{user_id}", tag = "tenancy", responses((status = 204)))]
pub async fn remove_member(
    caller: ApiCaller,
    State(s): State<AppState>,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    let tenant = caller.tenant()?;
    s.identity
        .remove_member(&caller.0, &tenant, &user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewInvitation {
    #[serde(default)]
    pub email: Option<String>,
    pub role: String,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub valid_hours: Option<u32>,
}

/// Invite someone; the link is in this response only.
#[utoipa::path(post, path = "/invitations", tag = "tenancy", request_body = NewInvitation, responses((status = 201, body = InvitationCreated)))]
pub async fn invite(
    caller: ApiCaller,
    State(s): State<AppState>,
    body: Result<Json<NewInvitation>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<InvitationCreated>)> {
    let Json(b) = body?;
    let tenant = caller.tenant()?;
    let created = s
        .identity
        .invite(
            &caller.0,
            &tenant,
            b.email.as_deref(),
            &b.role,
            b.team_id.as_deref().filter(|t| !t.is_empty()),
            b.valid_hours,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The tenant's invitations.
#[utoipa::path(get, path = "/invitations", tag = "tenancy", params(Search), responses((status = 200, body = Page<InvitationView>)))]
pub async fn list_invitations(
    caller: ApiCaller,
    State(s): State<AppState>,
    q: Result<Query<Search>, QueryRejection>,
) -> ApiResult<Json<Page<InvitationView>>> {
    let Query(q) = q?;
    let tenant = caller.tenant()?;
    Ok(Json(
        s.identity
            .list_invitations(&caller.0, &tenant, q.page())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// An action name such as subscription.approved.
    pub action: Option<String>,
    /// Actor email contains.
    pub actor: Option<String>,
    /// `YYYY-MM-DD`
    pub from: Option<String>,
    /// `YYYY-MM-DD`, inclusive
    pub until: Option<String>,
    /// Platform admins: one tenant.
    pub tenant_id: Option<String>,
    /// 1-based page number.
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    pub per_page: Option<u32>,
}

/// The audit log (tenant admins: their tenant; platform admins: all).
#[utoipa::path(get, path = "/audit", tag = "tenancy", params(AuditQuery), responses((status = 200, body = Page<AuditEventView>)))]
pub async fn audit(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<Page<AuditEventView>>> {
    let Query(q) = q?;
    let date = |d: &Option<String>| d.as_deref().and_then(Millis::parse_date);
    let filter = AuditFilter {
        action: q.action,
        actor: q.actor,
        from: date(&q.from),
        until: date(&q.until).map(|m| m.plus_hours(24)),
        // Tenant admins get their current tenant; platform admins all tenants unless they name one.
        tenant_id: q.tenant_id,
    };
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    }
    .request();
    Ok(Json(s.identity.list_audit(&caller, filter, page).await?))
}

/// Users holding the platform viewer role: product owners who read usage, cost and adoption across tenants and
/// change nothing (platform admins only).
#[utoipa::path(get, path = "/platform/viewers", tag = "identity", responses((status = 200, body = Vec<PlatformViewerView>)))]
pub async fn list_platform_viewers(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
) -> ApiResult<Json<Vec<PlatformViewerView>>> {
    Ok(Json(s.identity.platform_viewers(&caller).await?))
}

/// Grants the platform viewer role to the user with this email (platform admins only).
#[utoipa::path(put, path = "/platform/viewers/{email}", tag = "identity", responses((status = 200, body = PlatformViewerView)))]
pub async fn grant_platform_viewer(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(email): Path<String>,
) -> ApiResult<Json<PlatformViewerView>> {
    Ok(Json(
        s.identity
            .set_platform_viewer(&caller, &email, true)
            .await?,
    ))
}

/// Withdraws the platform viewer role from the user with this email (platform admins only).
#[utoipa::path(delete, path = "/platform/viewers/{email}", tag = "identity", responses((status = 200, body = PlatformViewerView)))]
pub async fn revoke_platform_viewer(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(email): Path<String>,
) -> ApiResult<Json<PlatformViewerView>> {
    Ok(Json(
        s.identity
            .set_platform_viewer(&caller, &email, false)
            .await?,
    ))
}
