//! Usage records kept on disk while the database cannot take them: JSON lines, appended, bounded in size, and
//! replayed when the database answers again.
//!
//! Replay first renames the file (under the lock, so appends go to a fresh file) and deletes the renamed file only
//! once every record in it is stored. A crash in between replays it again on the next start; inserts skip ids
//! already stored, so nothing is counted twice.

use super::UsageRecord;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct Spool {
    path: PathBuf,
    replay_path: PathBuf,
    max_bytes: u64,
    /// Bytes in both files; guards appends (file IO happens under it, only on the failure path).
    bytes: Mutex<u64>,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub kept: usize,
    pub dropped: usize,
}

impl Spool {
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64) -> Self {
        let path = path.into();
        let replay_path = path.with_extension("replaying");
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let bytes = file_len(&path) + file_len(&replay_path);
        Self {
            path,
            replay_path,
            max_bytes,
            bytes: Mutex::new(bytes),
        }
    }

    pub fn bytes(&self) -> u64 {
        *self.lock()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes() == 0
    }

    /// Appends records, as many as fit under the size bound; the rest are dropped (and counted by the caller:
    /// losing them is the last resort when the database has been away long enough to fill the bound).
    pub fn append(&self, records: &[UsageRecord]) -> Appended {
        let mut bytes = self.lock();
        let mut text = Vec::new();
        let mut kept = 0;
        for r in records {
            let Ok(line) = serde_json::to_vec(r) else {
                continue;
            };
            if *bytes + (text.len() + line.len() + 1) as u64 > self.max_bytes {
                break;
            }
            text.extend_from_slice(&line);
            text.push(b'\n');
            kept += 1;
        }
        if !text.is_empty() {
            let written = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .and_then(|mut f| {
                    f.write_all(&text)?;
                    f.sync_data()
                });
            match written {
                Ok(()) => *bytes += text.len() as u64,
                Err(e) => {
                    tracing::error!(error = %e, path = %self.path.display(), "cannot write the usage spool");
                    kept = 0;
                }
            }
        }
        Appended {
            kept,
            dropped: records.len() - kept,
        }
    }

    /// Moves the spooled records aside for replay and returns them (with those of an unfinished earlier replay).
    /// Call [`Spool::replayed`] once they are stored; until then they stay on disk.
    pub fn take_for_replay(&self) -> Vec<UsageRecord> {
        {
            // Held for the rename only: appends go to the fresh file meanwhile, and reading the one set aside
            // (only the writer task replays) must not hold up appends for as long as it takes.
            let _held = self.lock();
            if !self.replay_path.exists() && self.path.exists() {
                if let Err(e) = fs::rename(&self.path, &self.replay_path) {
                    tracing::error!(error = %e, "cannot move the usage spool aside for replay");
                }
            }
        }
        let Ok(file) = File::open(&self.replay_path) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| match serde_json::from_str(&line) {
                Ok(r) => Some(r),
                // A line cut by a crash mid-write: it was never acknowledged as stored anywhere else either,
                // but it cannot be read back, so it is reported and skipped.
                Err(e) => {
                    tracing::error!(error = %e, "unreadable line in the usage spool, skipped");
                    None
                }
            })
            .collect()
    }

    /// The records returned by [`Spool::take_for_replay`] are stored: forget them.
    pub fn replayed(&self) {
        let mut bytes = self.lock();
        let len = file_len(&self.replay_path);
        if fs::remove_file(&self.replay_path).is_ok() {
            *bytes = bytes.saturating_sub(len);
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::tests::record;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tg-spool-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir.join("usage.jsonl")
    }

    #[test]
    fn records_survive_a_reopen_and_replay_once() {
        let path = temp_path("reopen");
        let spool = Spool::open(&path, 1 << 20);
        assert_eq!(spool.append(&[record("a"), record("b")]).kept, 2);
        let spool = Spool::open(&path, 1 << 20);
        assert!(!spool.is_empty());
        let taken = spool.take_for_replay();
        assert_eq!(
            taken.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        // Appends during a replay go to a fresh file and are not lost when the replay completes.
        spool.append(&[record("c")]);
        // Not acknowledged: a second take returns the same records again.
        assert_eq!(spool.take_for_replay().len(), 2);
        spool.replayed();
        let next = spool.take_for_replay();
        assert_eq!(
            next.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
        spool.replayed();
        assert!(spool.is_empty());
        assert!(spool.take_for_replay().is_empty());
    }

    #[test]
    fn the_size_bound_holds() {
        let path = temp_path("bound");
        let one = serde_json::to_vec(&record("x")).unwrap().len() as u64 + 1;
        let spool = Spool::open(&path, one * 2 + 1);
        let a = spool.append(&[record("x"), record("y"), record("z")]);
        assert_eq!(
            a,
            Appended {
                kept: 2,
                dropped: 1
            }
        );
        assert!(spool.bytes() <= one * 2 + 1);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let path = temp_path("torn");
        let spool = Spool::open(&path, 1 << 20);
        spool.append(&[record("a")]);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"id\":\"b\",")
            .unwrap();
        assert_eq!(spool.take_for_replay().len(), 1);
    }
}
