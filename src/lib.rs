//! kv-binding: Cloudflare Workers KV semantics over sled or memory, for Node.js.
//!
//! [`store`] is the pure synchronous core: validation with production's wording, the record
//! format, expiry and the storage backends. It knows nothing of Node. [`tools`] reads other
//! programs' state (wrangler's) for the CLI. The `binding` module
//! (built with the default `node` feature) exposes it through Node-API.

pub mod backends;
pub mod store;
pub mod tools;

#[cfg(feature = "node")]
mod binding;
