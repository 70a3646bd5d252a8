//! The core's contract, without Node: validation wording, expiry, and both backends.

use kv_binding::backends::sled::StoreConfig;
use kv_binding::store::{BulkEntry, CacheStatus, Error, Namespace, Op, PutOptions, Value};
use tempfile::TempDir;

const NOW_MS: i64 = 1_900_000_000_500;
const NOW: i64 = NOW_MS / 1000;

fn backends() -> Vec<(&'static str, Namespace, Option<TempDir>)> {
    let dir = TempDir::new().unwrap();
    let sled = Namespace::open(dir.path(), "test", &StoreConfig::default()).unwrap();
    vec![
        ("memory", Namespace::in_memory(), None),
        ("sled", sled, Some(dir)),
    ]
}

fn text(namespace: &Namespace, key: &str, now_ms: i64) -> Option<String> {
    let entry = namespace.get(key, None, u64::MAX, now_ms).unwrap()?;
    let bytes = entry
        .value
        .bytes()
        .expect("no value is deferred with no size limit");
    Some(String::from_utf8(bytes.to_vec()).unwrap())
}

fn message(result: Result<impl std::fmt::Debug, Error>) -> String {
    result.unwrap_err().to_string()
}

fn ttl(seconds: i32) -> PutOptions {
    PutOptions {
        expiration_ttl: Some(seconds),
        ..PutOptions::default()
    }
}

#[test]
fn key_checks_use_production_wording_and_order() {
    for (_, kv, _dir) in backends() {
        let put = |key: &str| kv.put(key, b"v", &PutOptions::default(), NOW_MS);
        assert_eq!(message(put("")), "Key name cannot be empty.");
        assert_eq!(message(put(".")), "\".\" is not allowed as a key name.");
        assert_eq!(message(put("..")), "\"..\" is not allowed as a key name.");
        assert!(matches!(put(""), Err(Error::Type(_))));
        assert_eq!(
            message(put(&"é".repeat(257))),
            "KV PUT failed: 414 UTF-8 encoded length of 514 exceeds key length limit of 512."
        );
        assert!(put(&"k".repeat(512)).is_ok());
        assert_eq!(
            message(kv.delete(&"k".repeat(513))),
            "KV DELETE failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512."
        );
        assert_eq!(
            message(kv.get(&"k".repeat(513), None, 0, NOW_MS)),
            "KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512."
        );
        // The key is checked before cacheTtl.
        assert_eq!(
            message(kv.get("", Some(1), 0, NOW_MS)),
            "Key name cannot be empty."
        );
    }
}

#[test]
fn cache_ttl_below_30_is_refused_even_for_missing_keys() {
    let kv = Namespace::in_memory();
    assert_eq!(
        message(kv.get("missing", Some(29), 0, NOW_MS)),
        "KV GET failed: 400 Invalid cache_ttl of 29. Cache TTL must be at least 30."
    );
    assert_eq!(kv.get("missing", Some(30), 0, NOW_MS), Ok(None));
}

#[test]
fn put_options_are_checked_in_service_order() {
    let kv = Namespace::in_memory();
    let put = |options: &PutOptions, len: usize| kv.put("k", &vec![0; len], options, NOW_MS);
    assert_eq!(
        message(put(&ttl(0), 0)),
        "KV PUT failed: 400 Invalid expiration_ttl of 0. Please specify integer greater than 0."
    );
    assert_eq!(
        message(put(&ttl(59), 0)),
        "KV PUT failed: 400 Invalid expiration_ttl of 59. Expiration TTL must be at least 60."
    );
    let at = |expiration: i64| PutOptions {
        expiration: Some(expiration as i32),
        ..PutOptions::default()
    };
    assert_eq!(
        message(put(&at(NOW), 0)),
        format!(
            "KV PUT failed: 400 Invalid expiration of {NOW}. Please specify integer greater than \
             the current number of seconds since the UNIX epoch."
        )
    );
    assert_eq!(
        message(put(&at(NOW + 59), 0)),
        format!(
            "KV PUT failed: 400 Invalid expiration of {}. Expiration times must be at least 60 \
             seconds in the future.",
            NOW + 59
        )
    );
    let both = PutOptions {
        expiration: Some(1),
        expiration_ttl: Some(60),
        metadata: Some("x".repeat(1025)),
    };
    // The TTL wins over the (invalid) expiration; metadata is checked next, then the value.
    assert_eq!(
        message(put(&both, 26_214_401)),
        "KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024."
    );
    assert_eq!(
        message(put(&PutOptions::default(), 26_214_401)),
        "KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400."
    );
    assert!(put(&PutOptions::default(), 26_214_400).is_ok());
    let metadata = PutOptions {
        metadata: Some("x".repeat(1024)),
        ..PutOptions::default()
    };
    assert!(put(&metadata, 0).is_ok());
}

#[test]
fn entries_expire_at_their_expiration_instant_and_are_reclaimed() {
    for (name, kv, _dir) in backends() {
        kv.put("small", b"v", &ttl(60), NOW_MS).unwrap();
        kv.put("large", &vec![7; 100_000], &ttl(60), NOW_MS)
            .unwrap();
        let expiry_ms = (NOW + 60) * 1000;
        assert_eq!(
            text(&kv, "small", expiry_ms - 1).as_deref(),
            Some("v"),
            "{name}"
        );
        assert!(kv
            .get("large", None, u64::MAX, expiry_ms - 1)
            .unwrap()
            .is_some());
        assert_eq!(text(&kv, "small", expiry_ms), None, "{name}");
        assert_eq!(kv.get("large", None, u64::MAX, expiry_ms).unwrap(), None);
        // Reclaimed: even a reader whose clock is behind no longer sees them.
        assert_eq!(text(&kv, "small", NOW_MS), None, "{name}");
        assert_eq!(kv.get("large", None, u64::MAX, NOW_MS).unwrap(), None);
    }
}

#[test]
fn reads_defer_values_longer_than_the_limit_and_report_their_length() {
    for (name, kv, _dir) in backends() {
        for len in [10, 1024, 1025, 300_000] {
            kv.put("k", &vec![1; len], &PutOptions::default(), NOW_MS)
                .unwrap();
            let entry = kv.get("k", None, 1024, NOW_MS).unwrap().unwrap();
            match (entry.value.bytes(), &entry.value) {
                (Some(bytes), _) => assert!(len <= 1024 && bytes.len() == len, "{name}"),
                (None, &Value::Deferred { len: seen }) => {
                    assert!(len > 1024 && seen == len as u64, "{name}")
                }
                (None, value) => panic!("{name}: {value:?} has no bytes"),
            }
        }
    }
}

#[test]
fn put_replaces_value_metadata_and_expiration_together() {
    for (name, kv, _dir) in backends() {
        let first = PutOptions {
            expiration_ttl: Some(60),
            metadata: Some("{\"v\":1}".into()),
            ..PutOptions::default()
        };
        kv.put("k", &vec![1; 5000], &first, NOW_MS).unwrap();
        kv.put("k", b"second", &PutOptions::default(), NOW_MS)
            .unwrap();
        let entry = kv.get("k", None, u64::MAX, NOW_MS).unwrap().unwrap();
        assert_eq!(entry.metadata, None, "{name}");
        assert_eq!(entry.expiration, None, "{name}");
        assert_eq!(entry.value, Value::Loaded("second".into()), "{name}");
    }
}

#[test]
fn empty_values_and_any_utf8_key_round_trip() {
    for (name, kv, _dir) in backends() {
        for key in ["a/b", "%", "\0", "😀", "\u{fffd}", "k"] {
            kv.put(key, key.as_bytes(), &PutOptions::default(), NOW_MS)
                .unwrap();
            assert_eq!(text(&kv, key, NOW_MS).as_deref(), Some(key), "{name}");
        }
        kv.put("empty", b"", &PutOptions::default(), NOW_MS)
            .unwrap();
        assert_eq!(text(&kv, "empty", NOW_MS).as_deref(), Some(""), "{name}");
        kv.delete("empty").unwrap();
        kv.delete("never-there").unwrap();
        assert_eq!(text(&kv, "empty", NOW_MS), None, "{name}");
    }
}

#[test]
fn one_directory_is_shared_within_a_process_and_survives_reopening() {
    let dir = TempDir::new().unwrap();
    let config = StoreConfig::default();
    let a = Namespace::open(dir.path(), "ns", &config).unwrap();
    let b = Namespace::open(dir.path(), "ns", &config).unwrap();
    let other = Namespace::open(dir.path(), "other", &config).unwrap();
    a.put("k", &vec![3; 4000], &PutOptions::default(), NOW_MS)
        .unwrap();
    assert!(b.get("k", None, u64::MAX, NOW_MS).unwrap().is_some());
    assert!(other.get("k", None, u64::MAX, NOW_MS).unwrap().is_none());
    drop((a, b, other));
    let reopened = Namespace::open(dir.path(), "ns", &config).unwrap();
    let entry = reopened.get("k", None, u64::MAX, NOW_MS).unwrap().unwrap();
    assert_eq!(entry.value, Value::Loaded(vec![3; 4000].into()));
}

#[test]
fn namespace_names_must_be_1_to_256_bytes() {
    let dir = TempDir::new().unwrap();
    let config = StoreConfig::default();
    for name in ["", &"n".repeat(257)] {
        let error = Namespace::open(dir.path(), name, &config).err().unwrap();
        assert!(matches!(error, Error::Invalid(_)), "{error}");
    }
    assert!(Namespace::open(dir.path(), &"n".repeat(256), &config).is_ok());
}

/// A sled database holding one entry in its default tree, as another program might leave it.
fn sled_store_with(key: &str, value: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    let db = sled::open(dir.path()).unwrap();
    db.insert(key, value).unwrap();
    db.flush().unwrap();
    dir
}

#[test]
fn a_store_from_a_newer_format_or_another_program_is_refused() {
    for (dir, expected) in [
        (
            sled_store_with("someone else's", "data"),
            "kv-binding did not create",
        ),
        (
            sled_store_with("kv-binding/format", "99"),
            "store format \"99\"",
        ),
    ] {
        let error = Namespace::open(dir.path(), "ns", &StoreConfig::default())
            .err()
            .unwrap();
        assert!(matches!(error, Error::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
    }
}

#[test]
fn a_store_whose_data_vanished_is_refused_rather_than_reopened_empty() {
    let dir = TempDir::new().unwrap();
    drop(Namespace::open(dir.path(), "ns", &StoreConfig::default()).unwrap());
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "kv-format.json" {
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    let error = Namespace::open(dir.path(), "ns", &StoreConfig::default())
        .err()
        .unwrap();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    assert!(
        error.to_string().contains("delete the directory"),
        "{error}"
    );
}

#[test]
fn error_codes_and_classes_are_stable() {
    assert_eq!(Error::Closed.code(), Some("ERR_KV_CLOSED"));
    assert_eq!(Error::Type("x".into()).code(), None);
    assert!(Error::Type("x".into()).is_type_error());
    let service = Error::Service {
        op: Op::GetBulk,
        status: 400,
        message: "m".into(),
    };
    assert_eq!(service.to_string(), "KV GET_BULK failed: 400 m");
    assert!(!service.is_type_error());
}

fn value_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("values"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_large_value_lives_in_a_file_freed_only_by_a_later_flush() {
    let dir = TempDir::new().unwrap();
    let namespace = Namespace::open(dir.path(), "ns", &StoreConfig::default()).unwrap();
    let options = PutOptions::default();
    let first: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let second = vec![9; 300_000];
    namespace.put("big", &first, &options, NOW_MS).unwrap();
    assert_eq!(value_files(dir.path()).len(), 1);
    namespace.put("big", &second, &options, NOW_MS).unwrap();
    // The first file stays until a flush makes the new record durable.
    assert_eq!(value_files(dir.path()).len(), 2);
    let entry = namespace
        .get("big", None, u64::MAX, NOW_MS)
        .unwrap()
        .unwrap();
    assert_eq!(entry.value, Value::Loaded(second.clone().into()));
    namespace.flush().unwrap();
    assert_eq!(value_files(dir.path()).len(), 1);
    namespace.delete("big").unwrap();
    namespace
        .put("small", &[1; 100_000], &options, NOW_MS)
        .unwrap();
    namespace.flush().unwrap();
    assert_eq!(value_files(dir.path()), Vec::<String>::new());
    assert_eq!(
        namespace
            .get("small", None, u64::MAX, NOW_MS)
            .unwrap()
            .unwrap()
            .value,
        Value::Loaded(vec![1; 100_000].into())
    );
}

#[test]
fn value_files_no_record_points_to_are_removed_when_the_store_opens() {
    let dir = TempDir::new().unwrap();
    let namespace = Namespace::open(dir.path(), "ns", &StoreConfig::default()).unwrap();
    let options = PutOptions::default();
    namespace
        .put("kept", &[3; 200_000], &options, NOW_MS)
        .unwrap();
    // Freed but never flushed, as when a process exits right after an overwrite.
    namespace
        .put("freed", &[4; 200_000], &options, NOW_MS)
        .unwrap();
    namespace.delete("freed").unwrap();
    drop(namespace);
    let values = dir.path().join("values");
    // As a crash between writing a file and its record would leave one.
    std::fs::write(values.join("00000000000fffff"), b"orphan").unwrap();
    std::fs::write(values.join("notes.txt"), b"not ours").unwrap();
    let namespace = Namespace::open(dir.path(), "ns", &StoreConfig::default()).unwrap();
    assert_eq!(
        value_files(dir.path()).len(),
        2,
        "{:?}",
        value_files(dir.path())
    );
    assert!(value_files(dir.path()).contains(&"notes.txt".to_owned()));
    assert_eq!(
        namespace
            .get("kept", None, u64::MAX, NOW_MS)
            .unwrap()
            .unwrap()
            .value,
        Value::Loaded(vec![3; 200_000].into())
    );
}

#[test]
fn a_format_1_store_opens_and_is_marked_format_3() {
    let dir = sled_store_with("kv-binding/format", "1");
    std::fs::write(dir.path().join("kv-format.json"), "{\"format\":\"1\"}\n").unwrap();
    let namespace = Namespace::open(dir.path(), "ns", &StoreConfig::default()).unwrap();
    namespace
        .put("key", b"value", &PutOptions::default(), NOW_MS)
        .unwrap();
    drop(namespace);
    let marker = std::fs::read_to_string(dir.path().join("kv-format.json")).unwrap();
    assert!(marker.contains("\"format\":\"3\""), "{marker}");
    let namespace = Namespace::open(dir.path(), "ns", &StoreConfig::default()).unwrap();
    assert_eq!(text(&namespace, "key", NOW_MS), Some("value".to_owned()));
}

#[test]
fn a_value_file_garbled_in_place_is_reported_as_damage_naming_the_key() {
    // Checksummed in-line, and (from 4 MiB, when written) on a thread of its own.
    for size in [300_000, 5 * 1024 * 1024 + 7] {
        let dir = TempDir::new().unwrap();
        let namespace = Namespace::open(dir.path(), "ns", &StoreConfig::default()).unwrap();
        let value: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        namespace
            .put("big", &value, &PutOptions::default(), NOW_MS)
            .unwrap();
        let file = dir.path().join("values").join(&value_files(dir.path())[0]);
        let mut bytes = std::fs::read(&file).unwrap();
        assert_eq!(bytes, value);
        // One bit, deep inside: the length stays the same.
        bytes[size - 50_000] ^= 0x10;
        std::fs::write(&file, &bytes).unwrap();
        let error = namespace.get("big", None, u64::MAX, NOW_MS).unwrap_err();
        assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("\"big\""), "{message}");
        assert!(message.contains("do not match its checksum"), "{message}");
        // A value file cut short is damage too, and so is one that grew.
        bytes[size - 50_000] ^= 0x10;
        for len in [bytes.len() - 1, bytes.len() + 1] {
            let mut changed = bytes.clone();
            changed.resize(len, 0);
            std::fs::write(&file, &changed).unwrap();
            let message = namespace
                .get("big", None, u64::MAX, NOW_MS)
                .unwrap_err()
                .to_string();
            assert!(
                message.contains("points to a value that is missing"),
                "{message}"
            );
        }
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(
            namespace
                .get("big", None, u64::MAX, NOW_MS)
                .unwrap()
                .unwrap()
                .value,
            Value::Owned(value)
        );
    }
}

#[test]
fn a_snapshot_sled_left_half_written_does_not_stop_the_store_from_opening() {
    let dir = TempDir::new().unwrap();
    let namespace = Namespace::open(dir.path(), "ns", &StoreConfig::default()).unwrap();
    for i in 0..500 {
        namespace
            .put(&format!("k{i}"), b"value", &PutOptions::default(), NOW_MS)
            .unwrap();
    }
    drop(namespace);
    // What sled leaves when a snapshot cannot be written whole (a full disk, a crash): an
    // empty file under the name it writes snapshots under, sorting after every real one.
    let leftover = dir.path().join("snap.7FFFFFFFFFFFFFFF.generating");
    std::fs::write(&leftover, b"").unwrap();
    // Not sled's: a name it never gives, left alone.
    let foreign = dir.path().join("my.snap.7FFFFFFFFFFFFFFF.generating");
    std::fs::write(&foreign, b"mine").unwrap();
    let namespace = Namespace::open(dir.path(), "ns", &StoreConfig::default()).unwrap();
    assert_eq!(text(&namespace, "k499", NOW_MS), Some("value".to_owned()));
    assert!(!leftover.exists());
    assert_eq!(std::fs::read(&foreign).unwrap(), b"mine");
}

#[test]
fn a_bulk_write_gives_a_key_written_twice_its_last_entry_and_leaves_nothing_behind() {
    for (name, namespace, dir) in backends() {
        let big = vec![5; 200_000];
        let blob = vec![6; 5_000];
        let entry = |key, value| BulkEntry {
            key,
            value,
            options: PutOptions::default(),
        };
        namespace
            .put_many(
                &[
                    entry("a", &big),
                    entry("b", &blob),
                    entry("a", b"last"),
                    entry("c", &big),
                ],
                NOW_MS,
            )
            .unwrap();
        assert_eq!(
            text(&namespace, "a", NOW_MS),
            Some("last".to_owned()),
            "{name}"
        );
        let read = |key| {
            namespace
                .get(key, None, u64::MAX, NOW_MS)
                .unwrap()
                .unwrap()
                .value
        };
        assert_eq!(read("b"), Value::Loaded(blob.clone().into()), "{name}");
        assert_eq!(read("c"), Value::Owned(big.clone()), "{name}");
        if let Some(dir) = dir {
            namespace.flush().unwrap();
            // Only "c" has a value file: the first "a" was never written.
            assert_eq!(value_files(dir.path()).len(), 1, "{name}");
        }
        // A refused entry: nothing of the call is written, and the error names it.
        let error = namespace
            .put_many(&[entry("d", b"v"), entry("", b"v")], NOW_MS)
            .unwrap_err();
        assert!(matches!(error, Error::Entry { index: 1, .. }), "{error:?}");
        assert_eq!(text(&namespace, "d", NOW_MS), None, "{name}");
    }
}

#[test]
fn a_snapshot_keeps_its_moment_and_restores_into_any_namespace() {
    for (name, kv, _dir) in backends() {
        let put = |key: &str, value: &str| {
            kv.put(key, value.as_bytes(), &PutOptions::default(), NOW_MS)
                .unwrap()
        };
        put("a", "1");
        put("b", "2");
        let snapshot = kv.snapshot().unwrap();
        // Writes after the snapshot, however it holds its entries, do not reach it.
        put("a", "changed");
        kv.delete("b").unwrap();
        put("c", "new");
        assert_eq!(snapshot.len(), 2, "{name}");
        kv.restore(&snapshot).unwrap();
        assert_eq!(text(&kv, "a", NOW_MS).as_deref(), Some("1"), "{name}");
        assert_eq!(text(&kv, "b", NOW_MS).as_deref(), Some("2"), "{name}");
        assert_eq!(text(&kv, "c", NOW_MS), None, "{name}");
        // Restored twice, with writes between: each restore is the snapshot again.
        put("a", "again");
        kv.restore(&snapshot).unwrap();
        assert_eq!(text(&kv, "a", NOW_MS).as_deref(), Some("1"), "{name}");
        // A snapshot of one backend restores into the other.
        for (other, target, _other_dir) in backends() {
            target.restore(&snapshot).unwrap();
            assert_eq!(
                text(&target, "b", NOW_MS).as_deref(),
                Some("2"),
                "{name} into {other}"
            );
        }
    }
}

#[test]
fn bulk_reads_check_and_read_keys_one_by_one_in_request_order() {
    for (_, kv, _dir) in backends() {
        kv.put("text", b"not json", &PutOptions::default(), NOW_MS)
            .unwrap();
        let long = "k".repeat(513);
        let bulk = |keys: &[&str]| {
            let keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
            message(kv.get_bulk(&keys, Some("json"), None, u64::MAX, NOW_MS))
        };
        assert!(bulk(&["text", &long]).contains("non-json value"));
        assert!(bulk(&[&long, "text"]).contains("414 UTF-8 encoded length of 513"));
        assert!(bulk(&["missing", "", "text"]).contains("Key names must not be empty"));
    }
}

#[test]
fn an_eventually_consistent_location_serves_its_cached_reads_for_the_cache_ttl() {
    for (_, kv, _dir) in backends() {
        let here = kv.eventually_consistent();
        let there = here.at_new_location();
        assert!(here.is_eventually_consistent() && there.is_eventually_consistent());
        let put = |kv: &Namespace, value: &str| {
            kv.put("k", value.as_bytes(), &PutOptions::default(), NOW_MS)
                .unwrap()
        };
        assert_eq!(text(&there, "k", NOW_MS), None);
        put(&here, "v1");
        assert_eq!(text(&here, "k", NOW_MS), Some("v1".into()));
        assert_eq!(text(&there, "k", NOW_MS + 59_999), None);
        assert_eq!(text(&there, "k", NOW_MS + 60_000), Some("v1".into()));
        put(&here, "v2");
        assert_eq!(text(&here, "k", NOW_MS), Some("v2".into()));
        let keys = vec!["k".to_string()];
        let entries = there.get_bulk(&keys, None, None, u64::MAX, NOW_MS + 60_000);
        let entry = entries.unwrap().unwrap().remove(0).unwrap();
        assert_eq!(entry.value.bytes(), Some(&b"v1"[..]));
        // A write there is seen there at once; a clear anywhere empties every cache.
        put(&there, "v3");
        assert_eq!(text(&there, "k", NOW_MS), Some("v3".into()));
        assert_eq!(text(&here, "k", NOW_MS), Some("v2".into()));
        there.clear().unwrap();
        assert_eq!(text(&here, "k", NOW_MS), None);
        // Where each answer came from: the store, then the cache.
        let status = |kv: &Namespace| kv.get_reporting("k", None, u64::MAX, NOW_MS).unwrap().1;
        put(&there, "v4");
        assert_eq!(status(&there), Some(CacheStatus::Miss));
        assert_eq!(status(&there), Some(CacheStatus::Hit));
        // Without simulated consistency, another location is the same view.
        let strong = Namespace::in_memory();
        let elsewhere = strong.at_new_location();
        assert!(!elsewhere.is_eventually_consistent());
        assert_eq!(status(&elsewhere), None);
        assert_eq!(text(&elsewhere, "k", NOW_MS), None);
        put(&strong, "v");
        assert_eq!(text(&elsewhere, "k", NOW_MS), Some("v".into()));
    }
}

#[test]
fn a_bulk_write_in_parts_is_kept_by_its_commit_and_undone_by_a_drop() {
    use kv_binding::store::complete_local as run;
    for (name, namespace, dir) in backends() {
        let entry = |key, value| BulkEntry {
            key,
            value,
            options: PutOptions::default(),
        };
        let (old, big, blob) = (vec![1; 200_000], vec![2; 200_000], vec![3; 5_000]);
        namespace
            .put_many(&[entry("a", &old), entry("b", b"old b")], NOW_MS)
            .unwrap();
        let parts = |staged: &mut _| {
            let first = [entry("a", &big), entry("c", &big)];
            run(namespace.put_staged_async(staged, &first, NOW_MS))?;
            let second = [entry("a", b"last"), entry("d", &blob), entry("b", b"new b")];
            run(namespace.put_staged_async(staged, &second, NOW_MS))
        };
        // Dropped: everything as it was, and no value file of the parts is left.
        let mut staged = run(namespace.stage_async()).unwrap();
        parts(&mut staged).unwrap();
        assert_eq!(staged.len(), 5, "{name}");
        run(namespace.drop_staged_async(staged)).unwrap();
        let read = |key| namespace.get(key, None, u64::MAX, NOW_MS).unwrap();
        assert_eq!(
            read("a").unwrap().value,
            Value::Owned(old.clone()),
            "{name}"
        );
        assert_eq!(
            text(&namespace, "b", NOW_MS).as_deref(),
            Some("old b"),
            "{name}"
        );
        assert!(read("c").is_none() && read("d").is_none(), "{name}");
        if let Some(dir) = &dir {
            namespace.flush().unwrap();
            assert_eq!(value_files(dir.path()).len(), 1, "{name}");
        }
        // A refused entry is named by its place among all the parts, and adds nothing.
        let mut staged = run(namespace.stage_async()).unwrap();
        parts(&mut staged).unwrap();
        let refused = run(namespace.put_staged_async(&mut staged, &[entry("", b"v")], NOW_MS));
        assert!(
            matches!(refused, Err(Error::Entry { index: 5, .. })),
            "{name}: {refused:?}"
        );
        // Committed: the last entry of each key, and what the parts replaced is freed.
        run(namespace.commit_staged_async(staged)).unwrap();
        assert_eq!(
            text(&namespace, "a", NOW_MS).as_deref(),
            Some("last"),
            "{name}"
        );
        assert_eq!(
            text(&namespace, "b", NOW_MS).as_deref(),
            Some("new b"),
            "{name}"
        );
        assert_eq!(
            read("c").unwrap().value,
            Value::Owned(big.clone()),
            "{name}"
        );
        assert_eq!(
            read("d").unwrap().value,
            Value::Loaded(blob.clone().into()),
            "{name}"
        );
        if let Some(dir) = &dir {
            namespace.flush().unwrap();
            // Only "c" has a value file now.
            assert_eq!(value_files(dir.path()).len(), 1, "{name}");
        }
    }
}

#[test]
fn each_backend_says_what_it_guarantees_and_does_it() {
    use kv_binding::store::{Capabilities, Snapshot};
    for (name, namespace, dir) in backends() {
        let caps = namespace.capabilities();
        assert_eq!(caps.in_line, namespace.is_local(), "{name}");
        namespace
            .put("k", b"v", &PutOptions::default(), NOW_MS)
            .unwrap();
        let shared = matches!(namespace.snapshot().unwrap(), Snapshot::Shared(_));
        assert_eq!(caps.shared_snapshots, shared, "{name}");
        if let Some(dir) = &dir {
            drop(namespace);
            let again = Namespace::open(dir.path(), "test", &StoreConfig::default()).unwrap();
            assert!(caps.persistent, "{name}");
            assert_eq!(text(&again, "k", NOW_MS).as_deref(), Some("v"), "{name}");
        }
        let expected = match name {
            "memory" => Capabilities {
                in_line: true,
                atomic_bulk_writes: true,
                shared_snapshots: true,
                ..Capabilities::default()
            },
            // No runtime serves stores in the pure core's tests, so this one is not shared.
            _ => Capabilities {
                in_line: true,
                persistent: true,
                atomic_bulk_writes: true,
                durable_flush: true,
                staged_writes: true,
                ..Capabilities::default()
            },
        };
        assert_eq!(caps, expected, "{name}");
    }
}

#[test]
fn a_sled_namespace_lists_its_stores_namespaces_and_memory_has_none() {
    use kv_binding::store::complete_local;
    let dir = TempDir::new().unwrap();
    let config = StoreConfig::default();
    let b = Namespace::open(dir.path(), "b/with slash", &config).unwrap();
    let a = Namespace::open(dir.path(), "A", &config).unwrap();
    let z = Namespace::open(dir.path(), "é", &config).unwrap();
    a.put("k", b"v", &PutOptions::default(), NOW_MS).unwrap();
    // Staged writes and undo records live in trees of their own, which are not namespaces.
    let staged = complete_local(b.stage_async()).unwrap();
    complete_local(b.drop_staged_async(staged)).unwrap();
    let names = complete_local(z.namespaces_async()).unwrap();
    assert_eq!(
        names,
        Some(vec![
            "A".to_owned(),
            "b/with slash".to_owned(),
            "é".to_owned()
        ])
    );
    assert_eq!(
        complete_local(Namespace::in_memory().namespaces_async()).unwrap(),
        None
    );
}
