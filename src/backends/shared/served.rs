//! The log of what a holder answers for other processes, kept while someone reads it (the
//! data browser's operations view): the latest requests, each as the KV operation it serves,
//! read by their place in the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::*;
use crate::store::{Served, ServedPage};

/// The requests the log keeps; older ones are dropped.
pub(super) const SERVED_KEPT: usize = 1000;

/// How long a read of the log keeps it recording: a reader that stops asking stops it.
pub(super) const WATCHED_FOR: Duration = Duration::from_secs(10);

/// Milliseconds since the UNIX epoch, by this machine's clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[derive(Default)]
pub(super) struct ServedLog {
    /// Until when (ms since the epoch) requests are logged; 0 until someone reads the log.
    watched_until: AtomicU64,
    ring: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    entries: VecDeque<Served>,
    last: u64,
}

impl ServedLog {
    /// Whether requests are being logged: one atomic load while nobody reads the log.
    pub(super) fn watched(&self) -> bool {
        let until = self.watched_until.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    /// Logs a request answered, `took` after it began.
    pub(super) fn record(&self, asked: Asked, answer: &Response, took: Duration) {
        let (size, keys) = asked.measured(answer);
        let error = match answer {
            Response::Failed(error) => Some(error.to_string()),
            _ => None,
        };
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.last += 1;
        let served = Served {
            seq: ring.last,
            at_ms: now_ms(),
            client: asked.client,
            op: asked.op.to_owned(),
            namespace: asked.namespace,
            key: asked.key,
            size,
            keys,
            micros: took.as_micros() as u64,
            error,
        };
        ring.entries.push_back(served);
        if ring.entries.len() > SERVED_KEPT {
            ring.entries.pop_front();
        }
    }

    /// What was logged after `after`, and from now on for [`WATCHED_FOR`] more.
    pub(super) fn since(&self, after: u64) -> ServedPage {
        let until = now_ms() + WATCHED_FOR.as_millis() as u64;
        self.watched_until.store(until, Ordering::Relaxed);
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ServedPage {
            operations: ring
                .entries
                .iter()
                .filter(|served| served.seq > after)
                .cloned()
                .collect(),
            last: ring.last,
        }
    }
}

/// A request as the log names it, before it is answered.
pub(super) struct Asked {
    client: u32,
    op: &'static str,
    namespace: String,
    key: String,
    /// Bytes written, for a write.
    size: Option<u64>,
    keys: Option<u64>,
}

impl Asked {
    /// The KV operation `request` serves, from process `client`; `None` for the requests
    /// that serve none (hellos, the parts of a staged write, expiry's clean-up).
    pub(super) fn of(request: &Request, client: u32) -> Option<Asked> {
        let name = |key: &[u8]| String::from_utf8_lossy(key).into_owned();
        let (op, ns, key, size, keys) = match request {
            Request::Get { ns, key } => ("get", ns, name(key), None, None),
            Request::GetMany { ns, keys } => {
                let count = keys.len() as u64;
                ("get", ns, format!("{count} keys"), None, Some(count))
            }
            Request::PutAll { ns, entries } => {
                let sizes = entries.iter().map(|e| (&e.key[..], e.value.len()));
                return Some(Self::writing(client, ns, true, sizes));
            }
            Request::StagePut { ns, entries, .. } => {
                let sizes = entries.iter().map(|e| (&e.key[..], e.value.len()));
                return Some(Self::writing(client, ns, false, sizes));
            }
            Request::Delete { ns, key } => ("delete", ns, name(key), None, None),
            Request::Scan { ns, prefix, .. } => ("list", ns, name(prefix), None, None),
            Request::EntriesPage { ns, .. } => ("dump", ns, String::new(), None, None),
            Request::ReplaceAll { ns, entries } => {
                let count = Some(entries.len() as u64);
                ("restore", ns, String::new(), None, count)
            }
            _ => return None,
        };
        Some(Asked {
            client,
            op,
            namespace: ns.clone(),
            key,
            size,
            keys,
        })
    }

    /// A write read in place (see [`super::wire::decode_put`]), as [`Self::of`] names the
    /// same request decoded.
    pub(super) fn of_put(put: &PutRef<'_>, client: u32) -> Asked {
        match put {
            PutRef::All { ns, entries } => Self::writing(
                client,
                ns,
                true,
                entries.iter().map(|e| (e.key, e.value.len())),
            ),
            PutRef::Stage { ns, entries, .. } => Self::writing(
                client,
                ns,
                false,
                entries.iter().map(|e| (e.key, e.value.len())),
            ),
        }
    }

    /// A write of the entries whose keys and value sizes `entries` gives: a `put` when it is
    /// one entry of a whole write (`all`), else part of a `bulkPut`.
    fn writing<'k>(
        client: u32,
        ns: &str,
        all: bool,
        entries: impl ExactSizeIterator<Item = (&'k [u8], usize)>,
    ) -> Asked {
        let count = entries.len() as u64;
        let mut first = None;
        let mut size = 0;
        for (key, len) in entries {
            first.get_or_insert(key);
            size += len as u64;
        }
        let (op, key, keys) = match first {
            Some(key) if all && count == 1 => {
                ("put", String::from_utf8_lossy(key).into_owned(), None)
            }
            _ => ("bulkPut", format!("{count} entries"), Some(count)),
        };
        Asked {
            client,
            op,
            namespace: ns.to_owned(),
            key,
            size: Some(size),
            keys,
        }
    }

    /// The bytes and keys the request moved, now that `answer` says what it read.
    fn measured(&self, answer: &Response) -> (Option<u64>, Option<u64>) {
        match answer {
            Response::Entry(found) => (found.as_ref().map(|e| e.value.len() as u64), None),
            Response::Entries(found) => {
                let size = found.iter().flatten().map(|e| e.value.len() as u64).sum();
                (Some(size), self.keys)
            }
            Response::Scanned { items, .. } => (None, Some(items.len() as u64)),
            Response::Page { entries, .. } => {
                let size = entries.iter().map(|e| e.value.len() as u64).sum();
                (Some(size), Some(entries.len() as u64))
            }
            _ => (self.size, self.keys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &[u8]) -> Request {
        Request::PutAll {
            ns: "KV".into(),
            entries: vec![WireEntry {
                key: ByteBuf::from(key.as_bytes()),
                value: ByteBuf::from(value),
                expiration: None,
                metadata: None,
            }],
        }
    }

    #[test]
    fn nothing_is_logged_until_the_log_is_read() {
        let log = ServedLog::default();
        assert!(!log.watched());
        assert_eq!(log.since(0), ServedPage::default());
        assert!(log.watched());
        let asked = Asked::of(&put("a", b"four"), 42).unwrap();
        log.record(asked, &Response::Done, Duration::from_micros(1500));
        let page = log.since(0);
        assert_eq!(page.last, 1);
        let served = &page.operations[0];
        let named = (
            served.client,
            served.op.as_str(),
            served.key.as_str(),
            served.size,
        );
        assert_eq!(named, (42, "put", "a", Some(4)));
        assert_eq!((served.micros, served.error.as_deref()), (1500, None));
        assert!(log.since(1).operations.is_empty());
    }

    #[test]
    fn the_log_keeps_the_latest_requests() {
        let log = ServedLog::default();
        log.since(0);
        for i in 0..SERVED_KEPT + 5 {
            let asked = Asked::of(&put(&format!("k{i}"), b""), 1).unwrap();
            log.record(asked, &Response::Done, Duration::ZERO);
        }
        let page = log.since(0);
        assert_eq!(page.operations.len(), SERVED_KEPT);
        assert_eq!(page.operations[0].seq, 6);
        assert_eq!(page.last, SERVED_KEPT as u64 + 5);
    }

    #[test]
    fn requests_are_named_as_the_kv_operations_they_serve() {
        let get = Request::Get {
            ns: "KV".into(),
            key: ByteBuf::from(&b"\xffkey"[..]),
        };
        let asked = Asked::of(&get, 7).unwrap();
        assert_eq!((asked.op, asked.key.as_str()), ("get", "\u{fffd}key"));
        let found = Response::Entry(Some(WireEntry {
            key: ByteBuf::from(&b"key"[..]),
            value: ByteBuf::from(vec![0; 9]),
            expiration: None,
            metadata: None,
        }));
        assert_eq!(asked.measured(&found), (Some(9), None));
        assert_eq!(asked.measured(&Response::Entry(None)), (None, None));

        let scan = Request::Scan {
            ns: "KV".into(),
            prefix: ByteBuf::from(&b"user:"[..]),
            after: None,
            want: 10,
        };
        let asked = Asked::of(&scan, 7).unwrap();
        assert_eq!((asked.op, asked.key.as_str()), ("list", "user:"));
        let items = vec![(ByteBuf::from(&b"user:1"[..]), None, None)];
        let scanned = Response::Scanned { items, more: false };
        assert_eq!(asked.measured(&scanned), (None, Some(1)));

        let (
            Request::PutAll {
                entries: mut both, ..
            },
            Request::PutAll { entries: b, .. },
        ) = (put("a", b"12"), put("b", b"34"))
        else {
            unreachable!()
        };
        both.extend(b);
        let many = Request::PutAll {
            ns: "KV".into(),
            entries: both,
        };
        let asked = Asked::of(&many, 7).unwrap();
        assert_eq!((asked.op, asked.key.as_str()), ("bulkPut", "2 entries"));
        assert_eq!(asked.measured(&Response::Done), (Some(4), Some(2)));

        let failed = Response::Failed(Error::Invalid("no".into()));
        let log = ServedLog::default();
        log.since(0);
        log.record(
            Asked::of(&put("x", b""), 7).unwrap(),
            &failed,
            Duration::ZERO,
        );
        assert!(log.since(0).operations[0].error.is_some());

        assert!(Asked::of(&Request::Flush, 7).is_none());
        assert!(Asked::of(&Request::Served { after: 0 }, 7).is_none());
    }

    #[test]
    fn a_write_read_in_place_is_named_as_the_same_write_decoded() {
        let named = |asked: Asked| (asked.op, asked.key, asked.size, asked.keys, asked.client);
        for request in [
            put("one", &[1; 70_000]),
            Request::StagePut {
                ns: "KV".into(),
                stage: 3,
                entries: vec![WireEntry {
                    key: ByteBuf::from(&b"part"[..]),
                    value: ByteBuf::from(vec![2; 70_000]),
                    expiration: None,
                    metadata: None,
                }],
            },
        ] {
            let frame = wire::encode(&request).unwrap();
            let put = wire::decode_put(&frame[4..]).unwrap();
            assert_eq!(
                named(Asked::of_put(&put, 9)),
                named(Asked::of(&request, 9).unwrap())
            );
        }
        let frame = wire::encode(&put("one", b"v")).unwrap();
        let asked = Asked::of_put(&wire::decode_put(&frame[4..]).unwrap(), 9);
        assert_eq!(
            (asked.op, asked.key.as_str(), asked.size),
            ("put", "one", Some(1))
        );
    }
}
