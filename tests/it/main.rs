//! The one integration-test binary (one binary keeps link time down); one module per area.
mod jms_client;
mod jms_transcripts;
