//! Checking every delivery while measuring: per-source sequence tracking (fan-out, topics) and
//! exactly-once bitsets (queue).

use std::collections::BTreeSet;

/// What one stream of sequence numbers from one publisher looked like at one subscriber.
///
/// `next` is the next expected sequence number. A number above it opens a gap (the skipped
/// numbers are remembered as missing); a number below it is either a missing one arriving late
/// (out of order) or one already seen (a duplicate). What is still missing at the end, plus what
/// never arrived after the last number seen, is lost.
#[derive(Clone, Debug, Default)]
pub struct SeqTrack {
    next: u64,
    missing: BTreeSet<u64>,
    /// First-time deliveries.
    pub unique: u64,
    /// Repeats of a number already delivered.
    pub duplicates: u64,
    /// Numbers that arrived after a higher one.
    pub out_of_order: u64,
}

impl SeqTrack {
    /// Records one delivery of `seq`.
    pub fn record(&mut self, seq: u64) {
        if seq == self.next {
            self.next += 1;
            self.unique += 1;
        } else if seq > self.next {
            // Bounded: a gap this wide is a corrupt number, not something to remember one by one.
            if seq - self.next <= 1 << 20 {
                self.missing.extend(self.next..seq);
            }
            self.next = seq + 1;
            self.unique += 1;
        } else if self.missing.remove(&seq) {
            self.out_of_order += 1;
            self.unique += 1;
        } else {
            self.duplicates += 1;
        }
    }

    /// Messages not delivered, given that `sent` were sent (numbers `0..sent`).
    pub fn lost(&self, sent: u64) -> u64 {
        let missing_below = self.missing.range(..sent).count() as u64;
        missing_below + sent.saturating_sub(self.next)
    }
}

/// Exactly-once over competing consumers: one bit per message per producer.
#[derive(Clone, Debug, Default)]
pub struct SeenSet {
    words: Vec<u64>,
    /// First-time deliveries.
    pub unique: u64,
    /// Deliveries of a message already seen.
    pub duplicates: u64,
}

impl SeenSet {
    /// Records `seq`; `true` if it is new.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        if self.words[word] & mask != 0 {
            self.duplicates += 1;
            false
        } else {
            self.words[word] |= mask;
            self.unique += 1;
            true
        }
    }

    /// Folds another consumer's set in; a message both saw counts as a duplicate.
    pub fn merge(&mut self, other: &SeenSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            let both = (*mine & *theirs).count_ones() as u64;
            self.duplicates += both;
            self.unique += (*theirs).count_ones() as u64 - both;
            *mine |= *theirs;
        }
        self.duplicates += other.duplicates;
    }

    /// Messages among `0..sent` never seen.
    pub fn lost(&self, sent: u64) -> u64 {
        let seen_below: u64 = (0..sent)
            .step_by(64)
            .map(|start| {
                let word = self.words.get((start / 64) as usize).copied().unwrap_or(0);
                let valid = (sent - start).min(64);
                let mask = if valid == 64 {
                    u64::MAX
                } else {
                    (1u64 << valid) - 1
                };
                (word & mask).count_ones() as u64
            })
            .sum();
        sent - seen_below
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_clean() {
        let mut track = SeqTrack::default();
        (0..10).for_each(|seq| track.record(seq));
        assert_eq!(
            (track.unique, track.duplicates, track.out_of_order),
            (10, 0, 0)
        );
        assert_eq!(track.lost(10), 0);
        assert_eq!(
            track.lost(12),
            2,
            "two sent after the last one seen never came"
        );
    }

    #[test]
    fn detects_gap_duplicate_and_reordering() {
        let mut track = SeqTrack::default();
        // 0 1 3 2 2 5 6 : 4 lost, the second 2 a duplicate, 2 late (after 3)
        for seq in [0, 1, 3, 2, 2, 5, 6] {
            track.record(seq);
        }
        assert_eq!(track.unique, 6);
        assert_eq!(track.duplicates, 1);
        assert_eq!(track.out_of_order, 1);
        assert_eq!(track.lost(7), 1);
    }

    #[test]
    fn seen_set_counts_duplicates_across_consumers() {
        let mut a = SeenSet::default();
        let mut b = SeenSet::default();
        for seq in [0, 1, 2, 70] {
            assert!(a.insert(seq));
        }
        assert!(!a.insert(1));
        for seq in [3, 2, 71] {
            b.insert(seq);
        }
        a.merge(&b);
        assert_eq!(a.duplicates, 2, "1 twice at a, 2 at both");
        assert_eq!(a.unique, 6);
        assert_eq!(a.lost(72), 72 - 6);
        assert_eq!(a.lost(3), 0);
    }
}
