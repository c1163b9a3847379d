//! The frontend scheme (placeholder).
