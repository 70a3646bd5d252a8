//! The client's ledger of acknowledged writes that no flush has vouched for yet, and what it
//! reports as lost when their holder died.

use super::*;

/// How many acknowledged writes, and bytes of their keys, a [`Ledger`] holds before the client
/// asks its holder for a flush to settle them (a client that never flushes would otherwise
/// remember every write it made).
pub(super) const LEDGER_WRITES_MAX: usize = 4096;

pub(super) const LEDGER_KEYS_MAX: usize = 1 << 20;

/// What an acknowledged write changed, as the ledger remembers it.
pub(super) enum Wrote {
    Keys(Vec<Vec<u8>>),
    /// The whole namespace (restore, clear).
    Everything,
}

/// One acknowledged write that no flush has vouched for yet.
pub(super) struct Acknowledged {
    pub(super) seq: u64,
    /// The session of the holder that acknowledged it, and that holder's pid.
    pub(super) session: u64,
    pub(super) pid: u32,
    pub(super) wrote: Wrote,
}

/// The writes a client's holders acknowledged, until a flush vouches for them (see
/// [`Holder::vouches_for`]), and those that may have been lost: a holder that went away
/// without closing cleanly loses what it had not flushed. A loss is reported by every flush
/// until the keys are written again and that write is on disk.
#[derive(Default)]
pub(super) struct Ledger {
    pub(super) next: u64,
    pub(super) pending: VecDeque<Acknowledged>,
    pub(super) key_bytes: usize,
    /// Keys whose last write may have been lost, with the pid of the holder that lost it.
    pub(super) lost: std::collections::BTreeMap<Vec<u8>, u32>,
    /// A write of unknown keys may have been lost, by the holder of this pid.
    pub(super) lost_unknown: Option<u32>,
}

impl Ledger {
    /// Notes a write `holder` acknowledged. One this process made on a store it holds needs
    /// no flush to vouch for it: the session that wrote it is the one that will flush it, so
    /// the writes before it are settled now and it counts as on disk at once.
    pub(super) fn wrote(&mut self, wrote: Wrote, holder: &Holder) {
        if holder.is_here() {
            self.flushed(self.next, holder);
            self.settle(wrote, true, holder.pid);
            return;
        }
        if let Wrote::Keys(keys) = &wrote {
            self.key_bytes += keys.iter().map(Vec::len).sum::<usize>();
        }
        self.pending.push_back(Acknowledged {
            seq: self.next,
            session: holder.session,
            pid: holder.pid,
            wrote,
        });
        self.next += 1;
    }

    /// Whether enough writes wait for a flush that the client should ask for one.
    pub(super) fn is_full(&self) -> bool {
        self.pending.len() >= LEDGER_WRITES_MAX || self.key_bytes >= LEDGER_KEYS_MAX
    }

    /// Settles the writes acknowledged before `upto` after `holder` answered a flush: on disk
    /// if it vouches for them, else possibly lost.
    pub(super) fn flushed(&mut self, upto: u64, holder: &Holder) {
        while self.pending.front().is_some_and(|w| w.seq < upto) {
            let Some(write) = self.pending.pop_front() else {
                break;
            };
            if let Wrote::Keys(keys) = &write.wrote {
                self.key_bytes -= keys.iter().map(Vec::len).sum::<usize>();
            }
            self.settle(write.wrote, holder.vouches_for(write.session), write.pid);
        }
    }

    /// Records what one write did: on disk (`durable`), it heals the keys it wrote; else they
    /// may have been lost, by the holder of `pid`.
    pub(super) fn settle(&mut self, wrote: Wrote, durable: bool, pid: u32) {
        match wrote {
            Wrote::Keys(keys) => {
                for key in keys {
                    if durable {
                        self.lost.remove(&key);
                    } else {
                        self.lost.insert(key, pid);
                    }
                }
            }
            Wrote::Everything if durable => {
                self.lost.clear();
                self.lost_unknown = None;
            }
            Wrote::Everything => self.lost_unknown = Some(pid),
        }
    }

    /// The loss to report, if any.
    pub(super) fn loss(&self, store: &Path) -> Option<Error> {
        let pid = self
            .lost_unknown
            .or_else(|| self.lost.values().next().copied())?;
        let keys = self.lost_unknown.is_none().then(|| {
            self.lost
                .keys()
                .map(|key| String::from_utf8_lossy(key).into_owned())
                .collect()
        });
        Some(Error::Lost {
            path: store.to_owned(),
            pid,
            keys,
        })
    }
}
