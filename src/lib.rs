//! accessbot: employees ask a DingTalk bot for JumpServer access; approvers decide; the bot grants.
//!
//! Module map (one line each; adapters never import the domain's IO-free rules the other way round):
pub mod app; //        wiring: adapters into the workflow's ports, the HTTP server and workers, clean shutdown
pub mod audit_cli; //  `accessbot audit verify|export`: the hash-chained trail checked and exported for auditors
pub mod chat; //       what users read: replies, notices, cards, by topic, in zh-CN / en (no IO)
pub mod clock; //      injected time: SystemClock in production, ManualClock in tests and the demo
pub mod config; //     layered config: defaults → TOML → ACCESSBOT_* env → *_FILE secrets; validation
pub mod console; //    the access console: web pages of who reaches what and who opened what, DingTalk login
#[cfg(feature = "sandbox")]
pub mod demo; //       `accessbot demo` (feature sandbox): bot + simulators on loopback, a checked scenario
pub mod dingtalk; //   DingTalk adapter: callback crypto, signatures, parsing, Stream frames, OpenAPI client (client/)
pub mod dispatch; //   the seam after the ingress: the Dispatch trait the workflow's dispatcher implements
pub mod doctor; //     `accessbot doctor`: every credential and right checked against the real services, with fixes
pub mod domain; //     pure rules and the vocabulary (no IO): orders, policy, commands, jobs, notices, audit
#[cfg(feature = "sandbox")]
pub mod fault; //      `accessbot fault` (hidden, feature sandbox): SIGKILL the bot process at random, restart, check nothing lost or doubled
pub mod inbound; //    the one typed event every DingTalk listener produces
pub mod ingress; //    the one front door of both listeners: verify → parse → dedupe → dispatch
pub mod jumpserver; // JumpServer adapter: HTTP Signatures, auth modes, typed client, grant plan
pub mod listen; //     the listeners side by side: HTTP (routes, limits, connections) and DingTalk Stream
#[cfg(feature = "sandbox")]
pub mod loadgen; //    `accessbot loadgen` (hidden, feature sandbox): signed payloads, simulators, the bare ceiling and the protocol floor servers for scripts/load.sh
pub mod logging; //    the log filter: ACCESSBOT_LOG over quiet defaults for chatty (secret-logging) crates
pub mod metrics; //    the Prometheus registry: typed, fixed label sets and one-line hooks; store gauges read at scrape
pub mod offload; // long synchronous steps (a /sync page parsed or written) kept off the runtime's workers
pub mod ops; //        operator endpoints: /readyz (what is not ready) and /metrics, on the main or their own listener
pub mod readiness; //  readiness probes (store, DingTalk token, Stream, JumpServer auth), cached against hammering
#[cfg(feature = "sandbox")]
pub mod sandbox; //    (feature sandbox, on by default) simulated DingTalk and JumpServer: loopback HTTP servers
#[cfg(feature = "sandbox")]
pub mod scale; //      `accessbot scale` (hidden, feature sandbox): time /sync of a large simulated org, count its calls and RSS
pub mod secret; //     the redacting Secret type
pub mod store; //      sled: orders+outbox+audit in one transaction, dialogs, index, dedupe (behind the ports)
pub mod worker; //     background jobs: outbox runner, scheduler
pub mod workflow; //   request → approval → grant over ports: commands/, events/, jobs/, one file each
