//! The listeners, side by side: `http` (axum routes, body limits, request deadlines, health, on
//! top of `server`'s connection layer) and `stream` (the DingTalk Stream socket). Both hand raw
//! deliveries to the `ingress` and know nothing after it.
pub mod http;
pub mod server;
pub mod stream;
