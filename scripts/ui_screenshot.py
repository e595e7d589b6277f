"""The README's screenshot of ``flowvq ui``, taken by headless Chromium from the running app.

    python scripts/ui_screenshot.py                      # → docs/ui.png, with the shipped weights

Starts ``flowvq ui`` on a free loopback port, uploads ``examples/face.png`` and ``examples/speech.wav``, picks
the emotion, presses Generate, waits for the video, stops it on a frame with the mouth open and photographs
the whole page. Needs the ``ui`` extra, selenium, and Chromium + chromedriver (Debian: ``apt-get install
chromium chromium-driver``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flowvq_cli.ui_browser import Server, browser_missing, generate_in_browser, open_browser  # noqa: E402

WIDTH = 1280
SEEK_JS = """
const v = document.querySelector('#video video'); const done = arguments[arguments.length - 1];
v.pause(); v.addEventListener('seeked', () => done(v.currentTime), {once: true}); v.currentTime = arguments[0];
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "ui.png")
    parser.add_argument("--weights", default=None, help="bundle for the server (default: the shipped one)")
    parser.add_argument("--photo", type=Path, default=REPO / "examples" / "face.png")
    parser.add_argument("--speech", type=Path, default=REPO / "examples" / "speech.wav")
    parser.add_argument("--emotion", default="happy")
    parser.add_argument("--at", type=float, default=1.3, help="the video's time shown, in seconds")
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        raise SystemExit(f"error: {missing}")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    with Server(weights=args.weights) as server:
        driver = open_browser(WIDTH, 1000)
        try:
            run = generate_in_browser(driver, server.url, args.photo, args.speech, emotion=args.emotion)
            WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#plots img"))
            time.sleep(1.0)  # the run's progress borders fade
            driver.execute_async_script(SEEK_JS, args.at)
            driver.execute_script("window.scrollTo(0, 0);")
            height, inner, outer = driver.execute_script(
                "return [document.documentElement.scrollHeight, window.innerHeight, window.outerHeight];")
            driver.set_window_size(WIDTH, height + (outer - inner) + 16)  # the whole page in the viewport
            time.sleep(1.0)  # layout after the resize
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    _shrink(args.out)
    print(f"{args.out} ({args.out.stat().st_size // 1024} KiB; click to video {run.click_to_video_s:.1f} s)")


def _shrink(path: Path) -> None:
    """The screenshot as a 256-colour PNG (photos dithered), a tenth of the size of the full-colour one."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        path, optimize=True)


if __name__ == "__main__":
    main()
