"""Click to video in `flowvq ui`, beside `flowvq generate`, for the same clip.

    python benchmarks/bench_ui.py [--runs 2] [--weights BUNDLE] [--client]

The web page: `flowvq ui` is started once (its models load once; that time is printed apart), then for each run
headless Chromium loads the page, uploads examples/face.png and examples/speech.wav and presses Generate; the
figure is the time from the click until the page's video element can play (readyState ≥ 2). Without Chromium,
or with --client, gradio_client's submit-to-result time stands in. The CLI: `flowvq generate` on the same
files, timed as a user waits for it, a new process each run (Python imports and model loading included).
Prints the best run of each and their ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run


def cli_seconds(photo: Path, speech: Path, weights: str | None, out: Path) -> float:
    command = [sys.executable, "-m", "flowvq_cli", "generate", str(photo), str(speech), "--out", str(out), "--force",
               "-q", *(["--weights", weights] if weights else [])]
    t0 = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.strip() or f"flowvq generate exited with {proc.returncode}")
    return seconds


def page_seconds(server, photo: Path, speech: Path, runs: int, use_client: bool) -> tuple[list[float], str]:
    from flowvq_cli.ui_browser import browser_missing, generate_in_browser, open_browser

    missing = None if use_client else browser_missing()
    if use_client or missing:
        from gradio_client import Client, handle_file

        client = Client(server.url, verbose=False, download_files=tempfile.mkdtemp(prefix="bench-ui-"))
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            client.predict(photo=handle_file(photo), speech=handle_file(speech), api_name="/generate")
            times.append(time.perf_counter() - t0)
        how = "gradio_client submit to result, plots included"
        return times, how + (f" (no browser: {missing})" if missing else "")
    driver = open_browser()
    try:
        times = [generate_in_browser(driver, server.url, photo, speech, play=False).click_to_video_s
                 for _ in range(runs)]
    finally:
        driver.quit()
    return times, "headless Chromium, click to playable video"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--weights", default=None, help="bundle (default: the shipped one)")
    ap.add_argument("--photo", type=Path, default=REPO / "examples" / "face.png")
    ap.add_argument("--speech", type=Path, default=REPO / "examples" / "speech.wav")
    ap.add_argument("--client", action="store_true", help="time through gradio_client, not the browser")
    args = ap.parse_args()

    from flowvq_cli.audio.load import load_audio
    from flowvq_cli.ui_browser import Server

    seconds = load_audio(args.speech).duration
    clip = f"{args.photo.name} + {args.speech.name} ({seconds:.2f} s of speech), default options"
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        cli = [cli_seconds(args.photo, args.speech, args.weights, Path(tmp) / "cli.mp4") for _ in range(args.runs)]
    with Server(weights=args.weights) as server:
        page, how = page_seconds(server, args.photo, args.speech, args.runs, args.client)
    print(f"clip: {clip}; {args.runs} runs each")
    print(f"flowvq ui ({how}): {_runs(page)}; server start, models loaded once: {server.ready_s:.1f} s")
    print(f"flowvq generate (a new process each run, imports and models included): {_runs(cli)}")
    print(f"click to video / CLI: {min(page) / min(cli):.2f} ({min(page):.1f} s vs {min(cli):.1f} s, best runs)")
    print(f"machine: {machine()}")


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.1f}" for t in times) + f" s (best {min(times):.1f} s)"


if __name__ == "__main__":
    run(main)
