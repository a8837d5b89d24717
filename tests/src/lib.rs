//! test client (placeholder)
pub mod ctaphid_client;
pub mod usbip_client;
