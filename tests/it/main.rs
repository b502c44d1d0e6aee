//! The one integration-test binary (one binary keeps link time down); one module per area.
mod cli;
mod commands;
mod dingtalk_client;
mod dingtalk_props;
mod dingtalk_sim;
mod dingtalk_vectors;
mod e2e;
mod edge;
mod jms_client;
mod jms_replay;
mod jms_transcripts;
mod orders;
mod stream;
mod support;
mod sync_index;
mod workflow;
mod workflow_oa_resume;
