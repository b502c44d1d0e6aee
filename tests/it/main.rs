//! The one integration-test binary (one binary keeps link time down); one module per area.
mod dingtalk_client;
mod dingtalk_sim;
mod orders;
mod dingtalk_props;
mod dingtalk_vectors;
mod commands;
mod jms_client;
mod jms_transcripts;
