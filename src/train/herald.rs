//! Publishing events: each is stamped with where the run stands, recorded in `metrics.jsonl`
//! and sent to the consumer. A `Herald` borrows only what that takes, so that a long pass over
//! the trainer's data (the teacher's outputs) can report its progress while it runs.

use super::{Outbox, RunError, Trainer};
use crate::collective::World;
use crate::data::Splits;
use crate::protocol::{Event, LogLevel, Position, Stamped};
use crate::run::RunFolder;
use std::time::Instant;

pub(super) struct Herald<'a> {
    run: &'a mut RunFolder,
    out: &'a Outbox,
    at: Position,
    started: Instant,
    write_failed: &'a mut Option<RunError>,
}

impl Herald<'_> {
    fn stamp(&self, event: Event) -> Stamped {
        Stamped {
            at: self.at,
            wall_time: self.started.elapsed().as_secs_f64(),
            event,
        }
    }

    /// Records an event in the run folder and sends it to the consumer (who may be gone).
    pub(super) fn emit(&mut self, event: Event) {
        let stamped = self.stamp(event);
        // Flushed at once: these are rare, and a paused or killed run should show them.
        if let Err(e) = self.run.record(&stamped).and_then(|()| self.run.flush()) {
            let _ = self.out.events.send(self.stamp(Event::Log {
                level: LogLevel::Error,
                message: format!("writing metrics.jsonl: {e}"),
            }));
            self.write_failed.get_or_insert(RunError::Metrics(e));
        }
        let _ = self.out.events.send(stamped);
    }

    /// Step metrics: recorded always, sent only if the consumer keeps up.
    fn emit_step(&mut self, event: Event) {
        let stamped = self.stamp(event);
        let _ = self.run.record(&stamped);
        let _ = self.out.steps.try_send(stamped);
    }
}

impl Trainer {
    /// A herald beside the run's data and group, which it does not borrow.
    pub(super) fn herald_beside_data(&mut self) -> (Herald<'_>, &Splits, Option<&World>) {
        let herald = Herald {
            run: &mut self.run,
            out: &self.out,
            at: self.at,
            started: self.started,
            write_failed: &mut self.write_failed,
        };
        (herald, &self.data, self.parallel.as_ref().map(|p| &p.world))
    }

    pub(super) fn emit(&mut self, event: Event) {
        self.herald_beside_data().0.emit(event);
    }

    pub(super) fn emit_step(&mut self, event: Event) {
        self.herald_beside_data().0.emit_step(event);
    }
}
