//! ate-sim: the deterministic simulator that drives many `ate-protocol` replicas through a
//! modelled network (DESIGN §9). It arrives with issue #6; this crate holds its place in the
//! workspace so the dependency direction (`sim → protocol`, never `sim → node`) is fixed now.

/// The protocol core the simulator drives.
pub use ate_protocol as protocol;
