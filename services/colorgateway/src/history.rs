//! The recent-colors histogram behind `/color`'s stats.

use std::collections::BTreeMap;

/// How many answers the stats cover, as in the Go original's `colors [1000]string`.
pub(crate) const HISTORY_LEN: usize = 1000;

/// The last [`HISTORY_LEN`] colors in a ring: the 1001st overwrites the first.
#[derive(Debug)]
pub(crate) struct ColorHistory {
    slots: Vec<Option<Vec<u8>>>,
    next: usize,
    counts: BTreeMap<Vec<u8>, u32>,
}

impl Default for ColorHistory {
    fn default() -> Self {
        Self {
            slots: vec![None; HISTORY_LEN],
            next: 0,
            counts: BTreeMap::new(),
        }
    }
}

impl ColorHistory {
    /// Records a color as the teller's bytes: like Go's strings, colors need not be UTF-8.
    pub(crate) fn record(&mut self, color: Vec<u8>) {
        if let Some(evicted) = self.slots[self.next].take()
            && let Some(count) = self.counts.get_mut(&evicted)
        {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&evicted);
            }
        }
        *self.counts.entry(color.clone()).or_default() += 1;
        self.slots[self.next] = Some(color);
        self.next = (self.next + 1) % HISTORY_LEN;
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Each color's share, rounded as the original does: `math.Round(count/total*100)/100`,
    /// halves away from zero. The rounded shares need not add up to 1.
    pub(crate) fn ratios(&self) -> BTreeMap<Vec<u8>, f64> {
        let total = f64::from(self.counts.values().sum::<u32>());
        self.counts
            .iter()
            .map(|(color, count)| {
                let ratio = f64::from(*count) / total;
                (color.clone(), (ratio * 100.0).round() / 100.0)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(entries: &[(&str, usize)]) -> ColorHistory {
        let mut history = ColorHistory::default();
        for (color, times) in entries {
            for _ in 0..*times {
                history.record(color.as_bytes().to_vec());
            }
        }
        history
    }

    #[test]
    fn thirds_round_to_two_decimals() {
        let ratios = history(&[("a", 1), ("b", 2)]).ratios();
        assert_eq!(ratios[b"a".as_slice()], 0.33);
        assert_eq!(ratios[b"b".as_slice()], 0.67);
    }

    #[test]
    fn halves_round_away_from_zero() {
        // 1/8 = 0.125 -> 12.5 -> 13, where rounding half to even would give 0.12.
        assert_eq!(
            history(&[("a", 1), ("b", 7)]).ratios()[b"a".as_slice()],
            0.13
        );
        // 5/1000 = 0.005 -> 0.5 -> 1.
        assert_eq!(
            history(&[("a", 5), ("b", 995)]).ratios()[b"a".as_slice()],
            0.01
        );
        // 1/1000 = 0.001 -> 0.1 -> 0: the color stays listed with a zero share.
        let ratios = history(&[("a", 1), ("b", 999)]).ratios();
        assert_eq!(ratios[b"a".as_slice()], 0.0);
        assert_eq!(ratios[b"b".as_slice()], 1.0);
    }

    #[test]
    fn the_1001st_answer_evicts_the_first() {
        let mut history = history(&[("first", 1), ("x", 999)]);
        assert_eq!(
            history
                .ratios()
                .keys()
                .map(|k| k.as_slice())
                .collect::<Vec<_>>(),
            [b"first".as_slice(), b"x".as_slice()]
        );
        history.record(b"y".to_vec());
        let ratios = history.ratios();
        assert_eq!(
            ratios.keys().map(|k| k.as_slice()).collect::<Vec<_>>(),
            [b"x".as_slice(), b"y".as_slice()]
        );
        assert_eq!(ratios[b"x".as_slice()], 1.0, "999/1000 rounds to 1");
        assert_eq!(ratios[b"y".as_slice()], 0.0);
        // The next 999 answers evict the remaining x's one by one.
        for _ in 0..999 {
            history.record(b"y".to_vec());
        }
        assert_eq!(
            history
                .ratios()
                .keys()
                .map(|k| k.as_slice())
                .collect::<Vec<_>>(),
            [b"y".as_slice()]
        );
    }

    #[test]
    fn clear_empties_everything() {
        let mut history = history(&[("a", 1500)]);
        history.clear();
        assert!(history.ratios().is_empty());
        history.record(b"b".to_vec());
        assert_eq!(history.ratios()[b"b".as_slice()], 1.0);
        assert_eq!(history.ratios().len(), 1);
    }
}
