//! The index against a sorted-set model.

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    Remove(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            4 => (0u64..60, 0u64..5_000).prop_map(|(c, i)| Op::Insert(c, i)),
            1 => any::<usize>().prop_map(Op::Remove),
        ],
        0..1_500,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn index_matches_a_sorted_set(ops in ops(), probes in prop::collection::vec((0u64..64, any::<[u8; 2]>()), 8)) {
        let mut ix = ReconIndex::new();
        let mut model = BTreeSet::new();
        for op in ops {
            match op {
                Op::Insert(c, i) => {
                    let k = ReconKey::new(c, id(i));
                    prop_assert_eq!(ix.insert(c, k.id), model.insert(k));
                }
                Op::Remove(n) => {
                    let k = model.iter().nth(n % model.len().max(1)).copied()
                        .unwrap_or(ReconKey::new(1, id(1)));
                    prop_assert_eq!(ix.remove(k.clock, k.id), model.remove(&k));
                }
            }
        }
        ix.check();
        prop_assert_eq!(ix.len(), model.len());
        let bulk = ReconIndex::from_keys(model.iter().rev().copied().collect());
        bulk.check();
        prop_assert_eq!(bulk.total(), ix.total());
        prop_assert_eq!(bulk.iter().collect::<Vec<_>>(), ix.iter().collect::<Vec<_>>());
        let keys: Vec<ReconKey> = model.iter().copied().collect();
        prop_assert_eq!(ix.iter().collect::<Vec<_>>(), keys.clone());
        for (r, k) in keys.iter().enumerate() {
            prop_assert_eq!(ix.get(r), Some(*k));
            prop_assert!(ix.contains(k.clock, &k.id));
        }
        // Ranges between probe bounds: count, sum and items agree with the model.
        let bound = |(c, p): (u64, [u8; 2])| {
            let mut raw = [0u8; 32];
            raw[..2].copy_from_slice(&p);
            Bound::At(ReconKey::new(c, EventId(raw)))
        };
        let mut bounds: Vec<Bound> = probes.into_iter().map(bound).collect();
        bounds.push(Bound::MIN);
        bounds.push(Bound::End);
        for lo in &bounds {
            for hi in &bounds {
                let inside: Vec<ReconKey> = keys.iter().copied()
                    .filter(|k| lo.is_at_or_below(k) && hi.is_above(k)).collect();
                let mut sum = ItemSum::ZERO;
                for k in &inside {
                    sum.add(&ItemSum::of(&k.id));
                }
                let s = ix.summary(lo, hi);
                prop_assert_eq!(s, RangeSummary { count: inside.len() as u64, sum });
                prop_assert_eq!(ix.range(lo, hi).collect::<Vec<_>>(), inside);
            }
        }
    }
}

#[test]
fn appends_fill_leaves_and_removal_empties() {
    let mut ix = ReconIndex::new();
    for i in 0..20_000 {
        assert!(ix.insert(i / 3, id(i)));
    }
    ix.check();
    let per_item = ix.heap_bytes() as f64 / ix.len() as f64;
    assert!(per_item < 56.0, "{per_item} B/item");
    for i in 0..20_000 {
        assert!(ix.remove(i / 3, id(i)));
    }
    ix.check();
    assert!(ix.is_empty());
    assert_eq!(ix.total(), RangeSummary::default());
    assert!(ix.insert(5, id(5)));
    ix.check();
}
