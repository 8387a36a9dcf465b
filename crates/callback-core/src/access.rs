//! Who may do what: API keys, their scopes and application, the principal a
//! request acts as, and the audit trail of what principals changed.
//!
//! The rules here are pure; `callback-auth` turns a bearer credential into
//! a [`Principal`], the API asks the principal before it acts.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use uuid::Uuid;

/// What a key may do. `Admin` implies every scope; `Operator` implies
/// reading and managing tasks across applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "tasks:write")]
    TasksWrite,
    #[serde(rename = "tasks:read")]
    TasksRead,
    #[serde(rename = "tasks:manage")]
    TasksManage,
    #[serde(rename = "events:publish")]
    EventsPublish,
    #[serde(rename = "endpoints:manage")]
    EndpointsManage,
    #[serde(rename = "operator")]
    Operator,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::TasksWrite,
        Scope::TasksRead,
        Scope::TasksManage,
        Scope::EventsPublish,
        Scope::EndpointsManage,
        Scope::Operator,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TasksWrite => "tasks:write",
            Scope::TasksRead => "tasks:read",
            Scope::TasksManage => "tasks:manage",
            Scope::EventsPublish => "events:publish",
            Scope::EndpointsManage => "endpoints:manage",
            Scope::Operator => "operator",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("`{s}` is not a scope; known: {}", known.join(", "))
            })
    }

    /// Scopes that act across applications: a key bound to one application
    /// cannot hold them, and a key bound to none must hold one of them.
    pub fn is_cross_application(self) -> bool {
        matches!(self, Scope::Operator | Scope::Admin)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes a key holds; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Result<Self, String> {
        let set: BTreeSet<Scope> = scopes.into_iter().collect();
        if set.is_empty() {
            return Err("must name at least one scope".into());
        }
        Ok(Self(set))
    }

    pub fn admin() -> Self {
        Self(BTreeSet::from([Scope::Admin]))
    }

    /// Whether these scopes allow an action that needs `needed`.
    pub fn allow(&self, needed: Scope) -> bool {
        if self.0.contains(&Scope::Admin) || self.0.contains(&needed) {
            return true;
        }
        self.0.contains(&Scope::Operator) && matches!(needed, Scope::TasksRead | Scope::TasksManage)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    fn any_cross_application(&self) -> bool {
        self.iter().any(Scope::is_cross_application)
    }
}

/// An API key's id (not its secret): a UUID v7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(Uuid);

impl ApiKeyId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for ApiKeyId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ApiKeyId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// The SHA-256 of a key's secret: all the store ever holds of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Where requests with a key may come from: empty means anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAllowlist(Vec<IpNet>);

impl IpAllowlist {
    /// Each entry is a network (`10.0.0.0/8`) or one address (`192.168.1.7`).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("`{e}` is neither an address nor a network"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = crate::outbound::canonical(ip);
        self.0.is_empty() || self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn entries(&self) -> &[IpNet] {
        &self.0
    }
}

/// An API key as stored and listed: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    /// The one application the key acts for; `None` for a cross-application
    /// key, which holds `operator` or `admin`.
    pub app: Option<String>,
    pub scopes: Scopes,
    pub allow_ips: IpAllowlist,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit_per_s: Option<NonZeroU32>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Checks the rule that ties scopes to applications: an application's
    /// key holds only that application's scopes, a key for no application
    /// holds `operator` or `admin`.
    pub fn check_binding(app: Option<&str>, scopes: &Scopes) -> Result<(), String> {
        match (app, scopes.any_cross_application()) {
            (Some(_), true) => Err(
                "`operator` and `admin` act across applications; a key bound to an `app` cannot hold them"
                    .into(),
            ),
            (None, false) => Err(
                "a key without `app` acts across applications and must hold `operator` or `admin`; give it an `app` instead"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// Whether the key may be used at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The bootstrap admin token.
    Admin,
    Key {
        id: ApiKeyId,
        name: String,
    },
    /// A person signed in to the console.
    Account {
        id: AccountId,
        username: String,
    },
}

impl Actor {
    /// How the audit log names the actor: `admin` or `key:<id>`.
    pub fn label(&self) -> String {
        match self {
            Actor::Admin => "admin".into(),
            Actor::Key { id, .. } => format!("key:{id}"),
            Actor::Account { username, .. } => format!("account:{username}"),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Actor::Admin => "admin token",
            Actor::Key { name, .. } => name,
            Actor::Account { username, .. } => username,
        }
    }
}

/// What a request acts as, once its credential is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: Actor,
    /// The application it is confined to; `None` for cross-application.
    pub app: Option<String>,
    pub scopes: Scopes,
}

impl Principal {
    pub fn admin() -> Self {
        Self {
            actor: Actor::Admin,
            app: None,
            scopes: Scopes::admin(),
        }
    }

    pub fn of_key(key: &ApiKey) -> Self {
        Self {
            actor: Actor::Key {
                id: key.id,
                name: key.name.clone(),
            },
            app: key.app.clone(),
            scopes: key.scopes.clone(),
        }
    }

    /// A person signed in to the console: cross-application, with the
    /// scopes of their role. `account` is `None` for a session opened with
    /// the admin token, which acts as the token does.
    pub fn of_session(account: Option<(AccountId, String)>, role: Role) -> Self {
        match account {
            None => Self::admin(),
            Some((id, username)) => Self {
                actor: Actor::Account { id, username },
                app: None,
                scopes: role.scopes(),
            },
        }
    }

    /// `Err(scope)` names the scope the principal lacks.
    pub fn require(&self, needed: Scope) -> Result<(), Scope> {
        if self.scopes.allow(needed) {
            Ok(())
        } else {
            Err(needed)
        }
    }

    /// Whether data of `app` is visible: always for a cross-application
    /// principal, only its own application's otherwise.
    pub fn sees(&self, app: Option<&str>) -> bool {
        match &self.app {
            None => true,
            Some(own) => app == Some(own.as_str()),
        }
    }

    /// The application a new task or event is for: the principal's own,
    /// or `Err` when the request names another one.
    pub fn app_for(&self, requested: Option<String>) -> Result<Option<String>, AppMismatch> {
        match (&self.app, requested) {
            (None, requested) => Ok(requested),
            (Some(own), None) => Ok(Some(own.clone())),
            (Some(own), Some(requested)) if *own == requested => Ok(Some(requested)),
            (Some(own), Some(requested)) => Err(AppMismatch {
                own: own.clone(),
                requested,
            }),
        }
    }
}

/// A request named an application other than its key's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this key acts for application `{own}` only, not `{requested}`")]
pub struct AppMismatch {
    pub own: String,
    pub requested: String,
}

/// What a console account may do, as a set of API scopes: the console asks
/// the same questions of its principal as the API does of a key's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads tasks, attempts, buckets and the live tail.
    Viewer,
    /// Also re-sends and cancels tasks, manages endpoints, publishes events.
    Operator,
    /// Everything: alert hooks, routes, keys, accounts, the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a role; known: viewer, operator, admin"))
    }

    pub fn scopes(self) -> Scopes {
        let scopes: &[Scope] = match self {
            Role::Viewer => &[Scope::TasksRead],
            Role::Operator => &[
                Scope::Operator,
                Scope::EndpointsManage,
                Scope::EventsPublish,
            ],
            Role::Admin => &[Scope::Admin],
        };
        Scopes(scopes.iter().copied().collect())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A console account's id: a UUID v7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(Uuid);

impl AccountId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for AccountId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for AccountId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A console account as listed: everything but its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl Account {
    /// 1 to 64 characters: letters, digits, `.`, `_`, `-`, `@`.
    pub fn check_username(name: &str) -> Result<(), String> {
        let allowed = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
        if name.is_empty() || name.chars().count() > 64 || !name.chars().all(allowed) {
            return Err("1 to 64 letters, digits, `.`, `_`, `-` or `@`".into());
        }
        Ok(())
    }
}

/// A signed-in console session, as stored (the cookie's token only as its
/// hash). The role is copied at sign-in: a changed role applies from the
/// next sign-in, a disabled account ends its sessions at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub token_hash: KeyHash,
    /// `None` for the admin token.
    pub account: Option<AccountId>,
    pub username: String,
    pub role: Role,
    /// Every form carries it; a POST without it is refused.
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    /// Last request seen, written at most once a minute: idle expiry.
    pub seen_at: DateTime<Utc>,
}

impl ConsoleSession {
    pub fn principal(&self) -> Principal {
        Principal::of_session(
            self.account.map(|id| (id, self.username.clone())),
            self.role,
        )
    }
}

/// An audit entry's id: a UUID v7, so ids sort by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuditId(Uuid);

impl AuditId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl Default for AuditId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for AuditId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for AuditId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// One state-changing request: who, from where, what, on what, and how it
/// ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: AuditId,
    pub at: DateTime<Utc>,
    /// `admin` or `key:<id>`.
    pub actor: String,
    pub actor_name: String,
    pub ip: Option<String>,
    /// A stable name such as `task.retry` or `key.create`.
    pub action: String,
    pub method: String,
    pub path: String,
    /// The ids acted on, as the path or the answer names them.
    pub target: Option<String>,
    /// What else the action was given or found: a bulk filter and count.
    pub detail: Option<serde_json::Value>,
    /// The HTTP status answered.
    pub status: u16,
}

/// Which audit entries a listing returns; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[Scope]) -> Scopes {
        Scopes::new(list.iter().copied()).unwrap()
    }

    #[test]
    fn scopes_parse_by_their_names_and_refuse_others() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Ok(scope));
        }
        let err = Scope::parse("tasks:delete").unwrap_err();
        assert!(err.contains("tasks:delete") && err.contains("tasks:write"));
        assert!(Scopes::new([]).is_err());
    }

    #[test]
    fn admin_implies_everything_and_operator_implies_task_work() {
        let admin = scopes(&[Scope::Admin]);
        assert!(Scope::ALL.iter().all(|s| admin.allow(*s)));
        let operator = scopes(&[Scope::Operator]);
        assert!(operator.allow(Scope::TasksRead));
        assert!(operator.allow(Scope::TasksManage));
        assert!(!operator.allow(Scope::TasksWrite));
        assert!(!operator.allow(Scope::Admin));
        let reader = scopes(&[Scope::TasksRead]);
        assert!(reader.allow(Scope::TasksRead));
        assert!(!reader.allow(Scope::TasksManage));
    }

    #[test]
    fn app_keys_hold_app_scopes_and_cross_application_keys_operator_or_admin() {
        let app_scopes = scopes(&[Scope::TasksWrite, Scope::TasksRead]);
        assert!(ApiKey::check_binding(Some("shop"), &app_scopes).is_ok());
        assert!(ApiKey::check_binding(None, &app_scopes).is_err());
        let ops = scopes(&[Scope::Operator]);
        assert!(ApiKey::check_binding(None, &ops).is_ok());
        assert!(ApiKey::check_binding(Some("shop"), &ops).is_err());
    }

    #[test]
    fn an_app_principal_sees_and_creates_for_its_app_only() {
        let principal = Principal {
            actor: Actor::Admin,
            app: Some("shop".into()),
            scopes: scopes(&[Scope::TasksWrite]),
        };
        assert!(principal.sees(Some("shop")));
        assert!(!principal.sees(Some("pay")));
        assert!(!principal.sees(None));
        assert_eq!(principal.app_for(None), Ok(Some("shop".into())));
        assert_eq!(
            principal.app_for(Some("shop".into())),
            Ok(Some("shop".into()))
        );
        assert!(principal.app_for(Some("pay".into())).is_err());
        let admin = Principal::admin();
        assert!(admin.sees(Some("pay")) && admin.sees(None));
        assert_eq!(admin.app_for(Some("pay".into())), Ok(Some("pay".into())));
    }

    #[test]
    fn allowlists_take_networks_and_single_addresses() {
        let list = IpAllowlist::parse(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]).unwrap();
        assert!(list.permits("10.1.2.3".parse().unwrap()));
        assert!(list.permits("192.168.1.7".parse().unwrap()));
        assert!(!list.permits("192.168.1.8".parse().unwrap()));
        assert!(list.permits("::ffff:10.0.0.1".parse().unwrap()));
        assert!(list.permits("2001:db8::1".parse().unwrap()));
        assert!(IpAllowlist::default().permits("8.8.8.8".parse().unwrap()));
        assert!(IpAllowlist::parse(&["10.0.0.0/33"]).is_err());
        assert!(IpAllowlist::parse(&["shop.example"]).is_err());
    }

    #[test]
    fn keys_past_expiry_or_revoked_are_not_live() {
        let now = Utc::now();
        let mut key = ApiKey {
            id: ApiKeyId::new(),
            name: "k".into(),
            app: Some("shop".into()),
            scopes: scopes(&[Scope::TasksRead]),
            allow_ips: IpAllowlist::default(),
            expires_at: None,
            rate_limit_per_s: None,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        assert!(key.is_live(now));
        key.expires_at = Some(now - chrono::TimeDelta::seconds(1));
        assert!(!key.is_live(now));
        key.expires_at = None;
        key.revoked_at = Some(now);
        assert!(!key.is_live(now));
    }
}
