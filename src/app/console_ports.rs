//! The access console's ports, plugged in: sled's hash-chained audit trail as the console's
//! `AuditTrail` (its `verify` is the chain status), the DingTalk client as its `DingLogin`, and the
//! console itself built from the configuration.
use crate::clock::SharedClock;
use crate::config::Config;
use crate::console::data::{AuditTrail, ChainStatus, DingLogin, LoginIdentity};
use crate::console::{Console, ConsolePorts, ConsoleSettings};
use crate::dingtalk::client::DingTalkClient;
use crate::domain::audit::AuditRecord;
use crate::domain::ids::{DingUserId, OrderId};
use crate::store::audit::{Audit, ChainWalk};
use crate::store::index::Index;
use crate::store::orders::Orders;
use crate::store::outbox::Outbox;
use crate::store::sessions::Sessions;
use crate::store::{Store, StoreError};
use futures::future::BoxFuture;
use jiff::Timestamp;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The hash-chained trail as the console reads it. The chain is walked in full once, then only
/// the records added since (`Audit::verify_from`): a History page re-hashed the whole trail each
/// time, 118 ms at 44,000 records (benches/console.rs).
pub struct ConsoleAudit {
    audit: Audit,
    walk: Mutex<ChainWalk>,
}

impl ConsoleAudit {
    pub fn new(audit: Audit) -> Self {
        Self {
            audit,
            walk: Mutex::default(),
        }
    }
}

impl AuditTrail for ConsoleAudit {
    fn for_order(&self, id: &OrderId) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit.list_for_order(id)
    }
    fn since(&self, since: Timestamp, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit.list_since(since, limit)
    }
    fn records_of(
        &self,
        orders: &[OrderId],
        users: &[String],
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit.records_of(orders, users, since, limit)
    }
    fn users(&self) -> Result<Vec<String>, StoreError> {
        self.audit.indexed_users()
    }
    fn page(
        &self,
        newest_first: bool,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, usize), StoreError> {
        self.audit.page_all(newest_first, offset, limit)
    }
    fn chain(&self) -> ChainStatus {
        let mut walk = self.walk.lock().unwrap_or_else(|e| e.into_inner());
        let checked = self.audit.verify_from(walk.clone()).map(|(report, next)| {
            *walk = next;
            report
        });
        match checked {
            Ok(r) if r.is_intact() => ChainStatus::Verified { records: r.count },
            Ok(r) => ChainStatus::Broken {
                breaks: r.breaks.len(),
            },
            Err(e) => {
                tracing::error!(error = %e, "console could not verify the audit chain");
                ChainStatus::Broken { breaks: 0 }
            }
        }
    }
}

impl DingLogin for DingTalkClient {
    fn web<'a>(&'a self, code: &'a str) -> BoxFuture<'a, Result<LoginIdentity, String>> {
        Box::pin(async move {
            self.login_with_web_code(code)
                .await
                .map(|l| LoginIdentity {
                    user: l.userid,
                    name: l.name,
                })
                .map_err(|e| e.to_string())
        })
    }
    fn in_app<'a>(&'a self, code: &'a str) -> BoxFuture<'a, Result<LoginIdentity, String>> {
        Box::pin(async move {
            self.login_with_inapp_code(code)
                .await
                .map(|l| LoginIdentity {
                    user: l.userid,
                    name: l.name,
                })
                .map_err(|e| e.to_string())
        })
    }
}

/// The console for `config`, reading `store`, logging in through `dingtalk`; `addr` is where the
/// server listens (the public URL on loopback when none is configured).
pub(super) fn console(
    config: &Config,
    store: &Store,
    dingtalk: &DingTalkClient,
    clock: SharedClock,
    addr: SocketAddr,
) -> Result<Console, StoreError> {
    let outbox = Outbox::new(store)?;
    let ids = |v: &[String]| {
        v.iter()
            .map(|s| DingUserId::new(s.as_str()))
            .collect::<Vec<_>>()
    };
    let mut overseers = ids(&config.policy.admins);
    overseers.extend(ids(&config.console.auditors));
    let mut approvers = ids(&config.approval.default_approvers);
    for s in &config.systems {
        approvers.extend(ids(&s.approvers));
    }
    let public_url = if config.console.public_url.is_empty() && addr.ip().is_loopback() {
        format!("http://{addr}")
    } else {
        config.console.public_url.clone()
    };
    Ok(Console::new(
        ConsoleSettings {
            console: config.console.clone(),
            public_url,
            app_key: config.dingtalk.app_key.clone(),
            corp_id: config.dingtalk.corp_id.clone(),
            tz: jiff::tz::TimeZone::get(&config.chat.timezone).unwrap_or(jiff::tz::TimeZone::UTC),
            overseers: overseers.into_iter().collect(),
            approvers: approvers.into_iter().collect(),
        },
        ConsolePorts {
            orders: Arc::new(Orders::new(store, &outbox)?),
            index: Arc::new(Index::new(store)?),
            audit: Arc::new(ConsoleAudit::new(Audit::new(store)?)),
            sessions: Arc::new(Sessions::new(store)?),
            login: Arc::new(dingtalk.clone()),
        },
        clock,
    ))
}
