use super::*;

fn version(label: &str, wasm: &[u8]) -> VersionRecord {
    VersionRecord::of(
        label,
        &format!("name = \"orders\"\nversion = \"{label}\"\n"),
        wasm,
        "2026-01-01T00:00:00Z".into(),
    )
}

/// Writes `wasm`'s chunks into `state` as a deploy would.
fn put_chunks(state: &mut StoreState, wasm: &[u8]) {
    let sha256 = sha256_hex(wasm);
    for (index, chunk) in chunks_of(wasm).enumerate() {
        let key = RecordKey::Chunk {
            sha256: sha256.clone(),
            index: index as u32,
        };
        state
            .apply(key.to_string().as_bytes(), Some(chunk))
            .unwrap();
    }
}

fn put_plugin(state: &mut StoreState, record: &PluginRecord) {
    let key = RecordKey::Plugin(record.name.clone()).to_string();
    let json = serde_json::to_vec(record).unwrap();
    state.apply(key.as_bytes(), Some(&json)).unwrap();
}

#[test]
fn keys_read_back_as_written_and_others_are_refused() {
    let sha256 = sha256_hex(b"x");
    let keys = [
        RecordKey::Plugin("orders".into()),
        RecordKey::Chunk {
            sha256: sha256.clone(),
            index: 7,
        },
        RecordKey::Status {
            host: "host-1.example".into(),
            plugin: "orders".into(),
        },
    ];
    for key in keys {
        assert_eq!(RecordKey::parse(&key.to_string()), Some(key));
    }
    for bad in [
        "plugin/or ders",
        "plugin/a/b",
        "chunk/abc/0",
        &format!("chunk/{sha256}/x"),
        "status//orders",
        "orders",
    ] {
        assert_eq!(RecordKey::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_large_component_is_cut_into_chunks_and_put_back_together() {
    let wasm: Vec<u8> = (0..CHUNK_SIZE * 2 + 1000)
        .map(|i| (i % 251) as u8)
        .collect();
    let deployed = version("1", &wasm);
    assert_eq!(deployed.chunks, 3);
    let mut state = StoreState::new(true);
    assert!(!state.has_component(&deployed));
    put_chunks(&mut state, &wasm);
    assert!(state.has_component(&deployed));
    assert_eq!(state.component(&deployed).unwrap(), wasm);

    // A chunk deleted: the component cannot be put together.
    let key = format!("chunk/{}/1", deployed.sha256);
    state.apply(key.as_bytes(), None).unwrap();
    assert!(matches!(
        state.component(&deployed),
        Err(AssemblyError::MissingChunk {
            index: 1,
            chunks: 3,
            ..
        })
    ));
}

#[test]
fn chunks_that_do_not_match_their_digest_are_refused() {
    let wasm = b"the real component".to_vec();
    let deployed = version("1", &wasm);
    let mut state = StoreState::new(true);
    let key = format!("chunk/{}/0", deployed.sha256);
    state
        .apply(key.as_bytes(), Some(b"another component!"))
        .unwrap();
    assert!(matches!(
        state.component(&deployed),
        Err(AssemblyError::Digest { .. })
    ));
    state.apply(key.as_bytes(), Some(b"short")).unwrap();
    assert!(matches!(
        state.component(&deployed),
        Err(AssemblyError::Size { found: 5, .. })
    ));
}

#[test]
fn deploy_remove_and_rollback_move_versions_as_documented() {
    let now = || "2026-01-01T00:00:00Z".to_owned();
    let first = PluginRecord::deployed("orders", version("1", b"one"), None, now());
    assert_eq!(first.previous, None);
    assert_eq!(
        first.rolled_back(now()),
        Err(ChangeError::NoPrevious("orders".into()))
    );
    let second = PluginRecord::deployed("orders", version("2", b"two"), Some(&first), now());
    assert_eq!(second.previous.as_ref().unwrap().version, "1");
    let back = second.rolled_back(now()).unwrap();
    assert_eq!(
        (
            back.current.version.as_str(),
            back.previous.unwrap().version.as_str()
        ),
        ("1", "2")
    );
    let removed = second.removed(now()).unwrap();
    assert_eq!(removed.state, DesiredState::Removed);
    assert_eq!(removed.current.version, "2");
    assert_eq!(
        removed.removed(now()),
        Err(ChangeError::Removed("orders".into()))
    );
    assert!(removed.rolled_back(now()).is_err());
    let again = PluginRecord::deployed("orders", version("3", b"three"), Some(&removed), now());
    assert_eq!(again.state, DesiredState::Deployed);
    assert_eq!(again.previous.unwrap().version, "2");
    // The removed build deployed again keeps its previous version.
    let same = PluginRecord::deployed("orders", version("2", b"two"), Some(&removed), now());
    assert_eq!(same.previous.unwrap().version, "1");
}

#[test]
fn the_latest_record_of_each_key_is_the_store() {
    let mut state = StoreState::new(false);
    let one = PluginRecord::deployed("orders", version("1", b"one"), None, "t".into());
    let two = PluginRecord::deployed("orders", version("2", b"two"), Some(&one), "t".into());
    put_chunks(&mut state, b"one");
    put_plugin(&mut state, &one);
    put_chunks(&mut state, b"two");
    put_plugin(&mut state, &two);
    assert_eq!(state.plugins["orders"].current.version, "2");
    assert!(state.has_component(&two.current));

    // Component "one" is still the previous version: its chunks stay.
    assert!(state.unreferenced_chunks(&sha256_hex(b"one")).is_empty());
    let three = PluginRecord::deployed("orders", version("3", b"3"), Some(&two), "t".into());
    put_plugin(&mut state, &three);
    let dropped = state.unreferenced_chunks(&sha256_hex(b"one"));
    assert_eq!(dropped.len(), 1);

    let status = StatusRecord {
        host: "h".into(),
        plugin: "orders".into(),
        version: Some("2".into()),
        sha256: None,
        state: PluginState::Running,
        pipelines: vec!["orders".into()],
        last_error: None,
        loaded_at: None,
        updated_at: "t".into(),
    };
    let json = serde_json::to_vec(&status).unwrap();
    state.apply(b"status/h/orders", Some(&json)).unwrap();
    assert_eq!(state.statuses["h"]["orders"], status);
    state.apply(b"status/h/orders", None).unwrap();
    assert!(state.statuses.is_empty(), "a tombstone deletes a status");
    state.apply(b"plugin/orders", None).unwrap();
    assert!(state.plugins.is_empty());
}

#[test]
fn records_that_cannot_be_read_change_nothing() {
    let mut state = StoreState::new(false);
    assert!(matches!(
        state.apply(b"something-else", Some(b"x")),
        Err(RecordError::UnknownKey(_))
    ));
    assert!(matches!(
        state.apply(b"plugin/orders", Some(b"not json")),
        Err(RecordError::Invalid { .. })
    ));
    let other = PluginRecord::deployed("billing", version("1", b"one"), None, "t".into());
    let json = serde_json::to_vec(&other).unwrap();
    let error = state.apply(b"plugin/orders", Some(&json)).unwrap_err();
    assert!(
        error.to_string().contains("it names plugin billing"),
        "{error}"
    );
    assert!(state.plugins.is_empty());
}
