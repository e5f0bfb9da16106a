"""The console in a real browser: Debian's Chromium driven by Playwright, against the real daemon of
conftest.py. Each test saves a screenshot of its view under its tmp dir, and fails on any error the
page logs (script errors, failed loads), except the 401 the wrong-token test asks for."""

from __future__ import annotations

import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from .conftest import ADMIN, USER, base_url, call

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 120_000

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra (make setup)")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("console"), pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=(
    "Chromium is not installed (apt-get install -y chromium; `make test` installs it when run as root)"))]
expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A fresh browser context on the console, with the errors it logs collected."""

    def __init__(self, browser, running, tmp_path: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.tmp_path, self.running = tmp_path, running
        self.page.goto(base_url(running) + "/")

    def connect(self, token: str = USER, admin: str = ADMIN) -> None:
        self.page.fill("#token", token)
        self.page.fill("#admin-token", admin)
        self.page.click("#connect")

    def shot(self, name: str) -> Path:
        path = self.tmp_path / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def number(self, selector: str, attribute: str = "data-value") -> float:
        return float(self.page.get_attribute(selector, attribute))


@pytest.fixture
def page(browser, console_daemon, tmp_path):
    p = Page(browser, console_daemon, tmp_path)
    yield p
    p.context.close()


def _no_errors(p: Page, allowed: str | None = None) -> None:
    left = [e for e in p.errors if not (allowed and re.search(allowed, e))]
    assert not left, left


def _connected(p: Page) -> None:
    p.connect()
    expect(p.page.locator("#server-line")).to_contain_text("Connected: gsvd")
    expect(p.page.locator('#voices-table tr[data-voice="alice"]')).to_contain_text("loaded")


def _set_options(p: Page, prefix: str, **values) -> None:
    for key, value in values.items():
        p.page.fill(f"#{prefix}-{key.replace('_', '-')}", str(value))


def test_page_loads_lists_the_voice_and_speaks_through_the_worklet(page):
    p = page
    _connected(p)
    row = p.page.locator('#voices-table tr[data-voice="alice"]')
    expect(row).to_contain_text("v2")
    expect(row).to_contain_text("synthetic test voice, no real person")  # the consent record
    p.shot("voices")
    p.page.click("#tab-speak")
    p.page.select_option("#speak-voice", "alice")
    p.page.select_option("#speak-language", "en")
    _set_options(p, "speak", seed=1, max_new_tokens=30, temperature=0.8)
    p.page.fill("#speak-text", "Hello there. This is a test.")
    p.page.click("#speak-go")
    expect(p.page.locator("#speak-take-status")).to_have_text(re.compile(r"^Done: \d+\.\d+ s of audio"), timeout=TIMEOUT_MS)
    expect(p.page.locator("#speak-take-status")).to_contain_text("AI-generated speech: voice alice, gsvd ")  # the label
    ttfa = p.number("#speak-take-ttfa")
    assert 0 < ttfa < 60_000 and re.fullmatch(r"\d+\.\d", p.page.inner_text("#speak-take-ttfa"))
    assert p.number("#speak-take-seconds") > 0.5 and p.number("#speak-take-rtf") > 0
    expect(p.page.locator("#speak-take-played")).to_have_attribute("data-value", re.compile(r"^[1-9]\d*$"))
    # the worklet played samples: wait until it has played at least 0.3 s of what arrived
    rate = p.page.evaluate("() => { const c = new AudioContext(); const r = c.sampleRate; c.close(); return r; }")
    expect(p.page.locator("#speak-take-played")).to_have_text(re.compile(r"^(0\.[3-9]\d|[1-9]\d*\.\d\d)$"))
    assert p.number("#speak-take-played") <= p.number("#speak-take-seconds") * rate + 1
    assert p.page.get_attribute("#speak-take-download", "href").startswith("blob:")
    with p.page.expect_download() as dl:
        p.page.click("#speak-take-download")
    wav_path = p.tmp_path / "take.wav"
    dl.value.save_as(wav_path)
    with wave.open(str(wav_path)) as w:
        assert w.getframerate() == rate and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert abs(pcm.size / rate - p.number("#speak-take-seconds")) < 0.01 and np.abs(pcm).max() > 0
    from gsvd.engine.provenance.label import read_label
    from gsvd.wavio import read_wav_metadata

    label = read_label(wav_path)  # the download carries the stream's label, as gsvd's own files do
    assert label is not None and label.voice == "alice" and label.generator.startswith("gsvd ")
    assert "AI-generated" in read_wav_metadata(wav_path).info["ICMT"]
    assert p.page.evaluate("() => document.querySelector('#speak-take-wave').toDataURL().length") > 1000
    p.shot("speak")
    _no_errors(p)


def test_ab_renders_two_takes_side_by_side(page):
    p = page
    _connected(p)
    p.page.click("#tab-ab")
    p.page.fill("#ab-text", "Same words, two ways.")
    for side, seed, temp in (("a", 1, 0.6), ("b", 2, 1.4)):
        p.page.select_option(f"#ab-{side}-language", "en")
        _set_options(p, f"ab-{side}", seed=seed, temperature=temp, max_new_tokens=25)
    p.page.click("#ab-go")
    for side in ("a", "b"):
        expect(p.page.locator(f"#ab-{side}-take-status")).to_have_text(re.compile(r"^Done"), timeout=TIMEOUT_MS)
        assert p.number(f"#ab-{side}-take-ttfa") > 0 and p.number(f"#ab-{side}-take-seconds") > 0
        expect(p.page.locator(f"#ab-{side}-take-play")).to_be_visible()
    p.page.click("#ab-b-take-play")  # B again through the player
    expect(p.page.locator("#ab-b-take-played")).to_have_attribute("data-value", re.compile(r"^[1-9]\d*$"))
    p.shot("ab")
    _no_errors(p)


def test_upload_makes_a_zero_shot_voice(page):
    from gsvd.engine.testing.bundle import synthetic_clip
    from gsvd.wavio import write_wav

    p = page
    clip = write_wav(p.tmp_path / "clip.wav", synthetic_clip(4.5, 22050), 22050)
    _connected(p)
    p.page.fill("#upload-name", "from-browser")
    p.page.select_option("#upload-base", "alice")
    p.page.select_option("#upload-language", "en")
    p.page.fill("#upload-transcript", "Hello, this is my voice.")
    p.page.fill("#upload-consent-speaker", "Synthetic Speaker")
    p.page.fill("#upload-consent-use", "browser tests")
    p.page.fill("#upload-consent-date", "2026-01-02")
    p.page.fill("#upload-consent-by", "the console test")
    p.page.fill("#upload-consent-statement", "the test's own synthetic clip")
    p.page.set_input_files("#upload-clip", str(clip))
    p.page.click("#upload-submit")
    expect(p.page.locator("#upload-status")).to_have_text("Voice from-browser is ready.", timeout=TIMEOUT_MS)
    row = p.page.locator('#voices-table tr[data-voice="from-browser"]')
    expect(row).to_contain_text("loaded (zero-shot)")
    expect(row).to_contain_text("Synthetic Speaker agreed to browser tests on 2026-01-02; recorded by the console test")
    expect(row).to_contain_text("the test's own synthetic clip")
    voices = {v["name"]: v for v in call(p.running, "GET", "/v1/voices")[1]["voices"]}
    assert voices["from-browser"]["source"] == "upload" and voices["from-browser"]["reference_text"] == "Hello, this is my voice."
    assert voices["from-browser"]["consent"]["speaker"] == "Synthetic Speaker"
    p.shot("upload")
    p.page.click("#tab-speak")  # the new voice is offered for speaking
    expect(p.page.locator('#speak-voice option[value="from-browser"]')).to_have_count(1)
    _no_errors(p)


def test_wrong_token_shows_an_error(page):
    p = page
    p.connect(token="not-the-token", admin="")
    alert = p.page.locator("#alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("The token was refused: this call needs a valid bearer token")
    expect(p.page.locator("#server-line")).to_contain_text("Not connected")
    expect(p.page.locator("#voices-table tbody tr")).to_have_count(0)
    p.shot("wrong-token")
    _no_errors(p, allowed=r"status of 401")  # the browser logs the refused request itself
    assert p.errors, "the refused call should have been made"


def test_run_report_and_epoch_samples_show_and_package(page, console_daemon):
    p = page
    _connected(p)
    p.page.click("#tab-runs")
    p.page.click('button[aria-label="Open run talker"]')
    expect(p.page.locator("#run-title")).to_have_text("Run talker (voice talker)")
    expect(p.page.locator("#run-stages li")).to_have_count(7)
    expect(p.page.locator("#run-fit-sovits")).to_have_attribute("value", "2")
    plot = p.page.locator("#run-plot")
    expect(plot).to_be_visible()
    assert plot.evaluate("img => img.complete && img.naturalWidth") > 100
    assert p.page.locator("#run-scores tbody tr").count() >= 1
    for model in ("sovits", "gpt"):
        expect(p.page.locator(f"#run-epochs-{model} .epoch")).to_have_count(2)
    p.page.click('button[aria-label="Listen to sentence 1 of gpt-e1"]')
    audio = p.page.locator('audio[aria-label="gpt-e1 sentence 1"]')
    expect(audio).to_have_count(1)
    expect(audio).to_have_js_property("readyState", 4, timeout=TIMEOUT_MS)  # the whole WAV is loaded
    assert audio.evaluate("a => a.duration") > 0.1
    p.page.check("#pick-sovits-1")
    p.page.check("#pick-gpt-2")
    p.shot("run")
    p.page.click("#run-package-go")
    expect(p.page.locator("#run-package-status")).to_have_text(
        "Voice talker is packaged and loaded (SoVITS epoch 1, GPT epoch 2).", timeout=TIMEOUT_MS)
    expect(p.page.locator("#run-packaged")).to_contain_text("from SoVITS epoch 1 and GPT epoch 2")
    assert "talker" in {v.name for v in console_daemon.engine.voices()}
    _no_errors(p)


def test_server_status_shows_numbers_and_charts(page):
    p = page
    _connected(p)
    call(p.running, "POST", "/v1/audio/speech", {"input": "Hi.", "voice": "alice", "response_format": "pcm"})
    p.page.click("#tab-status")
    facts = p.page.locator("#status-facts")
    expect(facts).to_contain_text("cpu (float32)")
    expect(facts).to_contain_text(re.compile(r"first audio p50 \d+\.\d ms, p95 \d+\.\d ms"))
    expect(p.page.locator("#status-models tbody tr").first).to_contain_text("alice")
    for chart in ("ttfa", "streams", "underruns"):
        assert p.page.locator(f"#chart-{chart}").evaluate("c => c.toDataURL().length") > 1000
    p.shot("status")
    _no_errors(p)


def test_every_control_is_labelled_and_the_page_works_by_keyboard(page):
    p = page
    _connected(p)
    unlabelled = p.page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                      && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
        .map(el => el.outerHTML.slice(0, 80))""")
    assert unlabelled == []
    p.page.focus("#tab-voices")
    p.page.keyboard.press("ArrowRight")
    expect(p.page.locator("#tab-speak")).to_be_focused()
    expect(p.page.locator("#view-speak")).to_be_visible()
    expect(p.page.locator("#view-voices")).to_be_hidden()
    p.page.keyboard.press("End")
    expect(p.page.locator("#view-status")).to_be_visible()
    p.page.keyboard.press("Home")
    p.page.keyboard.press("ArrowRight")
    p.page.select_option("#speak-language", "en")
    _set_options(p, "speak", seed=3, max_new_tokens=20)
    p.page.focus("#speak-text")
    p.page.keyboard.press("Control+Enter")  # speaks without the mouse
    expect(p.page.locator("#speak-take-status")).to_have_text(re.compile(r"^Done"), timeout=TIMEOUT_MS)
    p.shot("keyboard")
    _no_errors(p)
