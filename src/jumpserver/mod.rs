//! JumpServer adapter: signed REST client and the composite `grant`. Nothing here knows about DingTalk.
pub mod api;
pub mod client;
pub mod config;
pub mod error;
pub mod grant;
pub mod httpsig;
pub mod inventory;
pub mod pace;
pub mod totp;

pub use api::{
    granted_usernames, GrantedAsset, Host, HostAccount, JmsUser, NewHostSpec, NewPermissionSpec,
    NewUserSpec, Node, PermedAccount, Permission, Reacher,
};
pub use client::{JmsClient, ServerLine};
pub use config::{AuthMode, JumpServerConfig};
pub use error::{FieldProblem, JmsError, Problem, Words};
pub use grant::{
    GrantOutcome, GrantPlan, GrantPreview, HostRef, MissingAccount, NewUser, PermissionResult,
    RevokeMode, RevokeOutcome, UserMatch,
};
