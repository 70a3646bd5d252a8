//! Frames: what crosses the socket reads back as sent, and what no KV writes is refused.

use super::*;

fn read<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, FrameError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(read_frame::<_, T>(&mut &bytes[..]))
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

#[test]
fn a_request_comes_back_as_sent() {
    let entry = PutEntry {
        key: b"user:1",
        value: &[0, 255, 7],
        expiration: Some(1_900_000_000),
        metadata: Some(r#"{"a":1}"#),
    };
    let sent = Request::PutAll {
        ns: "KV".into(),
        entries: vec![WireEntry::from_put(&entry)],
    };
    let frame = encode(&sent).unwrap();
    let Ok(Request::PutAll { ns, entries }) = read::<Request>(&frame) else {
        panic!("not read back");
    };
    assert_eq!(ns, "KV");
    let back = entries[0].as_put().unwrap();
    assert_eq!(
        (back.key, back.value, back.expiration, back.metadata),
        (entry.key, entry.value, entry.expiration, entry.metadata)
    );
}

#[test]
fn errors_cross_with_their_code_and_message() {
    let error = Error::Corrupt {
        path: "/tmp/store".into(),
        detail: "the value of key \"k\" does not match its checksum".into(),
    };
    let message = error.to_string();
    let frame = encode(&Response::Failed(error)).unwrap();
    let Ok(Response::Failed(back)) = read::<Response>(&frame) else {
        panic!("not read back");
    };
    assert_eq!(back.code(), Some("ERR_KV_CORRUPT"));
    assert_eq!(back.to_string(), message);
}

#[test]
fn anything_but_one_whole_message_is_refused() {
    let hello = encode(&Request::Hello {
        protocol: PROTOCOL,
        store: 7,
    })
    .unwrap();
    // A byte too many after the message.
    let mut longer = hello[4..].to_vec();
    longer.push(0);
    assert!(matches!(
        read::<Request>(&framed(&longer)),
        Err(FrameError::Garbage(_))
    ));
    // An unknown variant; text where a message should be.
    assert!(matches!(
        read::<Request>(&framed(&[200])),
        Err(FrameError::Garbage(_))
    ));
    assert!(matches!(
        read::<Request>(&framed(b"GET / HTTP/1.1\r\n\r\n")),
        Err(FrameError::Garbage(_))
    ));
    // A length past the limit is refused before anything is read or allocated.
    let huge = (MAX_FRAME as u32 + 1).to_le_bytes();
    assert!(matches!(
        read::<Request>(&huge),
        Err(FrameError::Garbage(_))
    ));
    // A frame cut short is a connection that ended.
    assert!(matches!(
        read::<Request>(&hello[..hello.len() - 1]),
        Err(FrameError::Closed)
    ));
    // A key whose length says more than the frame holds.
    let lying = framed(&[1, 2, b'K', b'V', 200, 1]);
    assert!(matches!(
        read::<Request>(&lying),
        Err(FrameError::Garbage(_))
    ));
}

#[test]
fn frames_in_flight_stay_within_the_budget() {
    use futures_util::FutureExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let frame = encode(&Request::Delete {
        ns: "KV".into(),
        key: ByteBuf::from(vec![b'k'; 100 * 1024]),
    })
    .unwrap();
    // Room for one such frame at a time (101 KiB), not two.
    let budget = Arc::new(Semaphore::new(150));
    runtime.block_on(async {
        let (first, held) = read_body_budgeted(&mut &frame[..], &budget).await.unwrap();
        assert!(matches!(decode(&first), Ok(Request::Delete { .. })));
        assert_eq!(held.num_permits(), 101);
        let mut input = &frame[..];
        let mut second = Box::pin(read_body_budgeted(&mut input, &budget));
        // Its bytes are all there; it waits for room only.
        assert!((&mut second).now_or_never().is_none());
        drop(held);
        let (_, held) = second.await.unwrap();
        assert_eq!(held.num_permits(), 101);
    });
    // A frame that promises much and sends a little holds only what it sent.
    let mut short = (1_000_000u32).to_le_bytes().to_vec();
    short.extend_from_slice(&[0; 10]);
    let result = runtime.block_on(read_body_budgeted(&mut &short[..], &budget));
    assert!(matches!(result, Err(FrameError::Closed)));
    assert_eq!(budget.available_permits(), 150);
}

#[test]
fn an_entry_read_for_one_caller_is_sent_without_a_copy() {
    let bytes = vec![7u8; 1 << 20];
    let at = bytes.as_ptr();
    let entry = Entry {
        value: Value::Owned(bytes),
        expiration: Some(9),
        metadata: Some(b"{}".to_vec().into()),
    };
    let wire = WireEntry::from_owned(b"k", entry).expect("a loaded value");
    assert_eq!(wire.value.as_ptr(), at);
    assert_eq!(wire.value.len(), 1 << 20);
    assert_eq!(wire.expiration, Some(9));
    assert_eq!(
        wire.metadata.as_ref().map(|m| m.as_slice()),
        Some(&b"{}"[..])
    );
    // Shared bytes are copied; a value never loaded is not sent.
    let shared = Entry {
        value: Value::Loaded(b"v".to_vec().into()),
        expiration: None,
        metadata: None,
    };
    assert_eq!(
        WireEntry::from_owned(b"k", shared).unwrap().value.as_ref(),
        b"v"
    );
    let deferred = Entry {
        value: Value::Deferred { len: 3 },
        expiration: None,
        metadata: None,
    };
    assert!(WireEntry::from_owned(b"k", deferred).is_err());
}

#[test]
fn a_write_read_in_place_is_the_write_sent() {
    let value = vec![b'v'; 100_000];
    let entries = [
        PutEntry {
            key: b"big",
            value: &value,
            expiration: Some(2_000_000_000),
            metadata: Some("{\"a\":1}"),
        },
        PutEntry {
            key: b"small",
            value: b"s",
            expiration: None,
            metadata: None,
        },
    ];
    let wire_entries = || entries.iter().map(WireEntry::from_put).collect::<Vec<_>>();
    let all = encode(&Request::PutAll {
        ns: "n".into(),
        entries: wire_entries(),
    })
    .unwrap();
    let staged = encode(&Request::StagePut {
        ns: "n".into(),
        stage: 7,
        entries: wire_entries(),
    })
    .unwrap();
    let same = |read: &[EntryRef<'_>]| {
        assert_eq!(read.len(), 2);
        for (read, sent) in read.iter().zip(&entries) {
            let read = read.checked().unwrap();
            assert_eq!(
                (read.key, read.value, read.expiration, read.metadata),
                (sent.key, sent.value, sent.expiration, sent.metadata)
            );
        }
    };
    // What a client sends without copying values is byte for byte the request's encoding.
    assert_eq!(
        encode_put_all("n", &entries).unwrap().into_frame().unwrap(),
        all
    );
    assert_eq!(
        encode_stage_put("n", 7, &entries)
            .unwrap()
            .into_frame()
            .unwrap(),
        staged
    );
    // In place: the value is the frame's own bytes, not a copy.
    let body = &all[4..];
    assert!(is_put(body));
    match decode_put(body).unwrap() {
        PutRef::All { ns, entries: read } => {
            assert_eq!(ns, "n");
            same(&read);
            assert!(body.as_ptr_range().contains(&read[0].value.as_ptr()));
        }
        other => panic!("read as {other:?}"),
    }
    match decode_put(&staged[4..]).unwrap() {
        PutRef::Stage {
            ns,
            stage,
            entries: read,
        } => {
            assert_eq!((ns, stage), ("n", 7));
            same(&read);
        }
        other => panic!("read as {other:?}"),
    }
    // Other requests are not writes; a write's tag on anything else, or with bytes after the
    // message, is not a message of the protocol.
    let get = encode(&Request::Get {
        ns: "n".into(),
        key: ByteBuf::from(&b"k"[..]),
    })
    .unwrap();
    assert!(!is_put(&get[4..]));
    assert!(decode_put(&get[4..]).is_err());
    let mut trailing = all[4..].to_vec();
    trailing.push(0);
    assert!(decode_put(&trailing).is_err());
    assert!(decode_put(&all[4..all.len() - 1]).is_err());
    assert!(decode_put(&[all[4], 0xff, 0xff, 0xff]).is_err());
    // An entry no KV writes is refused when checked.
    let bad = encode(&Request::PutAll {
        ns: "n".into(),
        entries: vec![WireEntry::from_put(&PutEntry {
            key: b"",
            value: b"v",
            expiration: None,
            metadata: None,
        })],
    })
    .unwrap();
    match decode_put(&bad[4..]).unwrap() {
        PutRef::All { entries, .. } => assert!(entries[0].checked().is_err()),
        other => panic!("read as {other:?}"),
    }
}
