//! Wiring: turns a `Config` into a running bot — store, clock, DingTalk client, dispatcher, HTTP
//! server — and shuts it down cleanly. `serve` (production), `demo` and the integration tests all
//! start the bot through `Bot::start`, so what the tests drive is what runs.
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::dingtalk::client::DingTalkClient;
use crate::dingtalk::crypto::{CallbackCrypto, CryptoError};
use crate::dispatch::Dispatch;
use crate::http::{self, EdgeState};
use crate::store::dedupe::Dedupe;
use crate::store::{Store, StoreError};
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

/// A running bot. Dropping it without `shutdown` aborts its tasks.
pub struct Bot {
    addr: SocketAddr,
    pub store: Store,
    pub dingtalk: DingTalkClient,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Bot {
    pub async fn start(config: &Config, opts: BotOptions) -> Result<Bot, AppError> {
        let dingtalk = DingTalkClient::new(&config.dingtalk, opts.clock.clone());
        let dispatcher = match opts.dispatcher {
            Some(d) => d,
            None => default_dispatcher(config, &dingtalk),
        };
        let crypto = CallbackCrypto::new(
            config.dingtalk.callback_token.expose(),
            config.dingtalk.callback_aes_key.expose(),
            config.dingtalk.owner_key(),
        )?;
        let edge = Arc::new(EdgeState {
            crypto,
            robot_secret: config.dingtalk.app_secret.clone(),
            card_secret: config.dingtalk.card_callback_secret.clone(),
            dedupe: Dedupe::new(&opts.store)?,
            dedupe_ttl_ms: (config.server.dedupe_ttl_hours as i64).saturating_mul(3_600_000),
            clock: opts.clock.clone(),
            dispatcher,
        });
        let router = http::router(
            edge,
            config.server.max_body_bytes,
            Duration::from_millis(config.server.request_timeout_ms),
        );
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
        let (shutdown, mut rx) = watch::channel(false);
        let server = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
        tracing::info!(%addr, "accessbot listening");
        Ok(Bot {
            addr,
            store: opts.store,
            dingtalk,
            shutdown,
            tasks: vec![server],
        })
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

fn default_dispatcher(config: &Config, dingtalk: &DingTalkClient) -> Arc<dyn Dispatch> {
    Arc::new(crate::dispatch::HelpOnly::new(
        dingtalk.clone(),
        config.chat.language,
    ))
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
