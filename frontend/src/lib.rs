//! The built-in traffic switch (placeholder, being built).
pub mod api;
