"""`flowvq ui`: the real server in its own process on a free loopback port, driven by gradio_client (the API a
script would use) and by headless Chromium (the page a person uses). Skipped without the `ui` extra; the
browser test also without Chromium and its driver. `.ci/run` installs both and sets FLOWVQ_REQUIRE_UI=1: there,
nothing here may skip."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from PIL import Image

from flowvq_cli.video import probe_video

REQUIRED = os.environ.get("FLOWVQ_REQUIRE_UI", "") == "1"  # CI: fail instead of skipping
if importlib.util.find_spec("gradio") is None and not REQUIRED:
    pytest.skip('flowvq ui needs the ui extra (pip install -e ".[ui]")', allow_module_level=True)

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from flowvq_cli.ui_browser import Server, browser_missing, generate_in_browser, open_browser  # noqa: E402

NO_BROWSER = browser_missing()
WORKDIRS: list[Path] = []  # the server's temporary folders seen in results: gone once it stops


@pytest.fixture(scope="module")
def server(tiny_bundle: Path):
    with Server(weights=tiny_bundle) as running:
        yield running
    assert running.returncode == 130, running.stderr  # stopped as Ctrl-C stops it
    assert "interrupted by SIGINT" in running.stderr
    assert WORKDIRS and not any(d.exists() for d in WORKDIRS), WORKDIRS


@pytest.fixture(scope="module")
def client(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Client:
    return Client(server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def short_speech(speech_wav: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example speech's first 1.6 s: a short job."""
    out = tmp_path_factory.mktemp("speech") / "speech.wav"
    with wave.open(str(speech_wav)) as src, wave.open(str(out), "wb") as dst:
        dst.setparams(src.getparams())
        dst.writeframes(src.readframes(int(1.6 * src.getframerate())))
    return out


@pytest.mark.slow
def test_a_photo_without_a_face_shows_the_clis_one_line(client: Client, tiny_bundle: Path, short_speech: Path,
                                                         tmp_path: Path) -> None:
    from skimage import data

    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    with pytest.raises(AppError) as caught:
        client.predict(photo=handle_file(tmp_path / "cat.png"), speech=handle_file(short_speech), api_name="/generate")
    cli = subprocess.run([sys.executable, "-m", "flowvq_cli", "generate", "cat.png", str(short_speech), "--weights",
                          str(tiny_bundle), "--out", "cat.mp4"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    lines = cli.stderr.strip().splitlines()
    assert cli.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: no face found in cat.png ")
    assert str(caught.value) == lines[0]
    with pytest.raises(AppError, match=r"^error: head pose 'reference' is the reference clip's head motion"):
        client.predict(photo=handle_file(tmp_path / "cat.png"), speech=handle_file(short_speech), pose="reference",
                       api_name="/generate")


@pytest.mark.slow
def test_a_generate_job_returns_playable_mp4s_csvs_and_plots(client: Client, face_png: Path,
                                                             short_speech: Path) -> None:
    """After the errors above, the same server makes videos: two samples, each stage reported as it runs."""
    job = client.submit(photo=handle_file(face_png), speech=handle_file(short_speech), emotion="happy", seed=3,
                        samples=2, api_name="/generate")

    async def progress_texts() -> list[str]:
        texts = []
        async for update in job:
            texts += [p.desc for p in getattr(update, "progress_data", None) or [] if p.desc]
        return texts

    stages = asyncio.run(progress_texts())
    job.result(timeout=600)
    assert len(job.outputs()) == 2  # the videos as soon as they are made, then the plots
    (video, others, downloads, no_plots, summary), last = job.outputs()
    plots = last[3]
    assert no_plots == [] and [last[k] for k in (0, 1, 2, 4)] == [{"__type__": "update"}] * 4  # the rest: kept
    assert [s["seed"] for s in summary] == [3, 4] and {s["emotion"] for s in summary} == {"happy"}
    WORKDIRS.append(Path(summary[0]["output"]).parents[1])
    info = probe_video(video)
    assert info.has_audio and info.fps == 25 and info.n_frames == summary[0]["frames"] == 40
    assert (info.width, info.height) == Image.open(face_png).size
    assert [Path(p).name for p in downloads] == ["face_speech_happy_s3.mp4", "face_speech_happy_s3.csv",
                                                 "face_speech_happy_s4.mp4", "face_speech_happy_s4.csv"]
    rows = Path(downloads[1]).read_text().splitlines()
    assert len(rows) == 41 and rows[0].startswith("Timecode,BlendShapeCount,EyeBlinkLeft")
    assert probe_video(downloads[2]).n_frames == 40
    assert [Path(v["video"]).name for v in others["value"]] == ["face_speech_happy_s4.mp4"] and others["visible"]
    assert [Path(p["image"]).name for p in plots] == [f"face_speech_happy_{n}.png" for n in ("s3_sync", "s3_blinks",
                                                                                             "s3_pose", "diversity")]
    for label in ("sample 1/2: analysing the photo", "sample 2/2: sampling", "sample 2/2: rendering frames 40/40"):
        assert any(t.startswith(label) for t in stages), stages


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None and not REQUIRED,
                    reason="the text box needs pocketsphinx: pip install -e '.[ui]'")
@pytest.mark.slow
def test_what_the_speech_says_shuts_the_lips_on_its_bilabials(client: Client, face_png: Path) -> None:
    """The page's text box reaches generate: the 15 p/b/m of speech3.wav's sentence are found and shut; so
    does the phones checkbox, without text."""
    speech = Path(__file__).resolve().parents[1] / "examples" / "speech3.wav"
    job = client.submit(photo=handle_file(face_png), speech=handle_file(speech), crop_only=True,
                        text="Bob put the maps by my bike, but Pam bought plum jam.", api_name="/generate")
    job.result(timeout=600)
    summary = job.outputs()[0][4]  # with the videos; the plots come after
    WORKDIRS.append(Path(summary["output"]).parents[1])
    assert summary["bilabials"] == 15
    heard = client.submit(photo=handle_file(face_png), speech=handle_file(speech), crop_only=True, phones=True,
                          api_name="/generate")
    heard.result(timeout=600)
    summary = heard.outputs()[0][4]
    assert "bilabials" in summary  # the checkbox reached generate: the recognised phones led the lips


@pytest.mark.skipif(NO_BROWSER is not None and not REQUIRED, reason=str(NO_BROWSER))
@pytest.mark.slow
def test_the_page_in_headless_chromium(server: Server, face_png: Path, speech_wav: Path, tmp_path: Path) -> None:
    from skimage import data

    assert NO_BROWSER is None, NO_BROWSER
    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    driver = open_browser()
    try:
        run = generate_in_browser(driver, server.url, face_png, speech_wav)
        with pytest.raises(RuntimeError, match=r"^the page shows error: no face found in cat\.png \("):
            generate_in_browser(driver, server.url, tmp_path / "cat.png", speech_wav)
    finally:
        driver.quit()
    video = run.video
    assert video["error"] is None and video["readyState"] >= 2 and video["currentTime"] > 0  # it plays
    assert video["duration"] == pytest.approx(4.92, abs=0.1) and (video["width"], video["height"]) == (360, 360)
    assert video["src"].startswith(server.url) and video["src"].endswith("face_speech_neutral_s0.mp4")
    assert "rendering frames" in run.stages_seen, run.stages_seen  # progress shown on the page
    elsewhere = [u for u in run.resources if not u.startswith((server.url, "data:", "blob:"))]
    assert not elsewhere, elsewhere  # offline: nothing from a CDN or anywhere else
