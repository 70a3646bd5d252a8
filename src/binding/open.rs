//! Opening a namespace: one entry, `NativeNamespace.open(options)`, whose options name the
//! backend and carry that backend's own options.

use super::*;
use crate::backends::{self, Place};

/// How to open a namespace: `backend` is `"memory"`, `"sled"` or `"redis"`, and the object of
/// the same name carries its options.
#[napi(object)]
pub struct OpenOptions {
    pub backend: String,
    pub namespace: String,
    /// The most keys a `list` page holds.
    pub list_page_cap: Option<u32>,
    pub sled: Option<SledOptions>,
    pub redis: Option<RedisOptions>,
}

/// A sled store: its directory, its caches and flushing, and, when another process holds
/// it, whether to go through that process (`shared`) and how long to wait for its answers.
#[napi(object)]
pub struct SledOptions {
    pub path: String,
    pub cache_capacity: Option<f64>,
    pub flush_every_ms: Option<f64>,
    pub shared: Option<bool>,
    pub timeout_ms: Option<u32>,
}

/// A Redis server (or, with `cluster`, a Redis Cluster): nothing is sent before the first
/// operation.
#[napi(object)]
pub struct RedisOptions {
    pub url: String,
    pub cluster: bool,
    pub key_prefix: String,
    pub timeout_ms: u32,
    pub partitions: Option<u32>,
    pub tls: Option<TlsOptions>,
}

/// PEM text: the certificate authorities to trust, and a client certificate with its key.
#[napi(object)]
pub struct TlsOptions {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

fn sled_place(options: SledOptions) -> Place {
    let defaults = StoreConfig::default();
    let mut config = StoreConfig {
        share: options.shared.unwrap_or(true),
        holder_timeout: options.timeout_ms.map_or(defaults.holder_timeout, |ms| {
            std::time::Duration::from_millis(u64::from(ms))
        }),
        ..defaults
    };
    if let Some(bytes) = options.cache_capacity {
        config = config.with_cache_budget(bytes as u64);
    }
    if let Some(ms) = options.flush_every_ms {
        config.flush_every_ms = (ms > 0.0).then_some(ms as u64);
    }
    Place::Sled {
        path: options.path.into(),
        config,
    }
}

fn redis_place(options: RedisOptions) -> Place {
    let tls = options.tls.and_then(|TlsOptions { ca, cert, key }| {
        let client = cert.zip(key).map(|(c, k)| (c.into_bytes(), k.into_bytes()));
        (ca.is_some() || client.is_some()).then(|| TlsConfig {
            ca: ca.map(String::into_bytes),
            client,
        })
    });
    Place::Redis(RedisConfig {
        url: options.url,
        cluster: options.cluster,
        key_prefix: options.key_prefix,
        timeout: std::time::Duration::from_millis(u64::from(options.timeout_ms)),
        tls,
        partitions: options.partitions,
    })
}

#[napi]
impl NativeNamespace {
    /// Opens a namespace where `options` says (see [`OpenOptions`]).
    #[napi(factory, catch_unwind)]
    pub fn open(options: OpenOptions) -> Result<Self> {
        let place = match (options.backend.as_str(), options.sled, options.redis) {
            ("memory", _, _) => Place::Memory,
            ("sled", Some(sled), _) => sled_place(sled),
            ("redis", _, Some(redis)) => redis_place(redis),
            (backend, _, _) => {
                let message = format!("no backend {backend:?} with its options");
                return Err(js_error(store::Error::Invalid(message)));
            }
        };
        let cap = options.list_page_cap.map(|cap| cap as usize);
        let namespace = guarded(|| backends::open(place, &options.namespace))
            .map_err(js_error)?
            .with_list_page_cap(cap);
        Ok(Self {
            inner: Some(Arc::new(namespace)),
        })
    }
}
