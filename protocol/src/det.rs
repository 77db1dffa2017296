//! Hash maps and sets with a fixed-seed hasher. The core has no randomness of its own, so
//! nothing in it may hang on a per-process seed (std's `RandomState`, hashbrown's default):
//! even where the maps are only looked up, a fixed seed keeps every run alike. The keys are
//! event ids and public keys of events that passed their signature check, and every map that
//! grows with a peer's input is bounded elsewhere (the pending buffer's limits), so a known
//! seed gives an attacker nothing worth the grinding.

/// The hasher of every hash map in the core but the DAG's (which is seeded from
/// `Config::hash_seed`).
pub(crate) type Fixed = foldhash::quality::FixedState;

/// A `std` hash map with the fixed hasher; make one with `HashMap::default()`.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, Fixed>;

/// A `std` hash set with the fixed hasher; make one with `HashSet::default()`.
pub(crate) type HashSet<K> = std::collections::HashSet<K, Fixed>;
