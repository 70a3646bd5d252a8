//! How a client runs an operation: on the holder through the connection, or on the store
//! itself once this process took it over; taking over when the holder goes away; and the
//! answers it will not believe.

use super::*;

impl SharedBackend {
    /// Namespace `name` of the store in `store` (a canonical path), held by a process that
    /// [`probe`] found serving it. Connects on the first call.
    pub fn new(store: PathBuf, name: &str, config: &StoreConfig) -> Self {
        Self {
            store,
            name: name.to_owned(),
            config: config.clone(),
            state: tokio::sync::Mutex::new(State::Idle { generation: 0 }),
            ledger: Mutex::default(),
            settling: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs an operation: on the store directly once this process holds it, else by asking
    /// the holder, taking the store over when the holder has gone.
    pub(super) async fn run<T, R: IntoFrame>(
        &self,
        local: impl FnOnce(&SledBackend) -> Result<T>,
        request: impl FnOnce(String) -> Result<R>,
        answer: impl FnOnce(Response) -> Option<Result<T>>,
    ) -> Result<T> {
        self.answered(local, request, answer)
            .await
            .map(|(value, _)| value)
    }

    /// Runs a write as [`Self::run`] does, and notes in the ledger who acknowledged it.
    pub(super) async fn write<T, R: IntoFrame>(
        &self,
        wrote: impl FnOnce() -> Wrote,
        local: impl FnOnce(&SledBackend) -> Result<T>,
        request: impl FnOnce(String) -> Result<R>,
        answer: impl FnOnce(Response) -> Option<Result<T>>,
    ) -> Result<T> {
        let (value, holder) = self.answered(local, request, answer).await?;
        let full = {
            let mut ledger = self.ledger();
            ledger.wrote(wrote(), &holder);
            ledger.is_full()
        };
        // Settling is not this write's concern: a failure shows at the next flush.
        if full
            && !self
                .settling
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            let _ = self.settle().await;
            self.settling
                .store(false, std::sync::atomic::Ordering::Release);
        }
        Ok(value)
    }

    pub(super) fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Self::run`], with whoever answered: the holder at the other end of the connection,
    /// or this process once it holds the store.
    pub(super) async fn answered<T, R: IntoFrame>(
        &self,
        local: impl FnOnce(&SledBackend) -> Result<T>,
        request: impl FnOnce(String) -> Result<R>,
        answer: impl FnOnce(Response) -> Option<Result<T>>,
    ) -> Result<(T, Arc<Holder>)> {
        let mut request = Some(request);
        let mut frame = None;
        let deadline = Instant::now() + TAKEOVER_WAIT;
        loop {
            let connection = {
                let mut state = self.state.lock().await;
                if let State::Idle { generation } = *state {
                    *state = self.reach(generation, deadline).await?;
                }
                match &*state {
                    State::Holder(backend, holder) => {
                        // On the store itself: disk I/O, which the JS thread does not wait for.
                        crate::store::caller::off_caller().await;
                        return local(backend).map(|v| (v, holder.clone()));
                    }
                    State::Client(connection) => connection.clone(),
                    State::Idle { .. } => continue,
                }
            };
            // Encoded once, however often it is sent.
            if frame.is_none() {
                let make = request.take().expect("a request is made once");
                frame = Some(Arc::new(make(self.name.clone())?.into_frame()?));
            }
            // Shared by every attempt, not copied: a value may be 25 MiB.
            let sent: Arc<Vec<u8>> = frame.clone().unwrap_or_default();
            match connection.call(sent).await {
                Err(FrameError::TimedOut) => {
                    return Err(self.unreachable(&format!(
                        "it (pid {}) did not answer within {} ms; is it stopped?",
                        connection.holder.pid,
                        self.config.holder_timeout.as_millis()
                    )))
                }
                Ok(Response::Failed(error)) => return Err(error),
                Ok(Response::Gone) | Err(FrameError::Closed) => {
                    let mut state = self.state.lock().await;
                    if matches!(&*state, State::Client(c) if c.generation == connection.generation)
                    {
                        *state = State::Idle {
                            generation: connection.generation + 1,
                        };
                    }
                    if Instant::now() > deadline {
                        return Err(self.unreachable("its holder went away and nobody took over"));
                    }
                }
                Ok(response) => {
                    return answer(response)
                        .unwrap_or_else(|| Err(self.unreachable("its holder answered out of turn")))
                        .map(|value| (value, connection.holder.clone()))
                }
                Err(FrameError::Garbage(what)) => {
                    return Err(self.unreachable(&format!("its holder sent {what}")))
                }
            }
        }
    }

    /// Takes the store over if nobody holds it, else connects to whoever does.
    pub(super) async fn reach(&self, generation: u64, deadline: Instant) -> Result<State> {
        loop {
            let (store, name, config) =
                (self.store.clone(), self.name.clone(), self.config.clone());
            let opened = tokio::task::spawn_blocking(move || open_serving(&store, &name, &config))
                .await
                .map_err(|e| Error::Internal(format!("taking over a store failed: {e}")))?;
            match opened {
                Ok(backend) => {
                    let holder = Arc::new(Holder::serving(backend.identity()));
                    return Ok(State::Holder(Arc::new(backend), holder));
                }
                Err(Error::Locked { .. }) => {}
                Err(error) => return Err(error),
            }
            match Connection::open(&self.store, generation, self.config.holder_timeout).await {
                Ok(connection) => return Ok(State::Client(connection)),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(self.unreachable(&e.to_string()))
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => return Err(self.unreachable(&e.to_string())),
            }
        }
    }

    /// The error of an answer that no holder of a `KV`'s store gives.
    pub(super) fn bad_answer(&self, what: &str) -> Error {
        self.unreachable(&format!("its holder sent {what}"))
    }

    /// The entry the holder answered for `key`, once it is that key's and one a `KV` could
    /// have written.
    pub(super) fn entry_for(&self, key: &[u8], entry: WireEntry) -> Result<Entry> {
        let fault = (entry.key.as_slice() != key)
            .then_some("the entry of another key")
            .or_else(|| entry.fault());
        match fault {
            Some(what) => Err(self.bad_answer(what)),
            None => Ok(entry.into_entry().1),
        }
    }

    /// Every entry of the namespace as the holder answered them, once each is one a `KV`
    /// could have written and they come in key order, each key once.
    pub(super) fn all_entries(&self, entries: Vec<WireEntry>) -> Result<Vec<(IVec, Entry)>> {
        let ordered = entries.windows(2).all(|pair| pair[0].key < pair[1].key);
        let fault = (!ordered)
            .then_some("entries out of key order")
            .or_else(|| entries.iter().find_map(WireEntry::fault));
        match fault {
            Some(what) => Err(self.bad_answer(what)),
            None => Ok(entries.into_iter().map(WireEntry::into_entry).collect()),
        }
    }

    pub(super) fn unreachable(&self, why: &str) -> Error {
        Error::Storage {
            path: self.store.clone(),
            detail: format!("the process holding it could not be reached: {why}"),
        }
    }

    /// Flushes, and settles in the ledger the writes acknowledged before the flush began.
    pub(super) async fn settle(&self) -> Result<()> {
        let upto = self.ledger().next;
        let ((), holder) = self
            .answered(|b| b.flush(), |_| Ok(Request::Flush), done)
            .await?;
        self.ledger().flushed(upto, &holder);
        Ok(())
    }
}
