//! Where log lines go: formatted on the thread that logs them (tracing-subscriber does that),
//! appended to a buffer in memory, and written to standard error by one thread of their own.
//!
//! So a token request never waits on a `write` to a pipe, a terminal or journald, and the lines
//! of many requests leave in one `write`. No line is dropped: when the reader of standard error
//! stalls and `MAX_PENDING` bytes are waiting, logging blocks until the writer makes room
//! (audit events are not lossy; the bound keeps memory in check). [`Flush`] writes what is
//! pending when the process ends.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Bytes of formatted lines held at most before logging waits for the writer.
pub const MAX_PENDING: usize = 4 << 20;

#[derive(Debug, Default)]
struct Pending {
    lines: Vec<u8>,
    /// The writer holds a batch it has not finished writing.
    writing: bool,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Lines arrived (or the process ends): for the writer.
    arrived: Condvar,
    /// A batch was written: for loggers waiting for room, and for [`Flush::flush`].
    written: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `MakeWriter` of the process's log subscriber.
#[derive(Debug, Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Ends the writer thread after it wrote everything pending; hold it until the process ends.
#[derive(Debug)]
pub struct Flush {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the writer thread on `out` (standard error in the binary).
    pub fn start<W: Write + Send + 'static>(out: W) -> std::io::Result<(Self, Flush)> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let shared = shared.clone();
                move || write_loop(&shared, out)
            })?;
        Ok((
            Self {
                shared: shared.clone(),
            },
            Flush {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

fn write_loop<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        {
            let mut pending = shared.lock();
            pending.writing = false;
            shared.written.notify_all();
            while pending.lines.is_empty() && !pending.closed {
                pending = shared
                    .arrived
                    .wait(pending)
                    .unwrap_or_else(|p| p.into_inner());
            }
            if pending.lines.is_empty() {
                return;
            }
            std::mem::swap(&mut pending.lines, &mut batch);
            pending.writing = true;
            shared.written.notify_all();
        }
        // Nothing to do about a standard error that is gone: the lines are dropped.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        // A burst's buffer is not kept for good.
        batch.shrink_to(64 * 1024);
    }
}

impl Flush {
    /// Waits until every line logged so far is written.
    pub fn flush(&self) {
        let mut pending = self.shared.lock();
        while !pending.lines.is_empty() || pending.writing {
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return;
            }
            pending = self
                .shared
                .written
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.arrived.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for &LogWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.lock();
        // Room for the line, unless it is bigger than the bound on its own.
        while !pending.lines.is_empty()
            && pending.lines.len() + line.len() > MAX_PENDING
            && !pending.closed
        {
            pending = self
                .shared
                .written
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
        let was_empty = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        drop(pending);
        if was_empty {
            self.shared.arrived.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = &'a LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that blocks until the test opens the gate, then keeps what it was given.
    #[derive(Clone, Default)]
    struct Gated {
        open: Arc<(Mutex<bool>, Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, cv) = &*self.open;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.got.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Gated {
        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
    }

    #[test]
    fn logging_does_not_wait_for_a_stalled_output_and_loses_nothing() {
        let out = Gated::default();
        let (writer, flush) = LogWriter::start(out.clone()).unwrap();
        // The output blocks: every line still returns at once (well within MAX_PENDING).
        for i in 0..1000 {
            (&writer)
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(out.got.lock().unwrap().is_empty(), "nothing written yet");
        out.open();
        flush.flush();
        let got = String::from_utf8(out.got.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert!(lines
            .iter()
            .enumerate()
            .all(|(i, l)| *l == format!("line {i}")));
        // The lines logged while the output was stalled left in a few writes, not 1000.
        assert!(
            *out.writes.lock().unwrap() <= 3,
            "{}",
            out.writes.lock().unwrap()
        );
    }

    #[test]
    fn a_full_buffer_makes_logging_wait_instead_of_dropping() {
        let out = Gated::default();
        let (writer, flush) = LogWriter::start(out.clone()).unwrap();
        let line = vec![b'x'; 1024];
        let logger = std::thread::spawn({
            let writer = writer.clone();
            move || {
                for _ in 0..(3 * MAX_PENDING / 1024) {
                    (&writer).write_all(&line).unwrap();
                }
            }
        });
        // The buffer fills up to its bound; then the logger waits for room.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while writer.shared.lock().lines.len() + 1024 <= MAX_PENDING {
            assert!(
                std::time::Instant::now() < deadline,
                "the buffer never filled"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!logger.is_finished(), "logging past MAX_PENDING must wait");
        assert!(writer.shared.lock().lines.len() <= MAX_PENDING);
        out.open();
        logger.join().unwrap();
        flush.flush();
        assert_eq!(out.got.lock().unwrap().len(), 3 * MAX_PENDING);
    }

    #[test]
    fn dropping_the_flush_writes_what_is_pending() {
        let out = Gated::default();
        let (writer, flush) = LogWriter::start(out.clone()).unwrap();
        (&writer).write_all(b"last words\n").unwrap();
        out.open();
        drop(flush);
        assert_eq!(&*out.got.lock().unwrap(), b"last words\n");
    }
}
