//! test client (placeholder)
