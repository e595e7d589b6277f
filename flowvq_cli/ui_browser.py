"""Drive ``flowvq ui`` from outside, as a user does: the real server in its own process on a free loopback
port (:class:`Server`), and its page in headless Chromium through selenium (:func:`chromium`,
:func:`generate_in_browser`).

Used by the tests (``tests/test_ui.py``), the README's screenshot (``scripts/ui_screenshot.py``) and the
click-to-video benchmark (``benchmarks/bench_ui.py``). The browser is Debian's ``chromium`` +
``chromium-driver`` (or Google Chrome and a chromedriver on PATH); selenium is given the driver's path, so
Selenium Manager never runs and nothing is downloaded.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from flowvq_cli.ui import STAGES

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver", "chromium-driver")
VIDEO_JS = """
const v = document.querySelector(arguments[0] + ' video');
if (!v || !v.currentSrc) return null;
return {src: v.currentSrc, readyState: v.readyState, duration: v.duration, currentTime: v.currentTime,
        width: v.videoWidth, height: v.videoHeight, error: v.error ? v.error.code : null};
"""
RESOURCES_JS = "return performance.getEntriesByType('resource').map(e => e.name);"
STATUS_JS = """
const text = sel => Array.from(document.querySelectorAll(sel)).map(e => e.textContent.trim()).join('\\n');
return {progress: text('.progress-level-inner, .progress-text'), toasts: text('[class*=toast-body]')};
"""  # textContent, not innerText: reading it costs the page no layout


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Server:
    """``flowvq ui`` in a subprocess on a free loopback port: ``with Server(weights=...) as s: s.url``.

    Leaving the block stops it with SIGINT, as Ctrl-C would (exit status 130); :attr:`stderr` then holds what it
    wrote there and :attr:`returncode` its exit status."""

    def __init__(self, *, weights: str | Path | None = None, host: str = "127.0.0.1", port: int | None = None,
                 args: tuple[str, ...] = (), cwd: str | Path | None = None, start_timeout: float = 300.0) -> None:
        self.host, self.port = host, port or free_port(host)
        self.url = f"http://{host}:{self.port}/"
        self.command = [sys.executable, "-m", "flowvq_cli", "ui", "--host", host, "--port", str(self.port), *args]
        if weights is not None:
            self.command += ["--weights", str(weights)]
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.ready_s = 0.0  # seconds from start to the page answering (models loaded)
        self._err = tempfile.TemporaryFile(mode="w+")

    def __enter__(self) -> Server:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=self._err,
                                     text=True)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"flowvq ui exited with status {self.proc.returncode}: {self.stderr.strip()}")
            if time.perf_counter() - t0 > self.start_timeout:
                self.stop()
                raise TimeoutError(f"flowvq ui did not answer on {self.url} in {self.start_timeout:.0f} s: "
                                   f"{self.stderr.strip()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.ready_s = time.perf_counter() - t0
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGINT, then wait (SIGKILL after ``timeout``); returns the exit status."""
        if self.proc is None or self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    @property
    def stderr(self) -> str:
        self._err.flush()
        self._err.seek(0)
        return self._err.read()


def chromium() -> tuple[str, str] | str:
    """(browser, driver) paths of a headless-capable Chromium and its chromedriver, or why there is none."""
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = next((p for p in map(shutil.which, DRIVERS) if p), None)
    if browser and driver:
        return browser, driver
    missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p)
    return (f"no {missing} on PATH: the browser test needs headless Chromium (Debian: apt-get install chromium "
            "chromium-driver; .ci/run installs them)")


def browser_missing() -> str | None:
    """Why a headless browser cannot be driven here (no Chromium, no chromedriver, no selenium), or None."""
    found = chromium()
    if isinstance(found, str):
        return found
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium; the dev extra has it)"
    return None


def open_browser(width: int = 1280, height: int = 1400):
    """A headless Chromium driven by selenium (``driver.quit()`` when done). Autoplay allowed, sound muted."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = chromium()
    if isinstance(found, str):
        raise RuntimeError(found)
    browser, driver = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                f"--window-size={width},{height}", "--autoplay-policy=no-user-gesture-required", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


@dataclass
class BrowserRun:
    """What one Generate click gave: seconds from the click to a playable video, the video element's state
    (after playing it a moment), the progress texts seen on the page, and every URL the page loaded."""

    click_to_video_s: float
    video: dict
    stages_seen: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)


def generate_in_browser(driver, url: str, photo: str | Path, speech: str | Path, *, emotion: str | None = None,
                        timeout: float = 600.0, play: bool = True) -> BrowserRun:
    """Load the page, upload ``photo`` and ``speech`` (and pick ``emotion``), press Generate, and wait until the
    video element's source can play (``readyState`` ≥ 2, a duration); with ``play``, play it until its time
    advances."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 60)
    for selector in ("#photo input[type=file]", "#speech input[type=file]", "#generate"):
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))
    driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(str(Path(photo).resolve()))
    driver.find_element(By.CSS_SELECTOR, "#speech input[type=file]").send_keys(str(Path(speech).resolve()))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photo img"))  # both uploaded and shown
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#speech audio, #speech .waveform-container, "
                                                         "#speech [data-testid=waveform-Speech]"))
    if emotion is not None:  # type into the dropdown, take the first match
        box = driver.find_element(By.CSS_SELECTOR, "#emotion input")
        box.click()
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(emotion, Keys.ENTER)
        driver.find_element(By.TAG_NAME, "h1").click()  # close the list
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#emotion input").get_attribute("value") == emotion)
    labels = [label for label, _ in STAGES.values()]
    seen: list[str] = []
    button = driver.find_element(By.CSS_SELECTOR, "#generate")
    t0 = time.perf_counter()
    button.click()
    while True:
        video = driver.execute_script(VIDEO_JS, "#video")
        if video and video["readyState"] >= 2 and video["duration"] and video["duration"] > 0:
            elapsed = time.perf_counter() - t0
            break
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"no playable video {timeout:.0f} s after Generate; the page says: "
                               f"{driver.find_element(By.TAG_NAME, 'body').text[-500:]}")
        status = driver.execute_script(STATUS_JS)
        if "error:" in status["toasts"]:
            raise RuntimeError("the page shows " + status["toasts"][status["toasts"].index("error:"):])
        seen += [label for label in labels if label in status["progress"] and label not in seen]
        time.sleep(0.2)
    if play:
        driver.execute_script("const v = document.querySelector('#video video'); v.muted = true; v.play();")
        deadline = time.perf_counter() + 20
        while video["currentTime"] <= 0 and time.perf_counter() < deadline:
            time.sleep(0.1)
            video = driver.execute_script(VIDEO_JS, "#video")
        driver.execute_script("document.querySelector('#video video').pause();")
    return BrowserRun(elapsed, video, seen, driver.execute_script(RESOURCES_JS))

