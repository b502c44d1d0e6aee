//! raw HTTP against the DingTalk simulator
