//! The holder's answers to stage requests: its own stages only, and no part it must refuse.

use super::*;
use crate::store::PutOptions;

fn entry(key: &str, value: &str) -> WireEntry {
    WireEntry {
        key: ByteBuf::from(key.as_bytes()),
        value: ByteBuf::from(value.as_bytes()),
        expiration: None,
        metadata: None,
    }
}

fn gone(response: &Response) -> bool {
    matches!(response, Response::Failed(Error::Storage { detail, .. }) if detail == STAGE_GONE)
}

#[test]
fn a_client_s_stages_are_its_own_and_what_no_kv_writes_is_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = StoreConfig::default();
    let namespace = crate::store::Namespace::open(dir.path(), "ns", &config).unwrap();
    namespace
        .put("k0", b"old", &PutOptions::default(), 1_900_000_000_000)
        .unwrap();
    let store = dir.path().canonicalize().unwrap();
    let ask = |request| answer(&store, &config, request);
    let get = |key: &str| {
        ask(Request::Get {
            ns: "ns".into(),
            key: ByteBuf::from(key.as_bytes()),
        })
    };
    let value = |response: Response| match response {
        Response::Entry(entry) => entry.map(|e| String::from_utf8(e.value.into_vec()).unwrap()),
        other => panic!("{other:?}"),
    };
    // A stage this holder never began is refused, whatever its id.
    let stray = ask(Request::StagePut {
        ns: "ns".into(),
        stage: 42,
        entries: vec![entry("k1", "v")],
    });
    assert!(gone(&stray), "{stray:?}");
    assert!(gone(&ask(Request::StageCommit {
        ns: "ns".into(),
        stage: 42
    })));
    let Response::Staged(stage) = ask(Request::StageBegin { ns: "ns".into() }) else {
        panic!("no stage");
    };
    // A part with an entry no KV writes (an empty key) is refused whole.
    let bad = vec![entry("k1", "v"), entry("", "v")];
    let refused = ask(Request::StagePut {
        ns: "ns".into(),
        stage,
        entries: bad,
    });
    assert!(
        matches!(refused, Response::Failed(Error::Invalid(_))),
        "{refused:?}"
    );
    assert_eq!(value(get("k1")), None);
    // A good part is written with its undo; dropping the stage puts everything back.
    let good = vec![entry("k0", "new"), entry("k1", "v")];
    assert!(matches!(
        ask(Request::StagePut {
            ns: "ns".into(),
            stage,
            entries: good
        }),
        Response::Done
    ));
    assert_eq!(value(get("k0")).as_deref(), Some("new"));
    assert!(matches!(
        ask(Request::StageDrop {
            ns: "ns".into(),
            stage
        }),
        Response::Done
    ));
    assert_eq!(value(get("k0")).as_deref(), Some("old"));
    assert_eq!(value(get("k1")), None);
    // Once dropped, the stage is gone: its id takes no more parts and no commit.
    assert!(gone(&ask(Request::StageCommit {
        ns: "ns".into(),
        stage
    })));
    drop(namespace);
}
