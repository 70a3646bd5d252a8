//! The location cache's rules, without a backend.

use super::*;

fn entry(value: &str, expiration: Option<i64>) -> Entry {
    Entry {
        expiration,
        metadata: None,
        value: Value::Owned(value.as_bytes().to_vec()),
    }
}

const NOW: i64 = 1_900_000_000_000;

#[test]
fn serves_a_read_until_its_ttl_runs_out() {
    let here = Location::default();
    assert_eq!(here.lookup("k", None, u64::MAX, NOW), None);
    here.remember("k", Some(entry("v", None)), None, NOW, here.ticket());
    let cached = here.lookup("k", None, u64::MAX, NOW + 59_999).unwrap();
    assert_eq!(cached.unwrap().value.bytes(), Some(&b"v"[..]));
    assert_eq!(here.lookup("k", None, u64::MAX, NOW + 60_000), None);
}

#[test]
fn caches_absence_and_a_shorter_ttl_shortens_it() {
    let here = Location::default();
    here.remember("k", None, Some(300), NOW, here.ticket());
    assert_eq!(here.lookup("k", None, u64::MAX, NOW + 100_000), Some(None));
    // Read again with 30 s: the answer now runs out 30 s after this read.
    assert_eq!(
        here.lookup("k", Some(30), u64::MAX, NOW + 100_000),
        Some(None)
    );
    assert_eq!(here.lookup("k", None, u64::MAX, NOW + 129_999), Some(None));
    assert_eq!(here.lookup("k", None, u64::MAX, NOW + 130_000), None);
}

#[test]
fn an_expiration_wins_over_the_cache() {
    let here = Location::default();
    let expiration = NOW / 1000 + 10;
    here.remember(
        "k",
        Some(entry("v", Some(expiration))),
        None,
        NOW,
        here.ticket(),
    );
    assert!(here
        .lookup("k", None, u64::MAX, NOW + 9_999)
        .unwrap()
        .is_some());
    assert_eq!(here.lookup("k", None, u64::MAX, NOW + 10_000), Some(None));
}

#[test]
fn a_long_cached_value_is_deferred_and_a_deferred_one_is_not_cached() {
    let here = Location::default();
    here.remember("k", Some(entry("four", None)), None, NOW, here.ticket());
    let cached = here.lookup("k", None, 3, NOW).unwrap().unwrap();
    assert_eq!(cached.value, Value::Deferred { len: 4 });
    let deferred = Entry {
        expiration: None,
        metadata: None,
        value: Value::Deferred { len: 9 },
    };
    here.remember("long", Some(deferred), None, NOW, here.ticket());
    assert_eq!(here.lookup("long", None, u64::MAX, NOW), None);
}

#[test]
fn forgetting_is_local_and_clearing_is_everywhere() {
    let here = Location::default();
    let there = here.sibling();
    for location in [&here, &there] {
        location.remember("k", Some(entry("old", None)), None, NOW, location.ticket());
        let query = PageQuery {
            prefix: "k".into(),
            limit: 1000,
            cursor: None,
        };
        location.remember_page(query, &ListPage::default(), NOW, location.ticket());
    }
    here.forget("k");
    let query = |prefix: &str| PageQuery {
        prefix: prefix.into(),
        limit: 1000,
        cursor: None,
    };
    assert_eq!(here.lookup("k", None, u64::MAX, NOW), None);
    assert_eq!(here.page(&query("k"), NOW), None);
    assert!(there.lookup("k", None, u64::MAX, NOW).is_some());
    assert!(there.page(&query("k"), NOW).is_some());
    here.forget_everywhere();
    assert_eq!(there.lookup("k", None, u64::MAX, NOW), None);
    assert_eq!(there.page(&query("k"), NOW), None);
}

#[test]
fn a_read_that_a_write_or_clear_overtook_is_not_cached() {
    let here = Location::default();
    let there = here.sibling();
    // A read starts, a write here finishes, then the read does: its answer may predate
    // the write, so it is handed back but not kept.
    let ticket = here.ticket();
    here.forget("other");
    let found = here.remember("k", Some(entry("old", None)), None, NOW, ticket);
    assert!(found.is_some());
    assert_eq!(here.lookup("k", None, u64::MAX, NOW), None);
    let query = PageQuery {
        prefix: String::new(),
        limit: 1000,
        cursor: None,
    };
    let ticket = here.ticket();
    there.forget_everywhere();
    here.remember_page(query.clone(), &ListPage::default(), NOW, ticket);
    assert_eq!(here.page(&query, NOW), None);
    // A write elsewhere does not stop this location caching.
    let ticket = here.ticket();
    there.forget("k");
    here.remember("k", None, None, NOW, ticket);
    assert_eq!(here.lookup("k", None, u64::MAX, NOW), Some(None));
}

#[test]
fn answers_that_ran_out_are_dropped_as_the_cache_grows() {
    let here = Location::default();
    for i in 0..SWEEP_FLOOR - 1 {
        here.remember(&format!("old{i}"), None, None, NOW, here.ticket());
    }
    // One TTL later, new reads sweep the old ones out.
    here.remember("new", None, None, NOW + 60_000, here.ticket());
    assert_eq!(here.cache().reads.len(), 1);
}

#[test]
fn locations_share_a_byte_budget_and_give_it_back() {
    let value = "v".repeat(1000);
    let used = |here: &Location| here.shared.used.load(Ordering::Acquire);
    let here = Location::new(4096);
    for key in ["a", "b", "c"] {
        here.remember(key, Some(entry(&value, None)), None, NOW, here.ticket());
    }
    assert_eq!(here.bytes(), 3 * (ANSWER_OVERHEAD + 1 + 1000));
    // A fourth would pass the budget: what ran out goes, then (none did) everything.
    here.remember("d", Some(entry(&value, None)), None, NOW, here.ticket());
    assert_eq!(here.bytes(), ANSWER_OVERHEAD + 1 + 1000);
    assert!(here.lookup("a", None, u64::MAX, NOW).is_none());
    assert!(here.lookup("d", None, u64::MAX, NOW).is_some());
    // Another location caches within what is left, and nothing past it.
    let there = here.sibling();
    for key in ["e", "f", "g", "h"] {
        there.remember(key, Some(entry(&value, None)), None, NOW, there.ticket());
    }
    assert!(used(&here) <= 4096);
    assert_eq!(used(&here), here.bytes() + there.bytes());
    // Replacing an answer, forgetting one and dropping a location all give bytes back.
    here.remember("d", None, None, NOW, here.ticket());
    assert_eq!(here.bytes(), ANSWER_OVERHEAD + 1);
    here.forget("d");
    assert_eq!(here.bytes(), 0);
    drop(there);
    assert_eq!(used(&here), 0);
    // An answer larger than the whole budget is served, not cached.
    let huge = "v".repeat(5000);
    let found = here.remember("x", Some(entry(&huge, None)), None, NOW, here.ticket());
    assert_eq!(found.unwrap().value.bytes().map(<[u8]>::len), Some(5000));
    assert!(here.lookup("x", None, u64::MAX, NOW).is_none());
}
