//! Where messages come from.

pub mod kafka;
