//! The operator endpoints beside DingTalk's: `/readyz` (readiness, JSON naming what is not
//! ready; 200 or 503) and `/metrics` (Prometheus). `app` mounts them on the main listener, or
//! `/metrics` alone on `server.metrics_listen` when that is set.
use crate::clock::SharedClock;
use crate::domain::order::State;
use crate::metrics::{Metrics, StoreView};
use crate::readiness::Readiness;
use crate::store::index::Index;
use crate::store::orders::Orders;
use crate::store::outbox::Outbox;
use axum::extract::State as AxState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// What the endpoints read.
pub struct Ops {
    pub readiness: Readiness,
    pub metrics: Metrics,
    /// The store's views; `None` when the bot runs a test dispatcher.
    pub orders: Option<Orders>,
    pub outbox: Option<Outbox>,
    pub index: Option<Index>,
    pub clock: SharedClock,
}

/// The content type of the OpenMetrics text `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn readyz_router(ops: Arc<Ops>) -> Router {
    Router::new().route("/readyz", get(readyz)).with_state(ops)
}

pub fn metrics_router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(ops)
}

async fn readyz(AxState(ops): AxState<Arc<Ops>>) -> Response {
    let r = ops.readiness.report().await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

async fn metrics(AxState(ops): AxState<Arc<Ops>>) -> Response {
    // sled reads are quick but blocking; off the async workers.
    let o = ops.clone();
    let view = tokio::task::spawn_blocking(move || o.store_view())
        .await
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        ops.metrics.encode(&view),
    )
        .into_response()
}

impl Ops {
    fn store_view(&self) -> StoreView {
        let now = self.clock.now();
        let mut v = StoreView::default();
        if let Some(orders) = &self.orders {
            v.orders_by_state = State::ALL
                .iter()
                .map(|s| {
                    let n = orders.count_by_state(*s);
                    (s.as_str(), i64::try_from(n).unwrap_or(i64::MAX))
                })
                .collect();
        }
        if let Some(outbox) = &self.outbox {
            v.outbox_depth = i64::try_from(outbox.len()).unwrap_or(i64::MAX);
            // The head of each order's queue is its oldest job.
            match outbox.heads() {
                Ok(heads) => {
                    v.outbox_oldest_seconds = heads
                        .iter()
                        .map(|j| now.duration_since(j.created_at).as_secs_f64())
                        .fold(0.0, f64::max);
                }
                Err(e) => tracing::warn!(error = %e, "metrics: outbox unreadable"),
            }
        }
        if let Some(index) = &self.index {
            match index.stats() {
                Ok(Some(s)) => {
                    v.last_sync_age_seconds =
                        Some(now.duration_since(s.synced_at).as_secs_f64().max(0.0))
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "metrics: index unreadable"),
            }
        }
        v
    }
}
