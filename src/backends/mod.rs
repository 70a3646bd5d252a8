//! The backends: where a namespace's data lives. Each is one module, behind
//! [`Backend`](crate::store::Backend) (answers on the calling thread) or
//! [`RemoteBackend`](crate::store::RemoteBackend) (answers with futures): memory, sled, a sled
//! store held by another process (`shared`), Redis. The semantics in [`crate::store`] name
//! none of them.

pub mod deadline;
pub mod memory;
pub mod record;
pub mod redis;
#[cfg(unix)]
pub mod shared;
pub mod sled;

use std::path::{Path, PathBuf};

use crate::store::{check_namespace_name, Error, Namespace, Result, Storage};
use redis::RedisConfig;
use sled::StoreConfig;

/// Where a namespace lives: one variant, and one line of [`open`], per backend.
pub enum Place {
    /// In memory, isolated: the namespace's name is not used.
    Memory,
    /// In the sled store in directory `path`, or through the process that holds it.
    Sled { path: PathBuf, config: StoreConfig },
    /// On a Redis or Valkey server, or a Redis Cluster.
    Redis(RedisConfig),
}

/// Opens namespace `name` where `place` says.
pub fn open(place: Place, name: &str) -> Result<Namespace> {
    match place {
        Place::Memory => Ok(Namespace::in_memory()),
        Place::Sled { path, config } => Namespace::open(&path, name, &config),
        Place::Redis(config) => Namespace::connect(name, config),
    }
}

/// The longest an open waits for a store's holder to finish starting or handing over.
#[cfg(unix)]
const HANDOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Namespace {
    /// Namespace `name` of the sled store in directory `path` (created if missing).
    ///
    /// When another process holds the store, the namespace is reached through it (see
    /// [`shared`]) unless `config.share` is off or it cannot serve; then the error is
    /// `Error::Locked`, saying why. A holder that shares the store but cannot be reached yet
    /// (it is starting, or leaving and handing the store over) is waited for, up to
    /// [`HANDOVER_WAIT`] or `config.holder_timeout` if shorter: many short-lived processes may
    /// open one store at once. (The wait blocks the calling thread, which is the JS thread in
    /// `new KV`: a hand-over takes milliseconds, and only a holder stuck half-way costs the
    /// whole wait.)
    pub fn open(path: &Path, name: &str, config: &StoreConfig) -> Result<Namespace> {
        check_namespace_name(name)?;
        #[cfg(unix)]
        let deadline = std::time::Instant::now() + config.holder_timeout.min(HANDOVER_WAIT);
        loop {
            #[cfg(unix)]
            let opened = shared::open_serving(path, name, config);
            #[cfg(not(unix))]
            let opened = sled::SledBackend::open(path, name, config);
            match opened {
                Ok(backend) => {
                    return Ok(Namespace::with_storage(Storage::Local(Box::new(backend))))
                }
                #[cfg(unix)]
                Err(Error::Locked { path: dir, pid, .. }) if config.share => {
                    use shared::Unreached;
                    let shares = sled::holder_shares(&dir);
                    let reason = match (shares, shared::probe(&dir)) {
                        (_, Ok(())) => {
                            let shared = shared::SharedBackend::new(dir, name, config);
                            return Ok(Namespace::with_storage(Storage::Remote(Box::new(shared))));
                        }
                        (Some(false), _) => "it does not share it (an older kv-binding, or one \
                                             opened with shared: false)"
                            .to_owned(),
                        (_, Err(Unreached::Wait(_))) if std::time::Instant::now() < deadline => {
                            std::thread::sleep(std::time::Duration::from_millis(10));
                            continue;
                        }
                        (_, Err(Unreached::Wait(reason) | Unreached::Final(reason))) => reason,
                    };
                    return Err(Error::Locked {
                        path: dir,
                        pid,
                        reason: Some(reason),
                    });
                }
                Err(error) => return Err(error),
            }
        }
    }
}
