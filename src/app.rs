//! Wiring: turns a `Config` into a running bot — store, clock, DingTalk client, dispatcher, HTTP
//! server — and shuts it down cleanly. `serve` (production), `demo` and the integration tests all
//! start the bot through `Bot::start`, so what the tests drive is what runs.
//!
//! The adapters become the workflow's ports here (`dingtalk_chat`, `jumpserver_bastion`,
//! `sled_store`): the only place that knows which chat platform, bastion and store run.
mod console_ports;
mod dingtalk_chat;
mod help_only;
mod jumpserver_bastion;
mod sled_store;

pub use console_ports::ConsoleAudit;
pub use help_only::HelpOnly;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::dingtalk::client::DingTalkClient;
use crate::dingtalk::crypto::CryptoError;
use crate::dingtalk::ListenerMode;
use crate::dispatch::Dispatch;
use crate::domain::order::DeadlinePolicy;
use crate::domain::policy::Policy;
use crate::ingress::Ingress;
use crate::jumpserver::client::JmsClient;
use crate::listen::http;
use crate::listen::stream::StreamListener;
use crate::metrics::Metrics;
use crate::ops::Ops;
use crate::readiness::Readiness;
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
use crate::workflow::journal::Journaled;
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

/// The runner's audit log (where jobs that gave up are recorded), counting them for `/metrics`.
struct CountingAudit(Audit, Metrics);

impl crate::worker::outbox::AuditLog for CountingAudit {
    fn append(&self, rec: &crate::domain::audit::AuditRecord) -> Result<(), StoreError> {
        self.0.append(rec)?;
        if rec.event == crate::domain::audit::AuditEvent::JobGaveUp {
            self.1.job_gave_up();
        }
        Ok(())
    }
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
    /// Where `/metrics` is served when `server.metrics_listen` is set.
    metrics_addr: Option<SocketAddr>,
    metrics: Metrics,
    pub store: Store,
    pub dingtalk: DingTalkClient,
    /// The ingress (verify → parse → dedupe → dispatch) both listeners share; kept for its
    /// counters.
    ingress: Arc<Ingress>,
    /// Counters of the HTTP connection layer (connections refused at the cap).
    conn_stats: Arc<crate::listen::server::ConnStats>,
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
    metrics: &Metrics,
) -> Result<Engine, AppError> {
    let policy =
        Policy::from_config(&config.policy_config()).map_err(|e| AppError::Setup(e.to_string()))?;
    let jms = JmsClient::new(config.jumpserver.clone(), opts.clock.clone())
        .map_err(|e| AppError::Setup(format!("jumpserver: {e}")))?;
    jms.attach_metrics(metrics);
    let outbox = Outbox::new(&opts.store)?;
    let orders = Orders::new(&opts.store, &outbox)?;
    let index = Index::new(&opts.store)?;
    let settings = Settings::from_config(config, &policy);
    let retry = settings.retry;
    let workflow = Arc::new(Workflow::new(
        settings,
        Arc::new(policy),
        Ports {
            // Every committed audit record is also a log line and feeds the timing metrics.
            orders: Arc::new(Journaled::new(Arc::new(orders.clone()), metrics.clone())),
            dialogs: Arc::new(Dialogs::new(&opts.store)?),
            index: Arc::new(index.clone()),
            audit: Arc::new(Audit::new(&opts.store)?),
            chat: Arc::new(dingtalk.clone()),
            bastion: Arc::new(jms.clone()),
        },
        opts.clock.clone(),
        opts.store.installation_id().clone(),
    ));
    let w = &config.workflow;
    let runner = Arc::new(OutboxRunner::new(
        outbox.clone(),
        CountingAudit(Audit::new(&opts.store)?, metrics.clone()),
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
        let metrics = Metrics::new();
        dingtalk.attach_metrics(&metrics);
        let (dispatcher, engine) = match opts.dispatcher.clone() {
            Some(d) => (d, None),
            None => {
                let engine = build_engine(config, &opts, &dingtalk, &metrics)?;
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
            Some(d.callback_crypto()?)
        } else {
            None
        };
        let ingress = Arc::new(Ingress {
            crypto,
            robot_secret: config.dingtalk.app_secret.clone(),
            card_secret: config.dingtalk.card_callback_secret.clone(),
            dedupe: Dedupe::new(&opts.store)?,
            dedupe_ttl_ms: (config.server.dedupe_ttl_hours as i64).saturating_mul(3_600_000),
            clock: opts.clock.clone(),
            dispatcher,
            metrics: metrics.clone(),
        });
        let ops = Arc::new(Ops {
            readiness: Readiness::new(
                opts.store.clone(),
                dingtalk.clone(),
                engine.as_ref().map(|e| e.jms.clone()),
                d.mode == ListenerMode::Stream,
                metrics.clone(),
                opts.clock.clone(),
            ),
            metrics: metrics.clone(),
            orders: engine.as_ref().map(|e| e.orders.clone()),
            outbox: engine.as_ref().map(|e| e.outbox.clone()),
            index: engine.as_ref().map(|e| e.index.clone()),
            clock: opts.clock.clone(),
        });
        let mut router = http::router(
            ingress.clone(),
            config.server.max_body_bytes,
            Duration::from_millis(config.server.request_timeout_ms),
        )
        .merge(crate::ops::readyz_router(ops.clone()));
        let limits = crate::listen::server::ConnLimits::from_config(&config.server);
        let (shutdown, _) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut metrics_addr = None;
        match &config.server.metrics_listen {
            None => router = router.merge(crate::ops::metrics_router(ops.clone())),
            Some(listen) => {
                let (task, addr) = serve_on(
                    listen,
                    crate::ops::metrics_router(ops.clone()),
                    limits,
                    shutdown.subscribe(),
                )
                .await?;
                tracing::info!(%addr, "metrics listening");
                tasks.push(task);
                metrics_addr = Some(addr);
            }
        }
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
        // The access console, beside DingTalk's routes; it needs the bound address for its
        // loopback public URL, so it joins the router here.
        if config.console.enabled {
            let console =
                console_ports::console(config, &opts.store, &dingtalk, opts.clock.clone(), addr)?;
            router = router.merge(crate::console::router(Arc::new(console)));
        }
        let mut rx = shutdown.subscribe();
        let conn_stats = Arc::new(crate::listen::server::ConnStats::default());
        let server = tokio::spawn({
            let conn_stats = conn_stats.clone();
            async move {
                let stop = async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                };
                crate::listen::server::serve(listener, router, limits, conn_stats, stop).await;
            }
        });
        tracing::info!(%addr, "accessbot listening");
        tasks.push(server);
        if d.mode == ListenerMode::Stream {
            tasks.push(StreamListener::spawn(
                d,
                ingress.clone(),
                shutdown.subscribe(),
            ));
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
            metrics_addr,
            metrics,
            store: opts.store,
            dingtalk,
            ingress,
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
    pub fn ingress(&self) -> &Ingress {
        &self.ingress
    }

    /// Counters of the HTTP connection layer.
    pub fn conn_stats(&self) -> &crate::listen::server::ConnStats {
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

    /// The bot's metrics (what `/metrics` serves).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// `http://…/metrics` wherever it is served.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_addr.unwrap_or(self.addr))
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

/// Serves `router` on its own listener (the `/metrics` one) until shutdown.
async fn serve_on(
    listen: &str,
    router: axum::Router,
    limits: crate::listen::server::ConnLimits,
    mut rx: watch::Receiver<bool>,
) -> Result<(JoinHandle<()>, SocketAddr), AppError> {
    let bind = |source| AppError::Bind {
        addr: listen.to_owned(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let stats = Arc::new(crate::listen::server::ConnStats::default());
        crate::listen::server::serve(listener, router, limits, stats, stop).await;
    });
    Ok((task, addr))
}

/// `accessbot serve`: production wiring, runs until SIGINT / SIGTERM.
pub async fn serve(config: Config) -> Result<(), AppError> {
    let store = Store::open_with_cache(
        &config.storage.path,
        config.storage.cache_capacity_mb.saturating_mul(1024 * 1024),
    )?;
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
