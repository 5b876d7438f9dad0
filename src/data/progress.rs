//! Progress of a long load (an image folder's decoding) on stderr: a bar on a terminal, plain
//! lines otherwise (logs, CI, nohup), nothing while a full-screen front end holds the terminal.

use crate::console;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SCREEN_IN_USE: AtomicBool = AtomicBool::new(false);
/// Plain lines start once a load has taken this long, and come this often: a quick load says
/// nothing.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Whether a full-screen front end (the cockpit) holds the terminal: its screen must not be
/// written over, so loads then report nothing.
pub fn screen_in_use(in_use: bool) {
    SCREEN_IN_USE.store(in_use, Ordering::SeqCst);
}

pub(super) enum Progress {
    Bar(ProgressBar),
    Lines {
        what: String,
        total: usize,
        done: AtomicUsize,
        started: Instant,
        /// When the last line was written (the start, before the first).
        last: Mutex<Instant>,
    },
    Silent,
}

impl Progress {
    /// `total` items of `what` ("decoding 10000 images of DIR").
    pub fn start(what: String, total: usize) -> Progress {
        if SCREEN_IN_USE.load(Ordering::SeqCst) {
            return Progress::Silent;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64).with_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_message(what);
            return Progress::Bar(bar);
        }
        let now = Instant::now();
        Progress::Lines {
            what,
            total,
            done: AtomicUsize::new(0),
            started: now,
            last: Mutex::new(now),
        }
    }

    /// One more item done (from any thread).
    pub fn tick(&self) {
        match self {
            Progress::Bar(bar) => bar.inc(1),
            Progress::Lines {
                what,
                total,
                done,
                last,
                ..
            } => {
                let done = done.fetch_add(1, Ordering::Relaxed) + 1;
                let Ok(mut last) = last.try_lock() else {
                    return; // another thread is writing a line
                };
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    console::note(format_args!("{what}: {done}/{total}"));
                }
            }
            Progress::Silent => {}
        }
    }

    /// The bar cleared; a closing line where lines were written.
    pub fn finish(self) {
        match self {
            Progress::Bar(bar) => bar.finish_and_clear(),
            Progress::Lines {
                what,
                total,
                started,
                last,
                ..
            } => {
                let wrote = last.into_inner().map_or(true, |last| last != started);
                if wrote {
                    let seconds = started.elapsed().as_secs_f64();
                    console::note(format_args!(
                        "{what}: {total}/{total}, done in {seconds:.1} s"
                    ));
                }
            }
            Progress::Silent => {}
        }
    }
}
