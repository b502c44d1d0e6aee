//! Wiring: turns a `Config` into a running bot — store, clock, DingTalk client, dispatcher, HTTP
//! server — and shuts it down cleanly. `serve` (production), `demo` and the integration tests all
//! start the bot through `Bot::start`, so what the tests drive is what runs.
//!
//! The adapters become the workflow's ports here (`dingtalk_chat`, `jumpserver_bastion`,
//! `sled_store`): the only place that knows which chat platform, bastion and store run.
mod console_ports;
mod dingtalk_chat;
mod jumpserver_bastion;
mod sled_store;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::dingtalk::client::DingTalkClient;
use crate::dingtalk::crypto::{CallbackCrypto, CryptoError};
use crate::dingtalk::stream::StreamListener;
use crate::dingtalk::ListenerMode;
use crate::dispatch::Dispatch;
use crate::domain::order::DeadlinePolicy;
use crate::domain::policy::Policy;
use crate::http::{self, EdgeState};
use crate::jumpserver::client::JmsClient;
use crate::store::audit::Audit;
use crate::store::dedupe::Dedupe;
use crate::store::dialogs::Dialogs;
use crate::store::index::Index;
use crate::store::orders::{OrderObserver, Orders};
use crate::store::outbox::Outbox;
use crate::store::{Store, StoreError};
use crate::worker::outbox::{OutboxRunner, RunnerConfig, TickReport};
use crate::worker::scheduler::{Fired, Scheduler, SchedulerConfig};
use crate::workflow::dispatcher::WorkflowDispatcher;
use crate::workflow::{Ports, Settings, Workflow};
use jiff::SignedDuration;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("dingtalk.callback_aes_key / callback_token: {0}")]
    Crypto(#[from] CryptoError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// What the caller decides rather than the config: time, storage and (for tests) the dispatcher.
pub struct BotOptions {
    pub clock: SharedClock,
    pub store: Store,
    /// `None` builds the product's dispatcher from the config.
    pub dispatcher: Option<Arc<dyn Dispatch>>,
}

/// The workflow and its two workers (absent when a test passes its own dispatcher), and the
/// concrete adapters behind its ports (tests and the demo look at them).
struct Engine {
    workflow: Arc<Workflow>,
    orders: Orders,
    outbox: Outbox,
    index: Index,
    jms: JmsClient,
    runner: Arc<OutboxRunner<Workflow>>,
    scheduler: Arc<Scheduler<Workflow>>,
}

struct WeakScheduler(std::sync::Weak<Scheduler<Workflow>>);

impl OrderObserver for WeakScheduler {
    fn order_changed(&self, order: &crate::domain::order::Order) {
        if let Some(s) = self.0.upgrade() {
            s.order_changed(order);
        }
    }
}

/// A running bot. Dropping it without `shutdown` aborts its tasks (what a crash looks like to
/// the store: work recorded in the outbox is picked up by the next start).
pub struct Bot {
    addr: SocketAddr,
    pub store: Store,
    pub dingtalk: DingTalkClient,
    /// The ingress (verify → dedupe → dispatch) both listeners share; kept for its counters.
    edge: Arc<EdgeState>,
    /// Counters of the HTTP connection layer (connections refused at the cap).
    conn_stats: Arc<crate::server::ConnStats>,
    engine: Option<Engine>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn minutes(m: u64) -> Option<SignedDuration> {
    (m > 0).then(|| SignedDuration::from_mins(i64::try_from(m).unwrap_or(i64::MAX / 60)))
}

fn build_engine(
    config: &Config,
    opts: &BotOptions,
    dingtalk: &DingTalkClient,
) -> Result<Engine, AppError> {
    let policy =
        Policy::from_config(&config.policy_config()).map_err(|e| AppError::Setup(e.to_string()))?;
    let jms = JmsClient::new(config.jumpserver.clone(), opts.clock.clone())
        .map_err(|e| AppError::Setup(format!("jumpserver: {e}")))?;
    let outbox = Outbox::new(&opts.store)?;
    let orders = Orders::new(&opts.store, &outbox)?;
    let index = Index::new(&opts.store)?;
    let settings = Settings::from_config(config, &policy);
    let retry = settings.retry;
    let workflow = Arc::new(Workflow::new(
        settings,
        Arc::new(policy),
        Ports {
            orders: Arc::new(orders.clone()),
            dialogs: Arc::new(Dialogs::new(&opts.store)?),
            index: Arc::new(index.clone()),
            chat: Arc::new(dingtalk.clone()),
            bastion: Arc::new(jms.clone()),
        },
        opts.clock.clone(),
        opts.store.installation_id().clone(),
    ));
    let w = &config.workflow;
    let runner = Arc::new(OutboxRunner::new(
        outbox.clone(),
        Audit::new(&opts.store)?,
        workflow.clone(),
        opts.clock.clone(),
        RunnerConfig {
            max_concurrency: w.max_concurrent_jobs.max(1),
            give_up_after: retry,
            ..RunnerConfig::default()
        },
    ));
    let scheduler = Arc::new(Scheduler::new(
        opts.clock.clone(),
        workflow.clone(),
        SchedulerConfig {
            policy: DeadlinePolicy {
                approval_timeout: SignedDuration::from_hours(
                    i64::try_from(w.approval_timeout_hours.max(1)).unwrap_or(24),
                ),
                approval_reminder_after: minutes(w.approval_reminder_minutes),
                expiry_reminder_before: minutes(w.expiry_reminder_minutes),
            },
            ..SchedulerConfig::default()
        },
    ));
    // Observe first, then rebuild: no order change can fall between the two. The observer is
    // weak: the scheduler holds the workflow, which holds the orders, and a strong link back
    // would keep the store open after the bot is gone.
    orders.observe(Arc::new(WeakScheduler(Arc::downgrade(&scheduler))));
    let n = scheduler.rebuild(&orders)?;
    let revived = outbox.revive_unknown_kinds(opts.clock.now())?;
    tracing::info!(
        deadlines = n,
        revived,
        pending_jobs = outbox.len(),
        "workflow ready"
    );
    Ok(Engine {
        workflow,
        orders,
        outbox,
        index,
        jms,
        runner,
        scheduler,
    })
}

impl Bot {
    pub async fn start(config: &Config, opts: BotOptions) -> Result<Bot, AppError> {
        let dingtalk = DingTalkClient::new(&config.dingtalk, opts.clock.clone());
        let (dispatcher, engine) = match opts.dispatcher.clone() {
            Some(d) => (d, None),
            None => {
                let engine = build_engine(config, &opts, &dingtalk)?;
                let d: Arc<dyn Dispatch> =
                    Arc::new(WorkflowDispatcher::new(engine.workflow.clone()));
                (d, Some(engine))
            }
        };
        // HTTP event push needs the subscription's token and key; Stream mode does not, and
        // then /dingtalk/events answers 404 unless they are configured anyway.
        let d = &config.dingtalk;
        let crypto = if d.mode == ListenerMode::Http
            || !(d.callback_token.is_empty() || d.callback_aes_key.is_empty())
        {
            Some(CallbackCrypto::new(
                d.callback_token.expose(),
                d.callback_aes_key.expose(),
                d.owner_key(),
            )?)
        } else {
            None
        };
        let edge = Arc::new(EdgeState {
            crypto,
            robot_secret: config.dingtalk.app_secret.clone(),
            card_secret: config.dingtalk.card_callback_secret.clone(),
            dedupe: Dedupe::new(&opts.store)?,
            dedupe_ttl_ms: (config.server.dedupe_ttl_hours as i64).saturating_mul(3_600_000),
            clock: opts.clock.clone(),
            dispatcher,
        });
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.server.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| AppError::Bind {
            addr: config.server.listen.clone(),
            source,
        })?;
        let console_routes = if config.console.enabled {
            let console =
                console_ports::console(config, &opts.store, &dingtalk, opts.clock.clone(), addr)?;
            crate::console::router(Arc::new(console))
        } else {
            axum::Router::new()
        };
        let router = http::router(
            edge.clone(),
            console_routes,
            config.server.max_body_bytes,
            Duration::from_millis(config.server.request_timeout_ms),
        );
        let (shutdown, mut rx) = watch::channel(false);
        let limits = crate::server::ConnLimits::from_config(&config.server);
        let conn_stats = Arc::new(crate::server::ConnStats::default());
        let server = tokio::spawn({
            let conn_stats = conn_stats.clone();
            async move {
                let stop = async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                };
                crate::server::serve(listener, router, limits, conn_stats, stop).await;
            }
        });
        tracing::info!(%addr, "accessbot listening");
        let mut tasks = vec![server];
        if d.mode == ListenerMode::Stream {
            tasks.push(StreamListener::spawn(d, edge.clone(), shutdown.subscribe()));
        }
        if let Some(e) = &engine {
            // Warm the JumpServer caches; an unreachable server is not fatal, jobs retry.
            let jms = e.jms.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(err) = jms.start().await {
                    tracing::warn!(error = %err, "JumpServer not reachable at start; jobs will retry");
                }
            }));
            if config.workflow.run_workers {
                let runner = e.runner.clone();
                let mut rx = shutdown.subscribe();
                tasks.push(tokio::spawn(async move {
                    runner
                        .run(async move {
                            let _ = rx.wait_for(|s| *s).await;
                        })
                        .await;
                }));
                let scheduler = e.scheduler.clone();
                let mut rx = shutdown.subscribe();
                tasks.push(tokio::spawn(async move {
                    scheduler
                        .run(async move {
                            let _ = rx.wait_for(|s| *s).await;
                        })
                        .await;
                }));
            }
        }
        Ok(Bot {
            addr,
            store: opts.store,
            dingtalk,
            edge,
            conn_stats,
            engine,
            shutdown,
            tasks,
        })
    }

    /// The workflow (orders, outbox, JumpServer client, policy); `None` when the bot was
    /// started with a test dispatcher.
    pub fn workflow(&self) -> Option<&Arc<Workflow>> {
        self.engine.as_ref().map(|e| &e.workflow)
    }

    /// The ingress state both listeners share (dedupe counters for operators and tests).
    pub fn edge(&self) -> &EdgeState {
        &self.edge
    }

    /// Counters of the HTTP connection layer.
    pub fn conn_stats(&self) -> &crate::server::ConnStats {
        &self.conn_stats
    }

    pub fn orders(&self) -> Option<&Orders> {
        self.engine.as_ref().map(|e| &e.orders)
    }

    pub fn outbox(&self) -> Option<&Outbox> {
        self.engine.as_ref().map(|e| &e.outbox)
    }

    /// The local JumpServer index `/sync` builds.
    pub fn index(&self) -> Option<&Index> {
        self.engine.as_ref().map(|e| &e.index)
    }

    pub fn jms(&self) -> Option<&JmsClient> {
        self.engine.as_ref().map(|e| &e.jms)
    }

    /// Runs every due outbox job once (tests and the demo drive the outbox with this when
    /// `workflow.run_workers = false`).
    pub async fn run_outbox_once(&self) -> Result<TickReport, StoreError> {
        match &self.engine {
            Some(e) => e.runner.run_once().await,
            None => Ok(TickReport::default()),
        }
    }

    /// Runs outbox ticks until one runs nothing (jobs queued by jobs included), at most
    /// `max_ticks`; returns how many jobs ran.
    pub async fn drain_outbox(&self, max_ticks: usize) -> Result<usize, StoreError> {
        let mut total = 0;
        for _ in 0..max_ticks {
            let r = self.run_outbox_once().await?;
            if r.ran == 0 {
                break;
            }
            total += r.ran;
        }
        Ok(total)
    }

    /// Fires the deadlines due by the clock (reminders, timeouts, expiries).
    pub async fn fire_deadlines(&self) -> Vec<Fired> {
        match &self.engine {
            Some(e) => e.scheduler.fire_due().await,
            None => Vec::new(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port`, what a simulated DingTalk posts to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets in-flight ones finish, stops the workers, flushes sled.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "flush on shutdown failed");
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `accessbot serve`: production wiring, runs until SIGINT / SIGTERM.
pub async fn serve(config: Config) -> Result<(), AppError> {
    let store = Store::open(&config.storage.path)?;
    let bot = Bot::start(
        &config,
        BotOptions {
            clock: Arc::new(SystemClock),
            store,
            dispatcher: None,
        },
    )
    .await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    bot.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
