//! A folder larger than the memory a run may take: the real binary in a memory cgroup of its
//! own (as a Slurm job or a container runs it), 768 MiB, on 1,797 images resized to 512x512
//! (449 MiB as bytes, more than half of what the cgroup leaves). `data.cache = "memory"` is
//! refused before training, naming what the cgroup leaves; `"auto"` decodes the images as the
//! batches are drawn and completes inside the limit. Where the machine gives this process no
//! memory cgroup it may make (no root, no cgroup), the test says so and skips.

mod common;

use common::data::digit_pixels;
use common::{kd_tui_on, read_summary, Outcome};
use image::GrayImage;
use kd_tui::memory::{own_memory_cgroup, CgroupVersion};
use kd_tui::protocol::summary::RunStatus;
use std::path::{Path, PathBuf};

const LIMIT_MIB: u64 = 768;

/// A memory cgroup under this process's own, with a limit; removed on drop.
struct LimitedCgroup(PathBuf);

impl LimitedCgroup {
    fn new(limit: u64) -> Result<LimitedCgroup, String> {
        let own = own_memory_cgroup().ok_or("no memory cgroup in /proc/self/cgroup")?;
        let dir = own.dir.join(format!("kd-tui-test-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("making {}: {e}", dir.display()))?;
        let cgroup = LimitedCgroup(dir);
        let file = match own.version {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        };
        std::fs::write(cgroup.0.join(file), limit.to_string())
            .map_err(|e| format!("limiting {}: {e}", cgroup.0.display()))?;
        Ok(cgroup)
    }

    /// `kd-tui ARGS` inside the cgroup (a shell moves itself in, then becomes kd-tui), its
    /// image cache in `cache`.
    fn kd_tui(&self, args: &[&str], cache: &Path) -> Outcome {
        let procs = self.0.join("cgroup.procs");
        let command = kd_tui_on(args);
        let program = command.get_program().to_owned();
        let inner: Vec<_> = command.get_args().map(ToOwned::to_owned).collect();
        let mut shell = std::process::Command::new("sh");
        shell
            .arg("-c")
            .arg(r#"echo $$ > "$0" && exec "$@""#)
            .arg(&procs)
            .arg(program)
            .args(inner)
            .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .env("KD_TUI_CACHE", cache);
        if let Some(dir) = command.get_current_dir() {
            shell.current_dir(dir);
        }
        Outcome::of(shell.output().unwrap())
    }
}

impl Drop for LimitedCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The digits as 8x8 gray PNGs in `DIR/train/<digit>/`.
fn write_folder(dir: &Path) {
    for (i, (label, pixels)) in digit_pixels().into_iter().enumerate() {
        let path = dir.join(format!("train/{label}/{i:04}.png"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        GrayImage::from_raw(8, 8, pixels)
            .unwrap()
            .save(&path)
            .unwrap();
    }
}

#[test]
fn a_folder_larger_than_the_cgroup_allows_is_decoded_as_drawn_within_the_limit() {
    let cgroup = match LimitedCgroup::new(LIMIT_MIB << 20) {
        Ok(c) => c,
        Err(why) => {
            common::say(format_args!(
                "SKIPPED: no memory cgroup this test may make here: {why}"
            ));
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("images");
    write_folder(&folder);
    let sets = [
        "data.source=\"images\"".to_string(),
        format!("data.path={:?}", folder.display().to_string()),
        "data.size=[512, 512]".into(),
        "data.channels=1".into(),
        "teacher.model={ kind = \"mlp\", hidden = [8] }".into(),
        "student.model={ kind = \"mlp\", hidden = [2] }".into(),
        "teacher.batch_size=32".into(),
        "student.batch_size=32".into(),
        "teacher.epochs=1".into(),
        "student.epochs=1".into(),
        "student.baseline=false".into(),
    ];
    let run = |mode: &str| {
        let out = tmp.path().join(format!("run-{mode}"));
        let cache = tmp.path().join(format!("cache-{mode}"));
        let mut args = vec!["--batch".to_string(), "--out".into()];
        args.push(out.display().to_string());
        for s in sets
            .iter()
            .cloned()
            .chain([format!("data.cache=\"{mode}\"")])
        {
            args.extend(["--set".into(), s]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (cgroup.kd_tui(&args, &cache), out)
    };

    let (refused, _) = run("memory");
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    let available: u64 = refused
        .stderr
        .split(" MiB of memory available")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no available memory named: {}", refused.stderr));
    assert!(
        available < LIMIT_MIB,
        "the cgroup's limit is seen: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("449 MiB as bytes"),
        "{}",
        refused.stderr
    );

    let (streamed, dir) = run("auto");
    assert_eq!(streamed.code, Some(0), "{}", streamed.stderr);
    assert!(
        streamed
            .stderr
            .contains("cache: none, decoded as batches are drawn, freed memory given back"),
        "{}",
        streamed.stderr
    );
    assert_eq!(read_summary(&dir).status, RunStatus::Completed);
}
