"""Rewrites the README's cockpit screens (section "The cockpit") from the snapshot tests'
files, so that the text captures are what the tests draw. tests/architecture.rs checks that
they agree.

    python3 scripts/readme_screens.py
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "src/front/tui/tests/snapshots"
# Each screen's caption in the README, then its snapshot.
SCREENS = {
    "80x24, distilling": "running_at_80x24",
    "80x24, finished": "finished_at_80x24",
    "120x40, distilling": "running_at_120x40",
    "120x40, finished": "finished_at_120x40",
}


def screen(name):
    text = (SNAPSHOTS / f"kd_tui__front__tui__tests__screens__{name}.snap").read_text()
    rows = text.split("\n---\n", 1)[1].splitlines()
    return "\n".join(row[1:-1].rstrip() for row in rows if row.startswith('"'))


def main():
    readme = (ROOT / "README.md").read_text()
    for caption, name in SCREENS.items():
        pattern = re.compile(r"(\n" + re.escape(caption) + r"[^\n]*:\n\n```text\n)(.*?)(\n```)", re.S)
        readme, n = pattern.subn(lambda m: m.group(1) + screen(name) + m.group(3), readme)
        assert n == 1, f"README: no screen captioned {caption!r}"
    (ROOT / "README.md").write_text(readme)


if __name__ == "__main__":
    main()
