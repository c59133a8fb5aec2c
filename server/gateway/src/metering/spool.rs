//! Usage records kept on disk while the database cannot take them: JSON lines, appended, bounded in size, and
//! replayed when the database answers again.
//!
//! Replay first renames the file (under the lock, so appends go to a fresh file) and deletes the renamed file only
//! once every record in it is stored. A crash in between replays it again on the next start; inserts skip ids
//! already stored, so nothing is counted twice. Replay reads the file back a bounded chunk at a time
//! ([`Replay::next_chunk`]), never the whole (up to `max_bytes`) file at once.
//!
//! The files are created readable by their owner only (0600: they name tenants, keys and models). A line cut by
//! a crash mid-write is ended before the next append, so the records after it start on lines of their own; on
//! replay it is skipped with a warning, and reading goes on.

use super::UsageRecord;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A line longer than this is not a record of ours: skipped without being held in memory.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// At most this many bytes of records in one replay chunk (besides the chunk's record count).
const MAX_CHUNK_BYTES: usize = 4 << 20;

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

/// Opens (creating it readable and writable by its owner only) a spool file for appending, and for reading its
/// last byte.
fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true).read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Takes the permissions of an existing spool file (one written by an earlier version) down to 0600.
fn restrict(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if path.exists() {
            if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(0o600)) {
                tracing::warn!(error = %e, path = %path.display(), "cannot make the usage spool private");
            }
        }
    }
}

/// Whether the file's last byte ends a line (an empty file does): otherwise a crash cut its last line.
fn ends_with_newline(file: &mut File) -> std::io::Result<bool> {
    if file.metadata()?.len() == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

impl Spool {
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64) -> Self {
        let path = path.into();
        let replay_path = path.with_extension("replaying");
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        restrict(&path);
        restrict(&replay_path);
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
            if *bytes + (text.len() + line.len() + 2) as u64 > self.max_bytes {
                break;
            }
            text.extend_from_slice(&line);
            text.push(b'\n');
            kept += 1;
        }
        if !text.is_empty() {
            let written = open_private(&self.path).and_then(|mut f| {
                // A line cut by a crash (or a failed write) is ended first, so it cannot swallow these records.
                if !ends_with_newline(&mut f)? {
                    tracing::warn!(path = %self.path.display(), "the usage spool ends with a cut line; it will be skipped on replay");
                    text.insert(0, b'\n');
                }
                f.write_all(&text)?;
                f.sync_data()
            });
            match written {
                Ok(()) => *bytes += text.len() as u64,
                Err(e) => {
                    tracing::error!(error = %e, path = %self.path.display(), "cannot write the usage spool");
                    // Part of it may be on disk: count what is, so the bound holds.
                    *bytes = file_len(&self.path) + file_len(&self.replay_path);
                    kept = 0;
                }
            }
        }
        Appended {
            kept,
            dropped: records.len() - kept,
        }
    }

    /// Moves the spooled records aside for replay (joining those of an unfinished earlier replay) and returns a
    /// reader over them. Call [`Spool::replayed`] once every chunk is stored; until then they stay on disk.
    pub fn take_for_replay(&self) -> Replay {
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
        Replay {
            reader: File::open(&self.replay_path).ok().map(BufReader::new),
            line: Vec::new(),
            skipped: 0,
        }
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

/// The spool set aside for replay, read back in bounded chunks.
pub struct Replay {
    reader: Option<BufReader<File>>,
    line: Vec<u8>,
    /// Unreadable lines skipped so far.
    pub skipped: usize,
}

impl Replay {
    /// The next records: at most `max` of them and about [`MAX_CHUNK_BYTES`]; empty once the file is read.
    /// Unreadable lines (cut by a crash, or not ours) are skipped with a warning and reading goes on.
    pub fn next_chunk(&mut self, max: usize) -> Vec<UsageRecord> {
        let mut out = Vec::new();
        let mut chunk_bytes = 0;
        while out.len() < max.max(1) && chunk_bytes < MAX_CHUNK_BYTES {
            let Some(reader) = self.reader.as_mut() else {
                break;
            };
            match read_line_bounded(reader, &mut self.line, MAX_LINE_BYTES) {
                Ok(None) => {
                    self.reader = None;
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the usage spool; the rest waits for the next replay");
                    self.reader = None;
                    break;
                }
                Ok(Some(complete)) => {
                    let text = self.line.trim_ascii();
                    if text.is_empty() {
                        continue;
                    }
                    chunk_bytes += text.len();
                    match serde_json::from_slice::<UsageRecord>(text)
                        .ok()
                        .filter(|_| complete)
                    {
                        Some(r) => out.push(r),
                        // A line cut by a crash mid-write: it was never acknowledged as stored anywhere else either,
                        // but it cannot be read back, so it is reported and skipped.
                        None => {
                            self.skipped += 1;
                            tracing::warn!(
                                bytes = text.len(),
                                "unreadable line in the usage spool (cut by a crash?), skipped"
                            );
                        }
                    }
                }
            }
        }
        out
    }
}

/// Reads one line into `buf` (without its newline), keeping at most `max` bytes of it. None at the end of the
/// file; Some(false) for a line that was longer than `max` (the rest of it is read past, not kept).
fn read_line_bounded(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut complete = true;
    let mut read_any = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(read_any.then_some(complete));
        }
        read_any = true;
        let (part, found) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], Some(i)),
            None => (available, None),
        };
        let room = max.saturating_sub(buf.len());
        if part.len() > room {
            complete = false;
        }
        buf.extend_from_slice(&part[..part.len().min(room)]);
        let used = found.map_or(part.len(), |i| i + 1);
        reader.consume(used);
        if found.is_some() {
            return Ok(Some(complete));
        }
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
        let taken = all(&spool);
        assert_eq!(ids(&taken), ["a", "b"]);
        // Appends during a replay go to a fresh file and are not lost when the replay completes.
        spool.append(&[record("c")]);
        // Not acknowledged: a second take returns the same records again.
        assert_eq!(all(&spool).len(), 2);
        spool.replayed();
        assert_eq!(ids(&all(&spool)), ["c"]);
        spool.replayed();
        assert!(spool.is_empty());
        assert!(all(&spool).is_empty());
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

    fn all(spool: &Spool) -> Vec<UsageRecord> {
        let mut replay = spool.take_for_replay();
        let mut out = Vec::new();
        loop {
            let chunk = replay.next_chunk(1000);
            if chunk.is_empty() {
                return out;
            }
            out.extend(chunk);
        }
    }

    fn ids(records: &[UsageRecord]) -> Vec<&str> {
        records.iter().map(|r| r.id.as_str()).collect()
    }

    fn cut(path: &Path) {
        OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap()
            .write_all(b"{\"id\":\"b\",\"tena")
            .unwrap();
    }

    #[test]
    fn a_cut_last_line_is_skipped_and_the_records_after_it_are_kept() {
        // Cut by a crash, then the server starts again and appends.
        let path = temp_path("torn");
        let spool = Spool::open(&path, 1 << 20);
        spool.append(&[record("a")]);
        cut(&path);
        let spool = Spool::open(&path, 1 << 20);
        spool.append(&[record("c"), record("d")]);
        let mut replay = spool.take_for_replay();
        assert_eq!(ids(&replay.next_chunk(100)), ["a", "c", "d"]);
        assert_eq!(replay.skipped, 1);
        // Cut while running (a failed write), then appended to again: the same.
        let path = temp_path("torn-live");
        let spool = Spool::open(&path, 1 << 20);
        spool.append(&[record("a")]);
        cut(&path);
        spool.append(&[record("e")]);
        assert_eq!(ids(&all(&spool)), ["a", "e"]);
        // Garbage that is not even UTF-8, and a line far too long, do not stop the reading either.
        let path = temp_path("garbage");
        let spool = Spool::open(&path, 1 << 30);
        spool.append(&[record("a")]);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"\xff\xfe{\n").unwrap();
        f.write_all(&vec![b'x'; 3 * MAX_LINE_BYTES]).unwrap();
        f.write_all(b"\n").unwrap();
        spool.append(&[record("z")]);
        assert_eq!(ids(&all(&spool)), ["a", "z"]);
    }

    #[test]
    fn replay_reads_bounded_chunks() {
        let path = temp_path("chunks");
        let spool = Spool::open(&path, 1 << 30);
        let records: Vec<UsageRecord> = (0..2500).map(|i| record(&format!("r{i}"))).collect();
        assert_eq!(spool.append(&records).kept, 2500);
        let mut replay = spool.take_for_replay();
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let c = replay.next_chunk(1000);
            (!c.is_empty()).then_some(c.len())
        })
        .collect();
        assert_eq!(sizes, [1000, 1000, 500]);
    }

    #[cfg(unix)]
    #[test]
    fn the_spool_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_path("mode");
        let spool = Spool::open(&path, 1 << 20);
        spool.append(&[record("a")]);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        // A file left readable by an earlier version is made private when opened.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let _ = Spool::open(&path, 1 << 20);
        assert_eq!(mode(&path), 0o600);
        let _ = spool.take_for_replay();
        assert_eq!(mode(&path.with_extension("replaying")), 0o600);
    }
}
