"""The upload page at `/ui`, driven in a real headless Chromium against the real gateway and TorchServe.

Debian's `chromium` and `chromium-driver` (scripts/setup.sh installs them) are driven by Selenium
through the driver's fixed path, so Selenium Manager never runs and nothing is downloaded. The
page must show what `POST /predict-file/` answers for the same file: the verdict, P(real), the
model version, a waveform it decodes itself, a coloured block per segment, and the gateway's own
words when an upload is refused. The real and fake clips are scored by the committed default
model (registered as an extra version for this module), so the page shows both verdicts.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from model.audio import decode_audio
from model.signals import wav_bytes
from scripts.demo_samples import write_samples
from tests.audio_fixtures import SAMPLE_RATE
from tests.conftest import TorchServeFixture
from tests.gateway.test_integration import AUTH, HTTP_TIMEOUT_SECONDS, LIMIT_BYTES, REPO_ROOT, running_gateway

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_ARGUMENTS = ("--headless", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500")
SHIPPED_MODEL = REPO_ROOT / "artifacts" / "default"
SHIPPED_VERSION = "shipped-ui"
PAGE_WAIT_SECONDS = 300.0
"""A generous bound on one page round trip (CPU inference on a busy machine); not a latency check."""
HALF_SECONDS = 10.0
SCORE_TOLERANCE = 1e-9
SHOWN_PERCENT_TOLERANCE = 0.05  # the page shows one decimal
SHOWN_SECONDS_TOLERANCE = 0.005  # and seconds with two
BLOCK_LABEL = re.compile(r"([\d.]+) s – ([\d.]+) s: P\(real\) ([\d.]+) %")
DECODED_SECONDS_TOLERANCE = 0.05  # the browser's decoder and resampler against the server's
SCREENSHOT = "ui-screenshot.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAGE_FAILURES = re.compile(r"Uncaught|Content[- ]Security[- ]Policy", re.IGNORECASE)
DROP_SCRIPT = """
const [name, encoded] = arguments;
const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
const files = new DataTransfer();
files.items.add(new File([bytes], name));
document.getElementById("dropzone").dispatchEvent(
  new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true }));
"""
INKED_PIXELS_SCRIPT = """
const canvas = document.getElementById("waveform");
const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let inked = 0;
for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked++;
return inked;
"""


@dataclass(frozen=True)
class Shown:
    """What the page shows for one scored file."""

    verdict: str
    label: str
    prediction: float
    percent: float
    version: str
    filename: str


class UploadPage:
    """The `/ui` page in the browser, read through the ids and data attributes it keeps stable."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    def element(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def choose_version(self, version: str) -> None:
        Select(self.element("version")).select_by_value(version)

    def pick(self, path: Path) -> str:
        """Choose `path` with the file input; return the page's state once it has an answer."""
        self.element("file").send_keys(str(path))
        return self.answered(path.name)

    def drop(self, name: str, content: bytes) -> str:
        """Drop a file with `content` on the drop zone, as a drag from the desktop would."""
        self.driver.execute_script(DROP_SCRIPT, name, base64.b64encode(content).decode())
        return self.answered(name)

    def answered(self, name: str) -> str:
        body = self.driver.find_element(By.TAG_NAME, "body")

        def finished(_: WebDriver) -> str | None:
            done = body.get_attribute("data-file") == name and body.get_attribute("data-state") in ("done", "error")
            return body.get_attribute("data-state") if done else None

        return WebDriverWait(self.driver, PAGE_WAIT_SECONDS).until(finished)

    def shown(self) -> Shown:
        result = self.element("result")
        return Shown(
            verdict=self.element("verdict").text,
            label=result.get_attribute("data-label"),
            prediction=float(result.get_attribute("data-prediction")),
            percent=float(self.element("probability").text.removesuffix(" %")),
            version=self.element("model-version").text,
            filename=self.element("filename").text,
        )

    def waveform_seconds(self) -> float:
        return float(self.element("waveform").get_attribute("data-duration"))

    def waveform_inked_pixels(self) -> int:
        return self.driver.execute_script(INKED_PIXELS_SCRIPT)

    def blocks(self) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, "#timeline li")

    def failures(self) -> list[str]:
        """Script errors and CSP violations the browser logged since the last call."""
        return [entry["message"] for entry in self.driver.get_log("browser") if PAGE_FAILURES.search(entry["message"])]


@pytest.fixture(scope="module")
def gateway_url(torchserve: TorchServeFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("ui-gateway") / "uvicorn.log"
    with running_gateway(torchserve.inference_url, torchserve.management_url, torchserve.metrics_url, log) as url:
        yield url


@pytest.fixture(scope="module")
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=HTTP_TIMEOUT_SECONDS) as client:
        yield client


@pytest.fixture(scope="module")
def shipped_version(torchserve: TorchServeFixture, http: httpx.Client) -> Iterator[str]:
    """The committed default model as a second, non-default version; unregistered afterwards."""
    archive = torchserve.make_archive(SHIPPED_VERSION, checkpoint=SHIPPED_MODEL).name
    try:
        registered = http.post("/models", json={"archive": archive}, headers=AUTH)
        assert registered.status_code == 201, registered.text
        yield SHIPPED_VERSION
    finally:
        httpx.delete(f"{torchserve.management_url}/models/{torchserve.model_name}/{SHIPPED_VERSION}", timeout=30)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A human recording and espeak-ng reading the same line (the demo's pair)."""
    return write_samples(tmp_path_factory.mktemp("ui-samples"))


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `make setup` (Debian chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in BROWSER_ARGUMENTS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver, gateway_url: str) -> Iterator[UploadPage]:
    """A freshly loaded page whose version list is filled in; it must log no script or CSP error.

    Module fixtures (such as `shipped_version`) are set up before this one, so the list includes them.
    """
    browser.get(f"{gateway_url}/ui")
    upload = UploadPage(browser)
    WebDriverWait(browser, PAGE_WAIT_SECONDS).until(lambda _: upload.element("version").get_attribute("data-loaded"))
    yield upload
    assert upload.failures() == []


def predict_over_http(http: httpx.Client, name: str, content: bytes, version: str | None = None) -> httpx.Response:
    return http.post(
        "/predict-file/", params={"version": version} if version else None, files={"file": (name, content)}
    )


def half_real_half_fake(real: Path, fake: Path) -> bytes:
    """WAV: the real recording looped for the first half, the fake one for the second."""
    halves = [np.resize(decode_audio(path), round(HALF_SECONDS * SAMPLE_RATE)) for path in (real, fake)]
    return wav_bytes(np.concatenate(halves))


def rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", colour)[:3])


def test_page_shows_the_verdict_probability_and_version_of_a_real_and_a_fake_clip(
    shipped_version: str, page: UploadPage, http: httpx.Client, samples: tuple[Path, Path]
) -> None:
    page.choose_version(shipped_version)
    for clip, label, verdict in zip(samples, ("real", "fake"), ("Real speech", "Fake speech"), strict=True):
        expected = predict_over_http(http, clip.name, clip.read_bytes(), shipped_version)
        assert expected.status_code == 200, expected.text
        answer = expected.json()
        assert answer["label"] == label

        assert page.pick(clip) == "done"

        shown = page.shown()
        assert (shown.verdict, shown.label, shown.filename) == (verdict, label, clip.name)
        assert shown.prediction == pytest.approx(answer["prediction"], abs=SCORE_TOLERANCE)
        assert shown.percent == pytest.approx(100 * answer["prediction"], abs=SHOWN_PERCENT_TOLERANCE)
        assert shown.version == answer["version"] == shipped_version
        assert page.waveform_seconds() == pytest.approx(answer["duration_seconds"], abs=DECODED_SECONDS_TOLERANCE)
        assert page.waveform_inked_pixels() > 0


def test_long_clip_gets_one_coloured_block_per_segment_under_the_waveform(
    shipped_version: str, page: UploadPage, http: httpx.Client, samples: tuple[Path, Path], tmp_path: Path
) -> None:
    audio = half_real_half_fake(*samples)
    answer = predict_over_http(http, "half-and-half.wav", audio, shipped_version).json()
    segments = answer["segments"]
    assert len(segments) > 1

    page.choose_version(shipped_version)
    assert page.drop("half-and-half.wav", audio) == "done"

    blocks = page.blocks()
    assert page.element("timeline").is_displayed()
    assert len(blocks) == len(segments)
    for block, segment in zip(blocks, segments, strict=True):
        assert float(block.get_attribute("data-start")) == segment["start_seconds"]
        assert float(block.get_attribute("data-end")) == segment["end_seconds"]
        assert float(block.get_attribute("data-prediction")) == pytest.approx(
            segment["prediction"], abs=SCORE_TOLERANCE
        )
        label = block.get_attribute("aria-label")
        assert block.get_attribute("title") == label
        start, end, percent = (float(number) for number in BLOCK_LABEL.fullmatch(label).groups())
        assert (start, end) == pytest.approx(
            (segment["start_seconds"], segment["end_seconds"]), abs=SHOWN_SECONDS_TOLERANCE
        )
        assert percent == pytest.approx(100 * segment["prediction"], abs=SHOWN_PERCENT_TOLERANCE)
    # Colour follows the score (the verdicts themselves are the model's business): the most "real"
    # segment is drawn greener than the most "fake" one.
    scores = [segment["prediction"] for segment in segments]
    assert max(scores) - min(scores) > SCORE_TOLERANCE
    most_real, most_fake = (
        rgb(blocks[scores.index(pick(scores))].value_of_css_property("background-color")) for pick in (max, min)
    )
    assert most_real[1] - most_real[0] > most_fake[1] - most_fake[0]
    assert page.waveform_seconds() == pytest.approx(2 * HALF_SECONDS, abs=DECODED_SECONDS_TOLERANCE)

    screenshot = tmp_path / SCREENSHOT
    assert page.driver.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    runs = REPO_ROOT / "runs"
    if runs.is_dir():
        shutil.copyfile(screenshot, runs / SCREENSHOT)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", b"These are meeting notes, not a recording.\n" * 20),
        ("empty.wav", b""),
        ("huge.wav", bytes(2 * LIMIT_BYTES)),
    ],
    ids=["not-audio", "empty", "over-the-limit"],
)
def test_refused_upload_shows_the_gateway_message(
    page: UploadPage, http: httpx.Client, tmp_path: Path, name: str, content: bytes
) -> None:
    expected = predict_over_http(http, name, content)
    assert expected.status_code >= 400
    path = tmp_path / name
    path.write_bytes(content)

    assert page.pick(path) == "error"

    assert page.element("message").text == expected.json()["detail"]
    assert page.element("problem-status").text == f"HTTP {expected.status_code}"
    assert not page.element("result").is_displayed()
