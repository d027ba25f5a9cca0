"""Regenerate docs/report.png, the README's picture of the HTML report: the demo checked twice, then fixed.

    .venv/bin/python scripts/report-screenshot.py      (needs Debian's chromium; about 10 s)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs chromium (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="hc-shot-") as tmp:
        reports = Path(tmp) / "reports"
        for extra in ((), (), ("--fix", "--yes")):  # two runs for the trend, then the repair
            subprocess.run([sys.executable, "-m", "pytest", "healthchecks", "--demo", "-q", "--report-dir",
                            str(reports), *extra], cwd=REPO, capture_output=True, check=False)
        target = REPO / "docs" / "report.png"
        target.parent.mkdir(exist_ok=True)
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={target}",
                        "--window-size=1280,2900", "--virtual-time-budget=5000",
                        (reports / "latest.html").as_uri()], capture_output=True, check=True)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
