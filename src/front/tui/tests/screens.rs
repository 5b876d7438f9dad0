//! The screen as a newcomer meets it: every size from 70x20 up shows what matters most, and the
//! charts show their data (round ticks, nothing drawn over the curves).

use super::{ch, draw, feed_phase, finished_run, mid_run, stamped, started};
use crate::front::tui::app::{App, Link};
use crate::front::tui::render::charts::loss_curves;
use crate::protocol::summary::{RunStatus, TeacherOutputs};
use crate::protocol::{Event, ModelSize, Phase};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// The screen's rows as text.
fn rows(terminal: &Terminal<TestBackend>) -> Vec<String> {
    let buffer = terminal.backend().buffer();
    let width = usize::from(buffer.area.width);
    buffer
        .content
        .chunks(width)
        .map(|row| row.iter().map(|c| c.symbol()).collect())
        .collect()
}

pub(super) fn screen(app: &App, width: u16, height: u16) -> (Terminal<TestBackend>, String) {
    let terminal = draw(app, width, height);
    let text = rows(&terminal).join("\n");
    (terminal, text)
}

pub(super) fn assert_shows(text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "{w:?} missing from\n{text}");
    }
}

/// What every size must show while training: the run's clock, and the models' results so far.
const RUNNING_ESSENTIALS: &[&str] = &["ETA", "baseline", "distilled", "95.50%"];
/// What every size must show at the end: the gain with its unit, the paired test, a legend.
const FINISHED_ESSENTIALS: &[&str] = &[
    "+0.60pp",
    "paired p",
    "96.10%",
    "└ teacher baseline distilled",
];

#[test]
fn running_at_80x24() {
    let (terminal, text) = screen(&mid_run(), 80, 24);
    assert_shows(&text, RUNNING_ESSENTIALS);
    assert_shows(&text, &["elapsed"]);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn running_at_70x20() {
    let (terminal, text) = screen(&mid_run(), 70, 20);
    assert_shows(&text, RUNNING_ESSENTIALS);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn running_at_120x40() {
    let (terminal, text) = screen(&mid_run(), 120, 40);
    assert_shows(&text, RUNNING_ESSENTIALS);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn finished_at_80x24() {
    let (terminal, text) = screen(&finished_run(), 80, 24);
    assert_shows(&text, FINISHED_ESSENTIALS);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn finished_at_70x20() {
    let (terminal, text) = screen(&finished_run(), 70, 20);
    assert_shows(&text, FINISHED_ESSENTIALS);
    // Every phase as it ran, with the edit, in the loss chart's place; its keys go with it.
    assert_shows(
        &text,
        &[
            "hyperparameters as run",
            "baseline  0.003",
            "distilled 0.003",
            "temperature 4 → 8 @step 40",
        ],
    );
    assert!(!text.contains("log scale"), "{text}");
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn finished_at_120x40() {
    let (terminal, text) = screen(&finished_run(), 120, 40);
    assert_shows(&text, FINISHED_ESSENTIALS);
    assert_shows(&text, &["95% CI", "gap", "closed", "latency", "size"]);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn sizes_keep_their_units_at_80x24() {
    let mut app = finished_run();
    let size = |params, bytes| ModelSize { params, bytes };
    app.sizes = Some((size(7_400_000, 29_600_000), size(19_090, 76_360)));
    let (_, text) = screen(&app, 80, 24);
    assert_shows(&text, &["7400000", "28.2 MiB", "74.6 KiB", "387.6x"]);
}

/// The teacher after its first epoch at `val_acc`: one point per chart.
fn after_one_teacher_epoch(val_acc: f64) -> App {
    let mut app = App::new(false);
    let size = ModelSize {
        params: 10,
        bytes: 40,
    };
    let p = Some(Phase::Teacher);
    app.update(stamped(
        None,
        0,
        0,
        0.0,
        Event::RunStarted {
            run_dir: "runs/x".into(),
            device: "cpu".into(),
            data: "digits".into(),
            train_examples: 100,
            teacher: size,
            student: size,
            preset: crate::config::load(crate::config::DIGITS_PRESET, "t", &[])
                .unwrap()
                .to_toml(),
            clock_origin_unix: 0.0,
            world_size: 1,
        },
    ));
    app.update(stamped(
        p,
        0,
        0,
        0.1,
        Event::PhaseStarted {
            epochs: 6,
            steps_per_epoch: 20,
            threads: 1,
            epoch_steps_done: 0,
        },
    ));
    for step in [10, 20] {
        let step_event = Event::Step {
            loss: 0.3,
            lr: 1e-3,
            samples_per_sec: 1000.0,
            parts: [("ce".to_string(), 0.3)].into(),
        };
        app.update(stamped(p, 1, step, 0.2, step_event));
    }
    let epoch = Event::Epoch {
        train_loss: 0.3,
        val_loss: 0.3,
        val_acc,
        epochs: 6,
        train_parts: Default::default(),
    };
    app.update(stamped(p, 1, 20, 0.3, epoch));
    app
}

#[test]
fn one_epoch_reads_on_distinct_ticks() {
    let (terminal, text) = screen(&after_one_teacher_epoch(0.984), 80, 24);
    assert!(!text.contains("98.4"), "no tick repeated:\n{text}");
    assert_shows(&text, &["│99", "│98", "│97"]);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn the_teacher_best_is_drawn_under_the_curves() {
    let (_, text) = screen(&after_one_teacher_epoch(0.984), 80, 24);
    // The teacher's one point lies on its best: the point shows, the reference around it.
    let reference_row = text
        .lines()
        .find(|row| row.contains("•"))
        .expect("a reference row");
    let plot = reference_row.rsplit('│').nth(1).expect("the accuracy plot");
    assert!(
        plot.starts_with('⠄') && plot.ends_with("••"),
        "{reference_row}"
    );
}

/// The distilled phase at T = 20: its total loss is T²-scaled, its cross-entropy is not.
fn distilled_at_high_temperature() -> App {
    let mut app = mid_run();
    let step = Event::Step {
        loss: 13.9,
        lr: 1e-3,
        samples_per_sec: 6400.0,
        parts: [("ce".to_string(), 0.2), ("kd".to_string(), 15.4)].into(),
    };
    app.update(stamped(Some(Phase::Distilled), 4, 75, 3.8, step));
    app
}

#[test]
fn every_phase_is_drawn_as_its_cross_entropy() {
    let app = distilled_at_high_temperature();
    let (curves, _, _) = loss_curves(&app);
    let last = |i: usize| curves[i].points.last().map(|p| p.1);
    assert_eq!(
        last(2),
        Some(0.2),
        "the distilled curve is its cross-entropy"
    );
    let (_, text) = screen(&app, 80, 24);
    assert_shows(&text, &["cross-entropy by step"]);
    assert!(!text.contains("13.9") && !text.contains("│14"), "{text}");
    // Where a phase's loss has no `ce` part, its total is drawn and named as such.
    let mut hard = mid_run();
    hard.series[Phase::Distilled.index()].parts.clear();
    let (curves, _, _) = loss_curves(&hard);
    assert_eq!(curves[2].name, "distilled loss");
}

#[test]
fn log_scale_ticks_are_powers_of_ten() {
    let mut app = distilled_at_high_temperature();
    app.update(ch('p'));
    app.update(ch('l'));
    let (terminal, text) = screen(&app, 80, 24);
    assert_shows(&text, &["│10", "│1 ", "0.1│"]);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn the_legend_and_axis_units_stay_out_of_the_plot() {
    let (_, text) = screen(&mid_run(), 80, 24);
    let lines: Vec<&str> = text.lines().collect();
    // Each legend sits in its chart's bottom border, the edit marker's entry included.
    assert!(lines
        .iter()
        .any(|l| l.contains("└ teacher baseline distilled │ edit ─")));
    assert!(lines
        .iter()
        .any(|l| l.contains("└ teacher baseline distilled ··· best ─")));
    // No axis title inside either plot: the units are in the titles.
    assert_shows(&text, &["cross-entropy by step", "accuracy % by epoch"]);
    assert!(!lines
        .iter()
        .any(|l| l.contains("step│") || l.contains("epoch│")));
}

#[test]
fn the_stop_job_dialog_shows_its_yes_line_at_80x24() {
    let mut app = mid_run();
    app.link = Link::Attached { pid: 42 };
    app.update(ch('X'));
    for (width, height) in [(80, 24), (70, 20), (40, 20)] {
        let (_, text) = screen(&app, width, height);
        assert_shows(&text, &["y / Enter: yes", "exits."]);
    }
    insta::assert_snapshot!(draw(&app, 80, 24).backend());
}

#[test]
fn the_header_shows_the_gpus_while_the_run_lasts() {
    let gib = 1u64 << 30;
    let reading = |cuda, util, used| crate::protocol::GpuReading {
        cuda,
        util_percent: util,
        memory_used_bytes: used * gib,
        memory_total_bytes: 140 * gib,
    };
    let mut app = mid_run();
    app.device = "cuda:0 (NVIDIA H200, 140 GiB)".into();
    let gpus = Event::Gpus {
        gpus: vec![reading(0, 87, 12)],
    };
    app.update(stamped(Some(Phase::Distilled), 0, 0, 4.0, gpus));
    let (_, text) = screen(&app, 120, 40);
    assert_shows(&text, &["cuda:0 87% 12.0/140.0 GiB"]);
    // A newer reading replaces the old one; at 70 columns the clock comes before the GPUs.
    let gpus = Event::Gpus {
        gpus: vec![reading(0, 3, 1)],
    };
    app.update(stamped(Some(Phase::Distilled), 0, 0, 5.0, gpus));
    let (_, text) = screen(&app, 120, 40);
    assert_shows(&text, &["cuda:0 3% 1.0/140.0 GiB"]);
    assert!(!text.contains("87%"), "{text}");
    let (_, narrow) = screen(&app, 70, 20);
    assert_shows(&narrow, &["ETA"]);
    // At the end the figures of the moment go; each phase's use is in its result.
    let finished = finished_run();
    let (_, text) = screen(&finished, 120, 40);
    assert!(!text.contains("cuda:0 3%"), "{text}");
}

/// The students' phases: the baseline trained, the distilled phase computing the teacher's
/// outputs (`done` of 1257 examples) before its first step.
fn computing_teacher_outputs(done: usize) -> App {
    teacher_pass(done, 1257, TeacherOutputs::Computed)
}

/// The distilled phase's pass for the teacher's outputs, `done` of `total`, from `source`.
fn teacher_pass(done: usize, total: usize, source: TeacherOutputs) -> App {
    let mut app = started();
    feed_phase(&mut app, Phase::Teacher, 0.1, 0.983, 85002, 40.0);
    feed_phase(&mut app, Phase::Baseline, 1.5, 0.955, 2410, 6.0);
    for (done, wall_time) in [(0, 2.9), (done, 3.2)] {
        let pass = Event::TeacherOutputs {
            done,
            total,
            source,
            layer: None,
        };
        app.update(stamped(Some(Phase::Distilled), 0, 0, wall_time, pass));
    }
    app
}

#[test]
fn the_guided_layers_pass_is_shown_after_the_logits() {
    let mut app = computing_teacher_outputs(1257);
    for (done, wall_time) in [(0, 3.3), (300, 3.6)] {
        let pass = Event::TeacherOutputs {
            done,
            total: 1257,
            source: TeacherOutputs::Computed,
            layer: Some("features.1".into()),
        };
        app.update(stamped(Some(Phase::Distilled), 0, 0, wall_time, pass));
    }
    let (_, text) = screen(&app, 100, 24);
    assert_shows(
        &text,
        &[
            "computing the teacher's layer features.1 24%",
            "computing the teacher's layer features.1 over 1257 examples",
        ],
    );
}

#[test]
fn the_header_says_the_teacher_outputs_are_being_computed() {
    let (terminal, text) = screen(&computing_teacher_outputs(512), 80, 24);
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("distilled ▶ running · computing the teacher's outputs 41%"),
        "{header}"
    );
    assert!(
        !header.contains("baseline") && !header.contains("epoch"),
        "{header}"
    );
    assert_shows(&text, &["teacher's outputs  41%", "phase   0%"]);
    insta::assert_snapshot!(terminal.backend());
    // Done, and training not started yet: the header says the outputs are there.
    let (_, text) = screen(&computing_teacher_outputs(1257), 80, 24);
    assert_shows(
        &text,
        &["distilled ▶ running · the teacher's outputs computed"],
    );
}

#[test]
fn the_header_says_the_teacher_outputs_over_the_views_are_being_computed() {
    let views = |from_cache| TeacherOutputs::Views {
        views: 9,
        from_cache,
    };
    let (_, text) = screen(&teacher_pass(4526, 9 * 1257, views(false)), 100, 24);
    assert_shows(
        &text,
        &[
            "computing the teacher's outputs over 9 views 40%",
            "computing the teacher's outputs over 1257 examples x 9 views",
        ],
    );
    let (_, text) = screen(&teacher_pass(9 * 1257, 9 * 1257, views(true)), 100, 24);
    assert_shows(&text, &["the teacher's outputs read from the cache"]);
}

#[test]
fn the_end_shows_the_outcome_and_each_phase_as_it_ran() {
    let (_, text) = screen(&finished_run(), 120, 40);
    let lines: Vec<&str> = text.lines().collect();
    // No gauges left at 50% and 58%: the row says how the run came out.
    assert!(
        lines[1].contains("distilled 96.10% vs baseline 95.50%: +0.60pp (n.s.) · teacher 98.30%"),
        "{}",
        lines[1]
    );
    assert!(
        !lines[1].contains('%') || !lines[1].contains("epoch"),
        "{}",
        lines[1]
    );
    // Each phase's settings as it started: the teacher's own lr, the students' own; the
    // temperature edited half-way through the distilled phase, with its step.
    assert_shows(
        &text,
        &[
            "hyperparameters as run",
            "lr      batch epochs",
            "teacher   0.001   64    6",
            "baseline  0.003   64    6",
            "distilled 0.003   64    6",
            "method soft",
            "   temperature 4 → 8 @step 40",
            "alpha 0.9",
        ],
    );
    assert!(!text.contains("hyperparameters (teacher)"), "{text}");
    // A stopped run says what it kept and how to go on.
    let mut stopped = finished_run();
    stopped.summary.as_mut().unwrap().status = RunStatus::Interrupted;
    let (_, text) = screen(&stopped, 120, 40);
    assert_shows(
        &text,
        &["finished: teacher, baseline, distilled · go on with kd-tui --resume runs/digits-"],
    );
}

#[test]
fn an_edit_of_a_phase_setting_is_marked_in_the_end_table() {
    let mut app = finished_run();
    let edit = super::applied(&app, "student.lr", "0.0005");
    app.update(stamped(Some(Phase::Baseline), 3, 60, 2.0, edit));
    let (_, text) = screen(&app, 120, 40);
    assert_shows(
        &text,
        &[
            "baseline  0.003*  64    6",
            "* baseline lr → 0.0005 @step 60",
            "distilled 0.003   64    6",
        ],
    );
}
