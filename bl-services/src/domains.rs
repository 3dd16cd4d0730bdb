//! Business rules per domain: one module per aggregate type, one [`crate::domain::Rules`]
//! implementation per command with rules.

pub mod officer;
