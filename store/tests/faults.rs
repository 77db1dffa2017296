//! Fault injection on the storage trait: rotation, torn and short writes, flipped bits, fsync
//! failures, garbage files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use ate_store::{
    AppendError, Backend, FaultBackend, FrameProblem, HeaderProblem, MemBackend, OpenError,
    Options, SyncError, SyncPolicy, segment_name,
};
use common::{append_range, chain, frame_offset, open, opts, payload};

fn fault() -> (FaultBackend, Arc<dyn Backend>) {
    let f = FaultBackend::new();
    let b: Arc<dyn Backend> = Arc::new(f.clone());
    (f, b)
}

#[test]
fn round_trip_across_rotation_and_reopen_appends_after_tail() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let options = opts(SyncPolicy::Always);
    let (mut log, rec, seen) = open(&backend, chain(1), &options).unwrap();
    assert!(rec.created);
    assert!(seen.is_empty());
    let first = append_range(&mut log, 0..200, 7);
    assert_eq!(log.frames(), 200);
    assert_eq!(log.durable_frames(), 200);
    drop(log);

    let (mut log, rec, seen) = open(&backend, chain(1), &options).unwrap();
    assert_eq!(seen, first);
    assert!(rec.segments > 10, "segments: {}", rec.segments);
    assert_eq!(rec.frames, 200);
    assert_eq!(rec.torn_tail, None);
    let second = append_range(&mut log, 200..260, 5);
    drop(log);

    let (_, rec, seen) = open(&backend, chain(1), &options).unwrap();
    let all: Vec<Vec<u8>> = first.into_iter().chain(second).collect();
    assert_eq!(seen, all);
    // Segments are contiguous and every one but the last is within the size bound.
    let names = backend.list(&chain(1).to_string()).unwrap();
    assert_eq!(names.len() as u32, rec.segments);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(name, &segment_name(i as u32));
        let len = backend.file_len(&chain(1).to_string(), name).unwrap();
        assert!(len <= options.segment_size_bytes, "{name} is {len} bytes");
    }
}

#[test]
fn torn_write_at_every_byte_of_the_last_frame() {
    let dir = chain(2).to_string();
    let last = payload(4);
    let frame_len = 8 + last.len();
    for keep in 0..=frame_len {
        let (f, backend) = fault();
        let (mut log, _, _) = open(&backend, chain(2), &opts(SyncPolicy::Never)).unwrap();
        let before = append_range(&mut log, 0..4, 4);
        log.sync().unwrap();
        let _ = log.append(0, &[&last]).unwrap();
        assert_eq!(f.unsynced_len(&dir, "00000000.log"), frame_len);
        drop(log);
        f.crash_tearing(keep);

        let (mut log, rec, seen) = open(&backend, chain(2), &opts(SyncPolicy::Always)).unwrap();
        if keep == frame_len {
            assert_eq!(seen.len(), 5, "keep {keep}");
            assert_eq!(rec.torn_tail, None);
        } else {
            assert_eq!(seen, before, "keep {keep}");
            let torn = rec.torn_tail.as_ref().map(|t| (t.offset, t.bytes_cut));
            let expected = (keep > 0).then_some((frame_offset(&before, 4), keep as u64));
            assert_eq!(torn, expected, "keep {keep}");
        }
        // The next append lands right after the surviving frames.
        let _ = log.append(0, &[b"next"]).unwrap();
        drop(log);
        let (_, _, seen2) = open(&backend, chain(2), &opts(SyncPolicy::Always)).unwrap();
        assert_eq!(seen2.len(), seen.len() + 1);
        assert_eq!(seen2.last().map(Vec::as_slice), Some(&b"next"[..]));
    }
}

#[test]
fn short_write_fails_the_append_poisons_the_log_and_is_cut_on_reopen() {
    for keep in [0, 3, 8, 50] {
        let (f, backend) = fault();
        let (mut log, _, _) = open(&backend, chain(3), &opts(SyncPolicy::Always)).unwrap();
        let before = append_range(&mut log, 0..3, 3);
        f.short_next_write(keep);
        let big = vec![7u8; 100];
        let err = log.append(0, &[&big, &big]).unwrap_err();
        assert!(matches!(err, AppendError::Write { .. }), "{err}");
        assert_eq!(log.durable_frames(), 3);
        assert!(log.poisoned().is_some());
        let again = log.append(0, &[b"x"]).unwrap_err();
        assert!(matches!(again, AppendError::Poisoned { .. }), "{again}");
        assert!(matches!(log.sync(), Err(SyncError::Poisoned { .. })));
        drop(log);
        // No crash: the partial frame is still there and is cut as a torn tail.
        let (_, rec, seen) = open(&backend, chain(3), &opts(SyncPolicy::Always)).unwrap();
        assert_eq!(seen, before);
        assert_eq!(
            rec.torn_tail.map(|t| t.bytes_cut),
            (keep > 0).then_some(keep as u64)
        );
    }
}

/// Writes 10 frames to one segment and returns them.
fn ten_frames(backend: &Arc<dyn Backend>) -> Vec<Vec<u8>> {
    let (mut log, _, _) = open(backend, chain(4), &Options::default()).unwrap();
    append_range(&mut log, 0..10, 10)
}

#[test]
fn flipped_bit_mid_file_refuses_to_open_then_repair_cuts_there() {
    let (f, backend) = fault();
    let payloads = ten_frames(&backend);
    let dir = chain(4).to_string();
    let at = frame_offset(&payloads, 3);
    assert!(f.flip_bit(&dir, "00000000.log", at + 8 + 1, 5));

    let err = open(&backend, chain(4), &Options::default()).unwrap_err();
    match &err {
        OpenError::Corrupt {
            segment,
            offset,
            problem,
            frames_after,
            frames_after_exact,
            ..
        } => {
            assert_eq!(segment, "00000000.log");
            assert_eq!(*offset, at);
            assert!(matches!(problem, FrameProblem::Checksum { .. }));
            assert_eq!((*frames_after, *frames_after_exact), (6, true));
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("offset {at}")) && msg.contains("--repair"),
        "{msg}"
    );
    assert!(msg.contains("6 later frames"), "{msg}");

    let repair = Options {
        repair: true,
        ..Options::default()
    };
    let (mut log, rec, seen) = open(&backend, chain(4), &repair).unwrap();
    assert_eq!(seen, payloads[..3]);
    let repaired = rec.repaired.expect("repair report");
    assert_eq!((repaired.offset, repaired.frames_dropped), (at, 6));
    let _ = log.append(0, &[b"after repair"]).unwrap();
    drop(log);
    let (_, _, seen) = open(&backend, chain(4), &Options::default()).unwrap();
    assert_eq!(seen.len(), 4);
}

#[test]
fn corrupt_length_prefix_mid_file_is_not_mistaken_for_a_torn_tail() {
    let (f, backend) = fault();
    let payloads = ten_frames(&backend);
    let dir = chain(4).to_string();
    // Bit 30 of frame 5's length: the frame now claims ~1 GiB, past the limit and the file end.
    let at = frame_offset(&payloads, 5);
    assert!(f.flip_bit(&dir, "00000000.log", at + 3, 6));
    let err = open(&backend, chain(4), &Options::default()).unwrap_err();
    assert!(
        matches!(err, OpenError::Corrupt { offset, frames_after: 4, problem: FrameProblem::TooLong { .. }, .. } if offset == at),
        "{err}"
    );
}

#[test]
fn corruption_in_an_earlier_segment_is_never_a_tail() {
    let (f, backend) = fault();
    let options = opts(SyncPolicy::Always);
    let (mut log, _, _) = open(&backend, chain(5), &options).unwrap();
    let _ = append_range(&mut log, 0..40, 1);
    drop(log);
    let dir = chain(5).to_string();
    // Damage the last byte of segment 0 (inside its last frame).
    let len = backend.file_len(&dir, "00000000.log").unwrap();
    assert!(f.flip_bit(&dir, "00000000.log", len - 1, 0));
    let err = open(&backend, chain(5), &options).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { ref segment, .. } if segment == "00000000.log"));
    let repair = Options {
        repair: true,
        ..options
    };
    let (_, rec, seen) = open(&backend, chain(5), &repair).unwrap();
    let repaired = rec.repaired.unwrap();
    assert!(!repaired.segments_removed.is_empty());
    assert_eq!(seen.len() as u64 + repaired.frames_dropped + 1, 40);
    assert_eq!(backend.list(&dir).unwrap(), vec!["00000000.log".to_owned()]);
}

#[test]
fn fsync_failure_under_always_is_an_error_and_the_frame_is_lost_at_a_crash() {
    let (f, backend) = fault();
    let (mut log, _, _) = open(&backend, chain(6), &opts(SyncPolicy::Always)).unwrap();
    let before = append_range(&mut log, 0..3, 1);
    f.fail_next_syncs(1);
    let err = log.append(0, &[b"never acknowledged"]).unwrap_err();
    assert!(matches!(err, AppendError::Sync { .. }), "{err}");
    assert!(err.to_string().contains("not durable"));
    assert_eq!(log.durable_frames(), 3);
    assert!(log.poisoned().is_some());
    // Even though the next fsync would succeed, the log refuses until reopened.
    let again = log.append(0, &[b"later"]).unwrap_err();
    assert!(matches!(again, AppendError::Poisoned { .. }));
    drop(log);
    f.crash();
    let (_, rec, seen) = open(&backend, chain(6), &opts(SyncPolicy::Always)).unwrap();
    assert_eq!(seen, before);
    assert_eq!(rec.frames, 3);
}

#[test]
fn batch_policy_reports_deadlines_and_fsync_failure() {
    let (f, backend) = fault();
    let policy = SyncPolicy::Batch { max_delay_ms: 5 };
    let (mut log, _, _) = open(&backend, chain(7), &opts(policy)).unwrap();
    assert_eq!(log.sync_deadline_ms(), None);
    let a = log.append(100, &[b"one"]).unwrap();
    assert!(!a.durable);
    let _ = log.append(103, &[b"two"]).unwrap();
    assert_eq!(log.sync_deadline_ms(), Some(105));
    assert!(!log.needs_sync(104));
    assert!(log.needs_sync(105));
    assert_eq!(log.sync().unwrap(), 2);
    assert_eq!(log.sync_deadline_ms(), None);
    let _ = log.append(200, &[b"three"]).unwrap();
    f.fail_next_syncs(1);
    assert!(matches!(log.sync(), Err(SyncError::Sync { .. })));
    assert_eq!(log.durable_frames(), 2);
    assert!(matches!(
        log.append(201, &[b"four"]),
        Err(AppendError::Poisoned { .. })
    ));
    drop(log);
    f.crash();
    let (_, _, seen) = open(&backend, chain(7), &opts(policy)).unwrap();
    assert_eq!(seen, vec![b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn invalid_payloads_are_refused_before_writing() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let options = Options {
        max_payload_bytes: 16,
        ..Options::default()
    };
    let (mut log, _, _) = open(&backend, chain(8), &options).unwrap();
    let e = log.append(0, &[b"ok", b""]).unwrap_err();
    assert!(matches!(e, AppendError::EmptyPayload { index: 1 }));
    let e = log.append(0, &[&[1u8; 17]]).unwrap_err();
    assert!(matches!(
        e,
        AppendError::TooLarge {
            len: 17,
            limit: 16,
            ..
        }
    ));
    assert_eq!(log.frames(), 0);
    assert!(log.poisoned().is_none());
    let bad = Options {
        segment_size_bytes: 10,
        ..Options::default()
    };
    assert!(matches!(
        open(&backend, chain(8), &bad),
        Err(OpenError::Options(_))
    ));
}

#[test]
fn garbage_wrong_magic_other_chain_and_short_files_are_typed_errors() {
    let dir = chain(9).to_string();
    let segment = segment_name(0);
    type Check = fn(&HeaderProblem) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (vec![0xAB; 500], |p| matches!(p, HeaderProblem::BadMagic)),
        (b"ATELOG1\0".repeat(10), |p| {
            matches!(p, HeaderProblem::BadVersion(_))
        }),
    ];
    for (bytes, check) in cases {
        let mem = MemBackend::new();
        mem.put_file(&dir, &segment, bytes);
        let backend: Arc<dyn Backend> = Arc::new(mem);
        let err = open(&backend, chain(9), &Options::default()).unwrap_err();
        assert!(
            matches!(&err, OpenError::BadSegment { problem, .. } if check(problem)),
            "{err}"
        );
        assert!(err.to_string().contains("move the file out"), "{err}");
    }
    // A segment of another chain, copied into this chain's directory.
    let mem = MemBackend::new();
    let backend: Arc<dyn Backend> = Arc::new(mem.clone());
    drop(open(&backend, chain(10), &Options::default()).unwrap());
    let other = mem.file(&chain(10).to_string(), &segment).unwrap();
    mem.put_file(&dir, &segment, other.clone());
    let err = open(&backend, chain(9), &Options::default()).unwrap_err();
    assert!(matches!(
        err,
        OpenError::BadSegment {
            problem: HeaderProblem::OtherChain { .. },
            ..
        }
    ));
    // A short file before the newest segment is an error; as the newest it is a torn creation.
    mem.put_file(&dir, &segment, vec![1, 2, 3]);
    mem.put_file(&dir, &segment_name(1), vec![]);
    let err = open(&backend, chain(9), &Options::default()).unwrap_err();
    assert!(matches!(
        err,
        OpenError::BadSegment {
            problem: HeaderProblem::TooShort { .. },
            ..
        }
    ));
}

#[test]
fn absurd_length_prefixes_are_checked_before_allocating() {
    let dir = chain(11).to_string();
    let (f, backend) = fault();
    let payloads = ten_frames_for(&backend, 11);
    let mut bytes = f.file(&dir, "00000000.log").unwrap();
    // At the tail: nothing valid follows, so it is cut like a torn write.
    bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 7, 8]);
    f.put_file(&dir, "00000000.log", bytes.clone());
    let (_, rec, seen) = open(&backend, chain(11), &Options::default()).unwrap();
    assert_eq!(seen, payloads);
    let tail = rec.torn_tail.unwrap();
    assert_eq!(tail.bytes_cut, 12);
    assert!(matches!(
        tail.problem,
        FrameProblem::TooLong { len: u32::MAX, .. }
    ));
    // In the middle: refused with the offset.
    let at = frame_offset(&payloads, 2);
    bytes.truncate(bytes.len() - 12);
    bytes[at as usize..at as usize + 4].copy_from_slice(&[0xFF; 4]);
    f.put_file(&dir, "00000000.log", bytes);
    let err = open(&backend, chain(11), &Options::default()).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { offset, frames_after: 7, .. } if offset == at));
}

fn ten_frames_for(backend: &Arc<dyn Backend>, n: u8) -> Vec<Vec<u8>> {
    let (mut log, _, _) = open(backend, chain(n), &Options::default()).unwrap();
    append_range(&mut log, 0..10, 10)
}

#[test]
fn missing_segment_refuses_then_repair_drops_later_segments() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let options = opts(SyncPolicy::Always);
    let (mut log, _, _) = open(&backend, chain(12), &options).unwrap();
    let _ = append_range(&mut log, 0..60, 3);
    drop(log);
    let dir = chain(12).to_string();
    backend.remove(&dir, &segment_name(2)).unwrap();
    let err = open(&backend, chain(12), &options).unwrap_err();
    assert!(
        matches!(err, OpenError::MissingSegment { ref missing, .. } if missing == "00000002.log")
    );
    let repair = Options {
        repair: true,
        ..options.clone()
    };
    let (_, rec, seen) = open(&backend, chain(12), &repair).unwrap();
    let repaired = rec.repaired.unwrap();
    assert!(repaired.problem.is_none());
    assert!(repaired.frames_dropped > 0);
    assert_eq!(rec.segments, 2);
    assert_eq!(seen[..], append_payloads(0..seen.len() as u64)[..]);
    let reopened = open(&backend, chain(12), &options).unwrap();
    assert_eq!(reopened.2.len(), seen.len());
}

fn append_payloads(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(payload).collect()
}

#[test]
fn a_crash_while_creating_a_segment_leaves_a_partial_file_that_is_removed() {
    let dir = chain(13).to_string();
    let (f, backend) = fault();
    let payloads = ten_frames_for(&backend, 13);
    f.put_file(&dir, &segment_name(1), b"ATELOG".to_vec());
    let (mut log, rec, seen) = open(&backend, chain(13), &Options::default()).unwrap();
    assert_eq!(seen, payloads);
    assert_eq!(rec.removed_partial_segment.as_deref(), Some("00000001.log"));
    let _ = log.append(0, &[b"x"]).unwrap();
    assert_eq!(backend.list(&dir).unwrap(), vec!["00000000.log".to_owned()]);
}

#[test]
fn rewrite_replaces_the_content_durably_and_removes_old_segments() {
    let (f, backend) = fault();
    let options = opts(SyncPolicy::Always);
    let (mut log, _, _) = open(&backend, chain(3), &options).unwrap();
    append_range(&mut log, 0..200, 7);
    let before = backend.list(&chain(3).to_string()).unwrap();
    assert!(before.len() > 5);
    // The "compacted" copy: every other payload, shortened.
    let shorter: Vec<Vec<u8>> = (0..200u64)
        .step_by(2)
        .map(|i| payload(i).iter().take(8).copied().chain([0xc0]).collect())
        .collect();
    let refs: Vec<&[u8]> = shorter.iter().map(Vec::as_slice).collect();
    let removed = log.rewrite(&refs).unwrap();
    assert_eq!(removed as usize, before.len());
    assert_eq!(log.frames(), 100);
    assert_eq!(log.durable_frames(), 100);
    // Appends continue after the new copy.
    let extra = payload(999);
    let _ = log.append(0, &[&extra]).unwrap();
    drop(log);
    // Even a power cut right now keeps exactly the new copy and the append.
    f.crash();
    let (_, rec, seen) = open(&backend, chain(3), &options).unwrap();
    let mut want = shorter.clone();
    want.push(extra);
    assert_eq!(seen, want);
    assert_eq!(rec.frames, 101);
    let after = backend.list(&chain(3).to_string()).unwrap();
    assert!(
        after
            .iter()
            .all(|n| !before[..before.len() - 1].contains(n)),
        "old segments are gone: {after:?}"
    );
}
