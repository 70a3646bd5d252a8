//! Tools beside the KV core: reading other programs' state.

pub mod miniflare;
