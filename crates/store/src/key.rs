//! A record's key: the queue's name, a NUL, the message's position in the queue as 8 bytes
//! big-endian. Queue names hold no NUL after their first byte (clients' cannot hold one at all:
//! the codec refuses one in a header; the broker's own start with one), so one queue's records
//! are contiguous and in order, and a queue's name cannot be the prefix of another's key.

/// The key of the message at position `id` in `queue`.
pub(crate) fn encode(queue: &str, id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(queue.len() + 9);
    key.extend_from_slice(queue.as_bytes());
    key.push(0);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The queue and id of a key; `None` for a key this version did not write.
pub(crate) fn decode(key: &[u8]) -> Option<(String, u64)> {
    let split = key.len().checked_sub(9)?;
    let (queue, rest) = key.split_at(split);
    let (nul, id) = rest.split_first()?;
    if *nul != 0 || queue.get(1..).is_some_and(|rest| rest.contains(&0)) {
        return None;
    }
    let queue = std::str::from_utf8(queue).ok()?.to_owned();
    Some((queue, u64::from_be_bytes(id.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_queue_then_id() {
        assert_eq!(decode(&encode("jobs", 7)), Some(("jobs".into(), 7)));
        assert_eq!(decode(&encode("", u64::MAX)), Some(("".into(), u64::MAX)));
        let mut keys = [
            encode("jobs", 300),
            encode("jobs.x", 1),
            encode("jobs", 2),
            encode("a", 9),
        ];
        keys.sort();
        let decoded: Vec<_> = keys.iter().map(|k| decode(k).unwrap()).collect();
        assert_eq!(
            decoded,
            [
                ("a".into(), 9),
                ("jobs".into(), 2),
                ("jobs".into(), 300),
                ("jobs.x".into(), 1)
            ]
        );
        assert_eq!(decode(b"short"), None);
        assert_eq!(decode(b"jobs\x01\0\0\0\0\0\0\0\x01"), None);
        // The broker's own queues start with a NUL; no other NUL is read as part of a name.
        let own = "\0durable:5:alicefeed";
        assert_eq!(decode(&encode(own, 3)), Some((own.into(), 3)));
        assert_eq!(decode(&encode("a\0b", 3)), None);
    }
}
