use std::sync::Arc;

use bytes::Bytes;
use stompbox_broker::Store;

use super::*;

fn open(dir: &Path) -> Arc<DiskStore> {
    DiskStore::open(dir, StoreOptions::default()).expect("opens")
}

fn keys(store: &DiskStore) -> Vec<(String, u64, Bytes)> {
    let mut all = Vec::new();
    (store.scan(&mut |queue, position, record| {
        all.push((queue.to_owned(), position, Bytes::copy_from_slice(record)));
    }))
    .unwrap();
    all
}

#[tokio::test]
async fn writes_are_durable_once_synced_and_read_back_in_queue_then_position_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store.closed_cleanly(), "a new store has nothing to doubt");
    store.put("jobs", 2, Bytes::from_static(b"two"));
    store.put("alerts", 9, Bytes::from_static(b"nine"));
    store.put("jobs", 1, Bytes::from_static(b"one"));
    store.put("jobs", 3, Bytes::from_static(b"three"));
    let last = store.remove("jobs", 3);
    store.synced(last).await.unwrap();
    // Overwriting a record (a NACK's new delivery count) keeps one record.
    let last = store.put("jobs", 1, Bytes::from_static(b"one again"));
    store.synced(last).await.unwrap();
    store.close();
    drop(store);

    let store = open(dir.path());
    assert!(store.closed_cleanly());
    assert_eq!(
        keys(&store),
        [
            ("alerts".into(), 9, Bytes::from_static(b"nine")),
            ("jobs".into(), 1, Bytes::from_static(b"one again")),
            ("jobs".into(), 2, Bytes::from_static(b"two")),
        ]
    );
}

#[tokio::test]
async fn a_store_not_closed_is_reported_unclean_and_keeps_what_was_synced() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let last = store.put("jobs", 1, Bytes::from_static(b"kept"));
    store.synced(last).await.unwrap();
    drop(store); // no close(): as after a crash, the marker is missing

    let store = open(dir.path());
    assert!(!store.closed_cleanly());
    assert_eq!(keys(&store).len(), 1);
    store.close();
    drop(store);
    assert!(open(dir.path()).closed_cleanly());
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path());
    let second = DiskStore::open(dir.path(), StoreOptions::default());
    assert!(matches!(second, Err(OpenError::Locked(_))), "{second:?}");
}

#[tokio::test]
async fn concurrent_writers_are_committed_in_batches_and_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let record = Bytes::from(vec![7u8; 1024]);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, record) = (store.clone(), record.clone());
            std::thread::spawn(move || {
                (0..500)
                    .map(|i| store.put(&format!("q{w}"), i, record.clone()))
                    .max()
                    .unwrap()
            })
        })
        .collect();
    let last = writers
        .into_iter()
        .map(|w| w.join().unwrap())
        .max()
        .unwrap();
    store.synced(last).await.unwrap();
    assert_eq!(keys(&store).len(), 2000);
    // A sequence number already durable resolves at once.
    store.synced(1).await.unwrap();
}

#[tokio::test]
async fn a_queue_is_read_back_a_page_at_a_time_after_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for position in 1..=10 {
        store.put("jobs", position, Bytes::from(format!("j{position}")));
        store.put("jobs.x", position, Bytes::from_static(b"other queue"));
    }
    let last = store.remove("jobs", 4);
    store.synced(last).await.unwrap();
    let page = store.read("jobs", 2, 3).unwrap();
    let positions: Vec<u64> = page.iter().map(|r| r.position).collect();
    assert_eq!(positions, [3, 5, 6], "after 2, skipping the removed 4");
    assert_eq!(page[0].record, Bytes::from_static(b"j3"));
    let rest = store.read("jobs", 6, 100).unwrap();
    assert_eq!(
        rest.iter().map(|r| r.position).collect::<Vec<_>>(),
        [7, 8, 9, 10]
    );
    assert!(store.read("jobs", 10, 100).unwrap().is_empty());
    assert!(store.read("jobs", u64::MAX, 100).unwrap().is_empty());
    assert!(store.read("nothing", 0, 100).unwrap().is_empty());
}
