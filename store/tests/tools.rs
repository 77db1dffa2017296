//! Backup, restore, dump, the filesystem backend, and random bytes fed to the reader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Cursor;
use std::sync::Arc;

use ate_store::{
    Backend, BackupError, FsBackend, Log, MemBackend, NoProgress, Options, RestoreError,
    SyncPolicy, backup, chains, dump, restore,
};
use common::{append_range, chain, frame_offset, open, opts, payload};
use proptest::prelude::*;

fn mem() -> (MemBackend, Arc<dyn Backend>) {
    let m = MemBackend::new();
    let b: Arc<dyn Backend> = Arc::new(m.clone());
    (m, b)
}

fn backup_of(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut calls = Vec::new();
    let summary = log
        .backup(&mut out, &mut |d: u64, t: u64| calls.push((d, t)))
        .unwrap();
    assert_eq!(summary.frames, log.frames());
    assert_eq!(summary.bytes, out.len() as u64);
    let (done, total) = *calls.last().unwrap();
    assert_eq!(done, total, "progress ends complete");
    out
}

#[test]
fn backup_restore_round_trip_into_another_backend() {
    let (_, source) = mem();
    let (mut log, _, _) = open(&source, chain(1), &opts(SyncPolicy::Always)).unwrap();
    let payloads = append_range(&mut log, 0..150, 8);
    let file = backup_of(&log);

    let target_dir = tempfile::tempdir().unwrap();
    let target: Arc<dyn Backend> = Arc::new(FsBackend::new(target_dir.path()));
    let restored = restore(
        &mut Cursor::new(&file),
        Arc::clone(&target),
        &Options::default(),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(restored, chain(1));
    assert_eq!(chains(&*target).unwrap(), vec![chain(1)]);
    let (_, rec, seen) = open(&target, chain(1), &Options::default()).unwrap();
    assert_eq!(seen, payloads);
    assert_eq!(rec.torn_tail, None);

    // Restoring again over the existing log is refused.
    let again = restore(
        &mut Cursor::new(&file),
        target,
        &Options::default(),
        &mut NoProgress,
    );
    assert!(matches!(again, Err(RestoreError::AlreadyExists { .. })));
}

#[test]
fn backup_is_consistent_while_appends_continue() {
    let (m, source) = mem();
    let (mut log, _, _) = open(&source, chain(2), &opts(SyncPolicy::Always)).unwrap();
    let payloads = append_range(&mut log, 0..40, 4);
    let point = log.backup_point();
    // Appends after the point (including rotations) do not leak into the backup.
    let _ = append_range(&mut log, 40..80, 4);
    let mut out = Vec::new();
    let max = log.options().max_payload_bytes;
    let summary = backup(&*source, &point, max, &mut out, &mut NoProgress).unwrap();
    assert_eq!(summary.frames, 40);
    let (_, target) = mem();
    restore(
        &mut Cursor::new(&out),
        Arc::clone(&target),
        &Options::default(),
        &mut NoProgress,
    )
    .unwrap();
    let (_, _, seen) = open(&target, chain(2), &Options::default()).unwrap();
    assert_eq!(seen, payloads);
    // A damaged frame inside the range makes the backup fail rather than copy garbage.
    let dir = chain(2).to_string();
    let mut seg = m.file(&dir, "00000000.log").unwrap();
    let at = frame_offset(&payloads, 1) as usize + 9;
    seg[at] ^= 1;
    m.put_file(&dir, "00000000.log", seg);
    let err = backup(&*source, &point, max, &mut Vec::new(), &mut NoProgress).unwrap_err();
    assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
}

#[test]
fn a_corrupted_backup_is_refused_and_nothing_is_restored() {
    let (_, source) = mem();
    let (mut log, _, _) = open(&source, chain(3), &opts(SyncPolicy::Always)).unwrap();
    let _ = append_range(&mut log, 0..30, 5);
    let file = backup_of(&log);
    // Every byte position: a flipped bit anywhere is caught (header, frames, trailer).
    let positions: Vec<usize> = (0..file.len()).step_by(7).chain([file.len() - 1]).collect();
    for &i in &positions {
        let mut bad = file.clone();
        bad[i] ^= 0x10;
        let (m, target) = mem();
        let r = restore(
            &mut Cursor::new(&bad),
            target,
            &Options::default(),
            &mut NoProgress,
        );
        assert!(
            matches!(r, Err(RestoreError::Invalid(_))),
            "byte {i}: {r:?}"
        );
        assert!(
            m.file(&chain(3).to_string(), "00000000.log").is_none(),
            "byte {i}"
        );
    }
    // Truncated and extended copies too.
    for bad in [
        file[..file.len() - 1].to_vec(),
        [file.clone(), vec![0]].concat(),
    ] {
        let (_, target) = mem();
        let r = restore(
            &mut Cursor::new(&bad),
            target,
            &Options::default(),
            &mut NoProgress,
        );
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("nothing was restored"), "{msg}");
    }
}

#[test]
fn dump_shows_every_frame_and_flags_bad_checksums() {
    let (m, backend) = mem();
    let (mut log, _, _) = open(&backend, chain(4), &Options::default()).unwrap();
    let payloads = append_range(&mut log, 0..6, 6);
    drop(log);
    let dir = chain(4).to_string();
    let mut seg = m.file(&dir, "00000000.log").unwrap();
    let at = frame_offset(&payloads, 2);
    seg[at as usize + 8] ^= 0x80;
    m.put_file(&dir, "00000000.log", seg);
    let frames: Vec<_> = dump(&*backend, &chain(4), Options::default().max_payload_bytes)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(frames.len(), 6);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.crc_ok, i != 2, "frame {i}");
        assert_eq!(f.offset, frame_offset(&payloads, i));
        assert_eq!(f.len as usize, payloads[i].len());
        assert_eq!(f.segment, "00000000.log");
        if i != 2 {
            assert_eq!(f.payload, payloads[i]);
        }
    }
}

#[test]
fn filesystem_backend_round_trip_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::new(dir.path()));
    let (mut log, _, _) = open(&backend, chain(5), &opts(SyncPolicy::Always)).unwrap();
    let payloads = append_range(&mut log, 0..100, 10);
    drop(log);
    let mut seen = Vec::new();
    let mut last = (0, 0);
    let (_, rec) = Log::open(
        Arc::clone(&backend),
        chain(5),
        &opts(SyncPolicy::Always),
        &mut |p| seen.push(p.to_vec()),
        &mut |d: u64, t: u64| last = (d, t),
    )
    .unwrap();
    assert_eq!(seen, payloads);
    assert!(rec.segments > 1);
    assert_eq!(last.0, last.1);
    assert!(
        dir.path()
            .join(chain(5).to_string())
            .join("00000000.log")
            .is_file()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Random bytes after a valid header, or instead of it: open and dump return typed results
    /// and never panic; after a successful open the log reopens to the same frames.
    #[test]
    fn random_segment_bytes_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..3000),
        keep_header in any::<bool>(),
        repair in any::<bool>(),
    ) {
        let (m, backend) = mem();
        let dir = chain(6).to_string();
        let mut bytes = Vec::new();
        if keep_header {
            drop(open(&backend, chain(6), &Options::default()).unwrap());
            bytes = m.file(&dir, "00000000.log").unwrap();
        }
        bytes.extend_from_slice(&body);
        m.put_file(&dir, "00000000.log", bytes);
        let max = Options::default().max_payload_bytes;
        let dumped = dump(&*backend, &chain(6), max).unwrap().count();
        prop_assert!(dumped <= 1 + body.len() / 9);
        let options = Options { repair, ..Options::default() };
        if let Ok((mut log, _, seen)) = open(&backend, chain(6), &options) {
            let _ = log.append(0, &[&payload(1)]).unwrap();
            drop(log);
            let (_, rec, again) = open(&backend, chain(6), &Options::default()).unwrap();
            prop_assert_eq!(rec.torn_tail, None);
            prop_assert_eq!(&again[..seen.len()], &seen[..]);
            prop_assert_eq!(again.len(), seen.len() + 1);
        }
    }

    /// Random bytes as a backup, alone or after a valid header: refused, nothing written.
    #[test]
    fn random_backup_bytes_are_refused(
        body in prop::collection::vec(any::<u8>(), 0..3000),
        with_header in any::<bool>(),
    ) {
        let mut bytes = Vec::new();
        if with_header {
            let (_, source) = mem();
            let (mut log, _, _) = open(&source, chain(7), &Options::default()).unwrap();
            let _ = append_range(&mut log, 0..5, 5);
            bytes = backup_of(&log)[..56].to_vec();
        }
        bytes.extend_from_slice(&body);
        let (m, target) = mem();
        let r = restore(&mut Cursor::new(&bytes), target, &Options::default(), &mut NoProgress);
        prop_assert!(matches!(r, Err(RestoreError::Invalid(_))), "{:?}", r);
        prop_assert!(m.file(&chain(7).to_string(), "00000000.log").is_none());
    }
}
