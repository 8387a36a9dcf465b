//! Access control: API keys (generation, hashing), turning a presented
//! credential into the [`Principal`](callback_core::Principal) a request
//! acts as (admin token or key, client address against the key's
//! allowlist, per-key rate limit), console accounts and sessions, and the
//! audit log's retention.
//!
//! The rules of who may do what are in `callback-core` (`access.rs`); the
//! stores behind the ports are in `callback-store`.

mod authenticator;
mod client_ip;
mod console;
mod retention;
mod secret;

pub use authenticator::{AuthConfig, Authenticator, Denied, Presented};
pub use client_ip::client_ip;
pub use console::{
    create_account, hash_password, verify_password, AccountError, ConsoleAuth, ConsoleAuthConfig,
    OpenedSession, SignInError, SESSION_PREFIX,
};
pub use retention::run_audit_retention;
pub use secret::{generate_key, hash_key, KEY_PREFIX};
