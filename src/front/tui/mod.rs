//! The interactive cockpit: a ratatui front end over the trainer's events.
//!
//! One thread runs a current-thread tokio loop that selects, in priority order, over keys,
//! signals, the redraw tick and the trainer's events, so keys stay responsive however many
//! metrics arrive; drawing happens at most every 100 ms and only when something changed.
//! The trainer never waits on this loop.

pub mod app;
mod eta;
mod feed;
mod keys;
mod progress;
pub mod render;
#[cfg(test)]
mod tests;
pub mod theme;

use crate::console;
use crate::front::{Consumer, Signals};
use crate::protocol::{Command, Stamped};
use crate::series::queue::Queue;
use crate::series::Front;
use crate::train::{Ended, TrainerHandle};
use app::{App, Link, Msg};
use color_eyre::eyre::eyre;
use color_eyre::eyre::WrapErr;
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use crossterm::{cursor, execute, terminal};
use futures::StreamExt;
use ratatui::{backend::CrosstermBackend, Terminal};
use std::io::{stdout, Stdout};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};

/// Minimum time between two frames (about 10 fps).
const FRAME_INTERVAL: Duration = Duration::from_millis(100);

pub struct Options {
    /// Plain dot markers instead of braille in charts.
    pub ascii_markers: bool,
}

/// Set once the terminal is back to normal, so a panic in another thread stops the drawing.
static RESTORED: AtomicBool = AtomicBool::new(false);

/// Leaves the alternate screen and raw mode; safe to call more than once.
fn restore_terminal() {
    if !RESTORED.swap(true, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(stdout(), terminal::LeaveAlternateScreen, cursor::Show);
        crate::data::screen_in_use(false);
    }
}

/// Panic hook (any thread): restore the terminal first, then print color-eyre's report.
fn install_hooks() -> color_eyre::Result<()> {
    let (panic_hook, eyre_hook) = color_eyre::config::HookBuilder::default().into_hooks();
    eyre_hook.install()?;
    let panic_hook = panic_hook.into_panic_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        panic_hook(info);
    }));
    Ok(())
}

fn enter_terminal() -> color_eyre::Result<Terminal<CrosstermBackend<Stdout>>> {
    RESTORED.store(false, Ordering::SeqCst);
    crate::data::screen_in_use(true);
    terminal::enable_raw_mode().wrap_err("enabling raw mode")?;
    execute!(stdout(), terminal::EnterAlternateScreen, cursor::Hide)
        .wrap_err("entering the alternate screen")?;
    Terminal::new(CrosstermBackend::new(stdout())).wrap_err("creating the terminal")
}

/// The channels of a job in another process: commands to it, its events (history first, then
/// live), and its steps.
pub struct JobChannels {
    pub commands: mpsc::Sender<Command>,
    pub events: UnboundedReceiver<Stamped>,
    pub steps: Receiver<Stamped>,
}

/// The cockpit over one run, or over a series of runs one after the other (seeds, a sweep)
/// without leaving the screen in between. Text meant for stdout or stderr while the screen is
/// up is held back and written once the terminal is restored (on drop, whatever happened).
pub struct Cockpit {
    options: Options,
    consumer: Consumer,
    terminal: Option<Terminal<CrosstermBackend<Stdout>>>,
    held_back: Vec<(bool, String)>,
    /// The edit the user asked to go on with after the last run diverged.
    retry: Option<crate::config::Override>,
}

impl Cockpit {
    pub fn new(options: Options, consumer: Consumer) -> color_eyre::Result<Cockpit> {
        install_hooks()?;
        Ok(Cockpit {
            options,
            consumer,
            terminal: None,
            held_back: Vec::new(),
            retry: None,
        })
    }

    /// Runs the cockpit over one trainer until the user quits, a signal stops the run, or (in a
    /// series with runs to come) the run completes; returns how it ended. `history` is what the
    /// run recorded before (a resumed run's `metrics.jsonl`), shown first.
    ///
    /// If the TUI itself fails or panics, the trainer is told to checkpoint and stop before this
    /// returns, so the run folder is complete whatever happened on screen.
    pub fn run(
        &mut self,
        handle: TrainerHandle,
        queue: Option<&Queue>,
        history: Vec<Stamped>,
    ) -> color_eyre::Result<Ended> {
        let mut app = App::new(self.options.ascii_markers);
        app.queue = queue.cloned();
        for event in history {
            app.update(Msg::Trainer(event));
        }
        let TrainerHandle {
            commands,
            mut events,
            mut steps,
            thread,
        } = handle;
        let shown = self.show(&mut app, &commands, &mut events, &mut steps);
        self.retry = app.retry.take();
        match shown {
            Ok(signal) => {
                drop(commands);
                Ok(Ended::join(thread, signal))
            }
            Err(e) => {
                let _ = commands.send(Command::Stop {
                    reason: "the TUI failed".into(),
                });
                let _ = thread.join();
                Err(e)
            }
        }
    }

    /// The edit to go on with that the user chose when the last run diverged (taken once).
    pub fn take_retry(&mut self) -> Option<crate::config::Override> {
        self.retry.take()
    }

    /// The cockpit over a job in another process, or over a run's history alone (`link` says
    /// which), until the user leaves, or, for a run of a series that goes on in the background
    /// (`follows_series`), until the run ends.
    pub fn attach(
        &mut self,
        link: Link,
        history: Vec<Stamped>,
        job: Option<JobChannels>,
        follows_series: bool,
    ) -> color_eyre::Result<Left> {
        let mut app = App::new(self.options.ascii_markers);
        app.link = link;
        app.follows_series = follows_series;
        for event in history {
            app.update(Msg::Trainer(event));
        }
        let (commands, mut events, mut steps) = match job {
            Some(j) => (j.commands, j.events, j.steps),
            None => {
                // Nothing more will come: the channels are closed from the start.
                let (commands, _) = mpsc::channel();
                let (_, events) = tokio::sync::mpsc::unbounded_channel();
                let (_, steps) = tokio::sync::mpsc::channel(1);
                (commands, events, steps)
            }
        };
        self.show(&mut app, &commands, &mut events, &mut steps)?;
        Ok(
            match (app.stopping, app.trainer_gone && app.summary.is_some()) {
                (true, _) => Left::Stopped,
                (false, true) if follows_series => Left::RunEnded,
                _ => Left::Detached,
            },
        )
    }

    /// Draws `app` and feeds it until it exits; the terminal is given back at once if this
    /// fails or panics.
    fn show(
        &mut self,
        app: &mut App,
        commands: &mpsc::Sender<Command>,
        events: &mut UnboundedReceiver<Stamped>,
        steps: &mut Receiver<Stamped>,
    ) -> color_eyre::Result<Option<i32>> {
        let Cockpit {
            consumer, terminal, ..
        } = self;
        let looped = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let terminal = match terminal {
                Some(t) => t,
                None => terminal.insert(enter_terminal()?),
            };
            consumer.runtime.block_on(event_loop(
                app,
                terminal,
                commands,
                events,
                steps,
                &mut consumer.signals,
            ))
        }));
        match looped {
            Ok(Ok(signal)) => Ok(signal),
            failed => {
                self.terminal = None;
                restore_terminal();
                Err(match failed {
                    Ok(Err(e)) => e,
                    _ => eyre!("the TUI panicked; the trainer wrote a checkpoint and stopped"),
                })
            }
        }
    }
}

impl Drop for Cockpit {
    fn drop(&mut self) {
        restore_terminal();
        for (to_stdout, text) in self.held_back.drain(..) {
            if to_stdout {
                console::say(&text);
            } else {
                console::note(&text);
            }
        }
    }
}

/// How an attached cockpit was left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Left {
    /// The user stopped the job (`X`).
    Stopped,
    /// The user left; the job goes on.
    Detached,
    /// The run of a series ended: the series' next run follows.
    RunEnded,
}

impl Front for Cockpit {
    fn drive(
        &mut self,
        handle: TrainerHandle,
        _dir: &std::path::Path,
        _resumed: bool,
        queue: &Queue,
    ) -> Result<Ended, String> {
        // The report's chain on one line (`{:?}` would be its multi-line debug report).
        self.run(handle, Some(queue), Vec::new())
            .map_err(|e| format!("{e:#}"))
    }

    fn print(&mut self, text: String) {
        self.held_back.push((true, text));
    }

    fn note(&mut self, text: String) {
        self.held_back.push((false, text));
    }
}

/// Reads keys, signals and trainer events until the app exits; returns the stopping signal.
async fn event_loop(
    app: &mut App,
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    commands: &mpsc::Sender<Command>,
    events: &mut UnboundedReceiver<Stamped>,
    steps: &mut Receiver<Stamped>,
    signals: &mut Signals,
) -> color_eyre::Result<Option<i32>> {
    let mut keys = EventStream::new();
    let mut frame_tick = tokio::time::interval(FRAME_INTERVAL);
    frame_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stopped_by = None;
    let mut keys_closed = false;
    while !app.exit {
        let msg = tokio::select! {
            biased;
            key = keys.next(), if !keys_closed => match key {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => Msg::Key(k),
                Some(Ok(TermEvent::Resize(..))) => Msg::Resize,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).wrap_err("reading the terminal"),
                // The terminal went away (hang-up): stop as SIGHUP would.
                None => {
                    keys_closed = true;
                    Msg::Signal(1)
                }
            },
            signo = signals.next() => {
                stopped_by.get_or_insert(signo);
                Msg::Signal(signo)
            }
            _ = frame_tick.tick() => {
                app.update(Msg::Tick(crate::protocol::unix_now()));
                if crate::fault::injected("ui-panic") {
                    panic!("injected fault: ui-panic");
                }
                if app.dirty && !RESTORED.load(Ordering::SeqCst) {
                    terminal.draw(|f| render::render(app, f)).wrap_err("drawing")?;
                    app.dirty = false;
                }
                continue;
            }
            event = events.recv(), if !app.trainer_gone => event.map_or(Msg::TrainerGone, Msg::Trainer),
            Some(step) = steps.recv() => Msg::Trainer(step),
        };
        if let Some(command) = app.update(msg) {
            // A gone trainer cannot take commands; the run is over anyway.
            let _ = commands.send(command);
        }
    }
    Ok(stopped_by)
}
