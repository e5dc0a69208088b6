"""Screenshots of the console for docs/console.md (PNG, with Playwright and Debian's Chromium):
the overview, the live board in the middle of a run, and the directory matrix.

    .venv/bin/python scripts/console_screenshots.py [OUTPUT_DIR]     # default docs/img

The world is the demo's: the fictional sample directory, the shipped playbook and the demo's
simulated officers (every figure marked SIMULATED), on a clock the script moves.
"""
from __future__ import annotations

import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(out: Path) -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from channels.registry import ChannelSet
    from channels.sandbox import KINDS_SANDBOX, SandboxChannel, SandboxScript
    from commtest.cli.demo_cmd import OFFICERS, PLAYBOOK, _free_port
    from commtest.clock import UTC, FrozenClock
    from commtest.db import make_engine, upgrade
    from commtest.directory import import_directory
    from commtest.settings import load_settings
    from commtest.users import add_user
    from playbooks.store import sync_folder
    from scheduler.engine import RunEngine
    from web.app import create_app

    folder = Path(tempfile.mkdtemp())
    port = _free_port()
    settings = load_settings(sandbox=True, database_url=f"sqlite:///{folder / 'c.db'}", secret_key="screenshots-only",
                             public_base_url=f"http://127.0.0.1:{port}", playbook_dir=REPO / "playbooks")
    clock = FrozenClock(datetime(2026, 9, 15, 8, 0, tzinfo=UTC))
    engine = make_engine(settings.database_url)
    upgrade(engine)
    import_directory(engine, REPO / "data" / "sample-directory.yaml")
    sync_folder(engine, settings.playbook_dir, clock)
    add_user(engine, "coordinator1", "coordinator", clock, display_name="A. Coordinator (fictional)",
             password="fictional-pass-phrase-42")
    script = SandboxScript.from_data(OFFICERS, "demo officers")
    runs = RunEngine(engine, settings, clock, ChannelSet(settings, clock, {k: SandboxChannel(k, clock, script)
                                                                          for k in KINDS_SANDBOX}), actor="screenshots")
    done = runs.create_run(PLAYBOOK, started_by="coordinator1")
    for _ in range(2400 // 20):  # a whole earlier run, for "last runs"
        runs.tick()
        clock.advance(20)
    clock.advance(days=1)
    live = runs.create_run(PLAYBOOK, started_by="coordinator1")
    for _ in range(330 // 15):  # five and a half minutes into the second one
        runs.tick()
        clock.advance(15)
    import random

    from scheduler.planning import plan_schedules

    plan_schedules(runs, clock.now(), random.Random(7))  # the playbook's own unannounced spring and autumn tests
    runs.close()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine, clock), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = settings.public_base_url
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/console/login?lang=en")
        page.fill("#username", "coordinator1")
        page.fill("#password", "fictional-pass-phrase-42")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Next planned tests")
        page.screenshot(path=str(out / "console-overview.png"), full_page=True)
        page.goto(f"{base}/console/runs/{live}?lang=en")
        page.wait_for_selector("html.live")
        page.screenshot(path=str(out / "console-live-board.png"), full_page=True)
        page.goto(f"{base}/console/directory?lang=en")
        page.screenshot(path=str(out / "console-directory.png"), full_page=True)
        browser.close()
    server.should_exit = True
    print(f"screenshots of runs {done} and {live} written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "img")
