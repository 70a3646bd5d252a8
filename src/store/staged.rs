//! Bulk writes given in parts: an import of any size, held in memory a part at a time.

use std::sync::Arc;

use super::error::Result;
use super::namespace::{check_entries, Namespace};
use super::storage::Storage;
use super::types::BulkEntry;
use super::types::PutEntry;

/// A bulk write under way (see [`Namespace::stage_async`]): the entries given so far, written
/// with their undo where the backend can (sled, here or through its holder), kept here where
/// it cannot (memory, where they end up anyway, and Redis).
pub struct Staged {
    storage: Arc<Storage>,
    stage: Option<u64>,
    kept: Vec<Kept>,
    /// How many entries were given, so that a refused one is named by its place in all.
    given: usize,
}

/// An entry kept until the commit.
struct Kept {
    key: Vec<u8>,
    value: Vec<u8>,
    expiration: Option<i64>,
    metadata: Option<String>,
}

impl Kept {
    fn as_put(&self) -> PutEntry<'_> {
        PutEntry {
            key: &self.key,
            value: &self.value,
            expiration: self.expiration,
            metadata: self.metadata.as_deref(),
        }
    }
}

impl Namespace {
    /// Begins a bulk write whose entries come in parts ([`Namespace::put_staged_async`]),
    /// kept by [`Namespace::commit_staged_async`] or undone by
    /// [`Namespace::drop_staged_async`]: all or none, a key given twice getting its last
    /// entry. On sled each part is written as it comes, with what undoes it, so memory holds
    /// a part at a time, and reads may see a part before the commit (see the sled backend's
    /// `stage` module); a crash before the commit undoes it when the store next opens. On
    /// memory and Redis the parts are kept here and written at the commit.
    pub async fn stage_async(&self) -> Result<Staged> {
        let stage = if self.capabilities().staged_writes {
            self.storage().stage_begin().await?
        } else {
            None
        };
        Ok(Staged {
            stage,
            storage: self.storage().clone(),
            kept: Vec::new(),
            given: 0,
        })
    }

    /// Adds `entries` to `staged`, each checked as `put` checks it against `now_ms`; a refused
    /// one is named by its index among all the entries given (and none of this part is
    /// added).
    pub async fn put_staged_async(
        &self,
        staged: &mut Staged,
        entries: &[BulkEntry<'_>],
        now_ms: i64,
    ) -> Result<()> {
        let checked = check_entries(entries, staged.given, now_ms)?;
        match staged.stage {
            Some(stage) => self.storage().stage_put(stage, &checked).await?,
            None => staged.kept.extend(checked.iter().map(|entry| Kept {
                key: entry.key.to_vec(),
                value: entry.value.to_vec(),
                expiration: entry.expiration,
                metadata: entry.metadata.map(str::to_owned),
            })),
        }
        staged.given += entries.len();
        Ok(())
    }

    /// Writes everything `staged` holds in one atomic step (as [`Namespace::put_many_async`]).
    pub async fn commit_staged_async(&self, mut staged: Staged) -> Result<()> {
        let written = match staged.stage.take() {
            Some(stage) => self.storage().stage_commit(stage).await,
            None => {
                let kept = std::mem::take(&mut staged.kept);
                let entries: Vec<PutEntry<'_>> = kept.iter().map(Kept::as_put).collect();
                self.storage().put_all(&entries).await
            }
        };
        // Which keys is not kept: every location reads afresh.
        self.replaced();
        written
    }

    /// Ends `staged` with nothing of it kept.
    pub async fn drop_staged_async(&self, mut staged: Staged) -> Result<()> {
        let Some(stage) = staged.stage.take() else {
            return Ok(());
        };
        let undone = self.storage().stage_drop(stage).await;
        self.replaced();
        undone
    }
}

impl Staged {
    /// How many entries were given so far.
    pub fn len(&self) -> usize {
        self.given
    }

    /// Whether none was given.
    pub fn is_empty(&self) -> bool {
        self.given == 0
    }
}

impl Drop for Staged {
    /// A stage neither committed nor dropped is undone now on a local store; through a
    /// holder, when the holder sees the connection end, or else when the store next opens.
    fn drop(&mut self) {
        if let (Some(stage), Storage::Local(backend)) = (self.stage, &*self.storage) {
            let _ = backend.stage_drop(stage);
        }
    }
}
