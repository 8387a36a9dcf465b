//! People who may sign in (admins only): add one (its password is shown
//! once), disable, enable, reset a password.

use super::{render, time, Ctx, PageResult};
use crate::ConsoleState;
use actix_web::{web, HttpRequest};
use askama::Template;
use callback_api::{ApiError, Caller};
use callback_auth::AccountError;
use callback_core::{AccountId, Role, Scope};
use chrono::Utc;
use serde::Deserialize;

struct AccountRow {
    id: String,
    username: String,
    role: Role,
    created: String,
    last_login: Option<String>,
    disabled: bool,
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    ctx: Ctx,
    accounts: Vec<AccountRow>,
    roles: [Role; 3],
    /// The account just made or reset, and its one-time password.
    password: Option<(String, String)>,
}

fn account_error(err: AccountError) -> ApiError {
    match err {
        AccountError::InvalidName(message) => ApiError::invalid("username", message),
        AccountError::Taken => {
            ApiError::AlreadyExists("an account with this username exists".into())
        }
        AccountError::NotFound => ApiError::NotFound("no account has this id".into()),
        AccountError::Unavailable(err) => ApiError::StoreUnavailable(err),
        AccountError::Random(message) => ApiError::Internal(message.into()),
    }
}

async fn show(
    req: &HttpRequest,
    console: &ConsoleState,
    password: Option<(String, String)>,
) -> PageResult {
    let (ctx, caller) = Ctx::new(req, "admin")?;
    caller.require(Scope::Admin)?;
    let accounts = console
        .auth
        .accounts()
        .await
        .map_err(ApiError::StoreUnavailable)?
        .into_iter()
        .map(|a| AccountRow {
            id: a.id.to_string(),
            username: a.username,
            role: a.role,
            created: time(a.created_at),
            last_login: a.last_login_at.map(time),
            disabled: a.disabled_at.is_some(),
        })
        .collect();
    render(&AccountsPage {
        ctx,
        accounts,
        roles: Role::ALL,
        password,
    })
}

fn admin(req: &HttpRequest) -> Result<Caller, crate::ConsoleError> {
    let (_, caller) = Ctx::new(req, "admin")?;
    caller.require(Scope::Admin)?;
    Ok(caller)
}

pub async fn list(req: HttpRequest, console: web::Data<ConsoleState>) -> PageResult {
    show(&req, &console, None).await
}

#[derive(Deserialize)]
pub struct NewAccount {
    username: String,
    role: String,
}

pub async fn create(
    req: HttpRequest,
    console: web::Data<ConsoleState>,
    form: web::Form<NewAccount>,
) -> PageResult {
    admin(&req)?;
    let role = Role::parse(&form.role).map_err(|e| ApiError::invalid("role", e))?;
    let (account, password) = console
        .auth
        .create_account(form.username.trim(), role, Utc::now())
        .await
        .map_err(account_error)?;
    callback_api::audit::note(
        &req,
        Some(account.id.to_string()),
        Some(serde_json::json!({ "username": account.username, "role": role.as_str() })),
    );
    show(&req, &console, Some((account.username, password))).await
}

fn parse_id(raw: &str) -> Result<AccountId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound("no account has this id".into()))
}

pub async fn disable(
    req: HttpRequest,
    console: web::Data<ConsoleState>,
    path: web::Path<String>,
) -> PageResult {
    set_disabled(&req, &console, &path, Some(Utc::now())).await
}

pub async fn enable(
    req: HttpRequest,
    console: web::Data<ConsoleState>,
    path: web::Path<String>,
) -> PageResult {
    set_disabled(&req, &console, &path, None).await
}

async fn set_disabled(
    req: &HttpRequest,
    console: &ConsoleState,
    id: &str,
    at: Option<chrono::DateTime<Utc>>,
) -> PageResult {
    admin(req)?;
    console
        .auth
        .set_disabled(parse_id(id)?, at)
        .await
        .map_err(account_error)?;
    show(req, console, None).await
}

pub async fn reset_password(
    req: HttpRequest,
    console: web::Data<ConsoleState>,
    path: web::Path<String>,
) -> PageResult {
    admin(&req)?;
    let id = parse_id(&path)?;
    let password = console
        .auth
        .reset_password(id)
        .await
        .map_err(account_error)?;
    let username = console
        .auth
        .accounts()
        .await
        .map_err(ApiError::StoreUnavailable)?
        .into_iter()
        .find(|a| a.id == id)
        .map(|a| a.username)
        .unwrap_or_default();
    show(&req, &console, Some((username, password))).await
}
