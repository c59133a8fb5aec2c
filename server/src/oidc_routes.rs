//! The two browser routes of single sign-on: start (redirect to the provider) and callback (back from it).
//! Failures land on the sign-in page with the reason, never on a raw error page.

use crate::state::AppState;
use axum::{
    extract::{Query, State},
    response::Redirect,
    Extension,
};
use serde::Deserialize;
use tollgate_identity::session::ClientInfo;
use tower_sessions::Session;

#[derive(Deserialize)]
pub struct StartParams {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn to_login(message: &str) -> Redirect {
    Redirect::to(&format!(
        "/login?sso_error={}",
        tollgate_app::components::ui::urlencode(message)
    ))
}

pub async fn start(
    State(state): State<AppState>,
    session: Session,
    Query(p): Query<StartParams>,
) -> Redirect {
    match state
        .identity
        .oidc_begin(&session, p.next.as_deref().unwrap_or("/"))
        .await
    {
        Ok(url) => Redirect::to(&url),
        Err(e) => to_login(&e.to_string()),
    }
}

pub async fn callback(
    State(state): State<AppState>,
    session: Session,
    Extension(client): Extension<ClientInfo>,
    Query(p): Query<CallbackParams>,
) -> Redirect {
    if let Some(error) = p.error {
        let detail = p.error_description.unwrap_or_default();
        return to_login(&format!("the sign-in provider refused: {error} {detail}"));
    }
    let (Some(code), Some(returned_state)) = (p.code, p.state) else {
        return to_login("the sign-in provider sent an incomplete answer: please try again");
    };
    match state
        .identity
        .oidc_complete(&session, &returned_state, &code, &client)
        .await
    {
        Ok(return_to) => Redirect::to(&return_to),
        Err(e) => to_login(&e.to_string()),
    }
}
