"""Screenshots of what a person sees in the UIs, taken by headless Chromium: the latest ``nar-blueprint``
flow run in the Prefect UI, its ``nar-blueprint-report`` artifact, and the registered processor's page in
the MLflow UI. A maintainer's check (the tests cannot open a browser); not run by the test suite.

Start the servers and run the flow first (README, "Orchestration: Prefect flows")::

    export PREFECT_SERVER_ANALYTICS_ENABLED=false
    prefect server start --host 127.0.0.1 --port 4200 &   # another port: also set PREFECT_UI_API_URL
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db \\
        --host 127.0.0.1 --port 5000 --workers 1 &
    PREFECT_API_URL=http://127.0.0.1:4200/api nar blueprint
    python scripts/screenshot_uis.py --out screenshots/

Browser: Playwright when it is installed (``pip install playwright``; it drives the system's Chromium,
``apt-get install chromium``, or its own from ``playwright install chromium``); it waits for the pages'
scripts to render and counts the images that failed to load. Without Playwright: ``chromium --headless
--screenshot`` with a virtual-time budget for the page's scripts (no image count then).

Exit status: 0 when every page was captured (and, with Playwright, no image on it is broken), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# both UIs scroll an inner element, not the page, so a "full page" screenshot would stop at the window:
# the tallest scroll height on the page is the height the window needs
CONTENT_HEIGHT = "Math.max(...Array.from(document.querySelectorAll('*')).map(e => e.scrollHeight))"
LOADED_IMAGES = "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"
BROKEN_IMAGES = (
    "Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0).map(i => i.src.slice(0, 80))"
)


def api(url: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``body`` as JSON) and parse the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def latest_flow_run(prefect_api: str, flow: str = "nar-blueprint") -> str:
    """The id of the newest run of ``flow`` on the Prefect server."""
    runs = api(
        f"{prefect_api.rstrip('/')}/flow_runs/filter",
        {"flows": {"name": {"any_": [flow]}}, "sort": "START_TIME_DESC", "limit": 1},
    )
    if not runs:
        raise SystemExit(f"no {flow} flow run on {prefect_api}: run `nar blueprint` with PREFECT_API_URL set first")
    return runs[0]["id"]


def artifact_id(prefect_api: str, key: str, flow_run: str) -> str | None:
    """The id of the artifact ``key`` that ``flow_run`` published (its page shows the content; the key's
    page only lists versions)."""
    found = api(
        f"{prefect_api.rstrip('/')}/artifacts/filter",
        {
            "artifacts": {"key": {"any_": [key]}},
            "flow_runs": {"id": {"any_": [flow_run]}},
            "sort": "CREATED_DESC",
            "limit": 1,
        },
    )
    return found[0]["id"] if found else None


def registered_version(workspace: Path) -> tuple[str, str]:
    record = json.loads((workspace / "models" / "registered.json").read_text())
    return str(record["name"]), str(record["version"])


def pages(args: argparse.Namespace) -> dict[str, str]:
    """File stem -> URL of every page to capture."""
    prefect_ui = args.prefect_ui.rstrip("/")
    prefect_api = args.prefect_api or f"{prefect_ui}/api"
    run = args.flow_run or latest_flow_run(prefect_api)
    name, version = (args.model, args.version) if args.version else registered_version(Path(args.workspace))
    targets = {"prefect-flow-run": f"{prefect_ui}/runs/flow-run/{run}"}
    for key in ("nar-blueprint-report", "nar-blueprint-metrics"):
        found = artifact_id(prefect_api, key, run)
        targets[key] = f"{prefect_ui}/artifacts/artifact/{found}" if found else f"{prefect_ui}/artifacts/key/{key}"
    targets["mlflow-model-version"] = f"{args.mlflow_ui.rstrip('/')}/#/models/{name}/versions/{version}"
    return targets


def find_chromium(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def with_playwright(targets: dict[str, str], out: Path, chromium: str | None, args: argparse.Namespace) -> bool:
    from playwright.sync_api import sync_playwright

    ok = True
    with sync_playwright() as p:
        browser = p.chromium.launch(headless=True, executable_path=chromium)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        for stem, url in targets.items():
            # "load", then time to settle: both UIs render after their API calls return, and MLflow's keeps
            # polling, so the network never goes idle
            page.goto(url, wait_until="load", timeout=60_000)
            page.wait_for_timeout(args.settle * 1000)
            height = min(args.max_height, max(args.height, int(page.evaluate(CONTENT_HEIGHT))))
            page.set_viewport_size({"width": args.width, "height": height})
            page.wait_for_timeout(1000)  # re-layout, images in the newly visible part decoded
            path = out / f"{stem}.png"
            page.screenshot(path=str(path), full_page=True)
            broken, loaded = page.evaluate(BROKEN_IMAGES), page.evaluate(LOADED_IMAGES)
            ok &= not broken
            said = f"{len(broken)} broken images: {broken}" if broken else "no broken images"
            print(f"{path}: {url}; {loaded} images shown, {said}")
            page.set_viewport_size({"width": args.width, "height": args.height})
        browser.close()
    return ok


def with_chromium(targets: dict[str, str], out: Path, chromium: str, args: argparse.Namespace) -> bool:
    ok = True
    for stem, url in targets.items():
        path = out / f"{stem}.png"
        command = [
            chromium,
            "--headless",
            "--no-sandbox",  # as root in a container, Chromium refuses to start with its sandbox
            "--hide-scrollbars",
            f"--window-size={args.width},{args.height}",
            f"--virtual-time-budget={args.settle * 1000}",
            f"--screenshot={path}",
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        captured = done.returncode == 0 and path.is_file()
        ok &= captured
        print(f"{path}: {url}" if captured else f"{stem}: chromium failed ({done.returncode}): {done.stderr[-500:]}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefect-ui", default="http://127.0.0.1:4200", help="Prefect UI (default: %(default)s)")
    parser.add_argument("--prefect-api", help="Prefect API (default: <prefect-ui>/api)")
    parser.add_argument("--flow-run", help="flow run id (default: the newest nar-blueprint run)")
    parser.add_argument("--mlflow-ui", default="http://127.0.0.1:5000", help="MLflow UI (default: %(default)s)")
    parser.add_argument("--model", default="nar-processor", help="registered model (with --version)")
    parser.add_argument("--version", help="model version (default: models/registered.json's)")
    parser.add_argument("--workspace", default=".", help="the workspace with models/registered.json")
    parser.add_argument("--out", default="screenshots", help="directory for the PNGs (default: %(default)s)")
    parser.add_argument("--chromium", help="the Chromium binary (default: found on PATH)")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1800)
    parser.add_argument("--max-height", type=int, default=16000, help="tallest screenshot (Playwright)")
    parser.add_argument("--settle", type=int, default=5, help="seconds for a page's scripts to render")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = pages(args)
    chromium = find_chromium(args.chromium)
    try:
        import playwright  # noqa: F401
    except ImportError:
        if chromium is None:
            print("no browser: `pip install playwright` or `apt-get install chromium`", file=sys.stderr)
            return 1
        return 0 if with_chromium(targets, out, chromium, args) else 1
    return 0 if with_playwright(targets, out, chromium, args) else 1


if __name__ == "__main__":
    sys.exit(main())
