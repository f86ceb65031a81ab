"""A PNG screenshot of an experiment report page, taken by headless Chromium.

    python benchmarks/screenshot_report.py EXP/report.html docs/img/report-example.png
    python benchmarks/screenshot_report.py --example /tmp/exp docs/img/report-example.png

The first form photographs any report.html (written by
`hmx-mlx report EXP --export report.html`). ``--example DIR`` first builds the
synthetic experiment of the tests (tests/test_ui_report_html.py ``make_experiment``:
3 seeds, two directions, calibrated held-out scores, a drift axis) in DIR and
writes its report there. Chromium: `apt-get install -y chromium` (Debian); it runs
offline (no network, sync or component updates) with a throw-away profile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("chromium not found: install it (Debian: apt-get install -y chromium).")


def build_example(folder: Path) -> Path:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from test_ui_report_html import make_experiment

    from hmxfeel_mlx.ui.report_html import write_report

    if folder.exists():
        sys.exit(f"{folder} exists: --example builds a new experiment folder; pass a path that does not exist.")
    return write_report(make_experiment(folder))


def screenshot(page: Path, out: Path, width: int, height: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out.resolve()}",
                        f"--window-size={width},{height}", page.resolve().as_uri()],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
                       env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})  # a preloaded BLAS aborts it
    print(f"saved {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("page", type=Path, help="report.html, or with --example the folder to build the example in")
    p.add_argument("out", type=Path, help="PNG to write")
    p.add_argument("--example", action="store_true", help="build the synthetic example experiment first")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=2400)
    args = p.parse_args()
    page = build_example(args.page) if args.example else args.page
    screenshot(page, args.out, args.width, args.height)


if __name__ == "__main__":
    main()
