"""The Studio (/studio) in a real browser against the real service with SmolLM2.

One API process (with an API key) and one page for the whole module, as a user would go
through it: enter the key (a wrong one first), create a variant and chat with it, import the
handbook and see an answer's sources, fine-tune a few steps and watch the loss curve, open the
result in the playground, reload a job's page. The page may reach nothing but the API
(tests/utils/browser.py). Each page's screenshot goes to a temporary folder, or to docs/studio/
with STUDIO_SCREENSHOTS=1 (how the README's pictures are made).
"""

import os
import re

import pytest
from playwright.sync_api import expect

from api.config import REPO_ROOT
from tests.utils.api_process import ApiProcess
from tests.utils.browser import TIMEOUT_MS, OfflinePage
from tests.utils.pdfs import HANDBOOK, pdf_bytes
from tests.utils.tiny_model import qa_csv

KEY = "studio-browser-key-0123456789"
BASE = "smollm2-135m"
# Two steps of SmolLM2 with a small LoRA and an adapter export: the smallest job that ends in a
# model the playground can serve (the tiny random model never stops talking, so its export
# fails the smoke test).
FAST = {
    "Max Steps": "2",
    "Batch Size": "1",
    "Max Len": "64",
    "Lora R": "4",
    "Learning Rate": "0.00001",
    "Eval Rows": "0",
}
LONG_MS = 300_000
expect.set_options(timeout=TIMEOUT_MS)  # a first answer loads the model


@pytest.fixture(scope="module")
def api(tmp_path_factory, base_models_dir):
    root = tmp_path_factory.mktemp("studio-api")
    process = ApiProcess(root / "data", base_models_dir, LLM_API_KEY=KEY).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    if os.environ.get("STUDIO_SCREENSHOTS") == "1":
        folder = REPO_ROOT / "docs" / "studio"
        folder.mkdir(exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("studio-shots")


@pytest.fixture(scope="module")
def studio(browser, api):
    offline = OfflinePage(browser, api.port, viewport={"width": 1280, "height": 900})
    offline.page.on("dialog", lambda d: d.accept())  # "Delete …?" confirmations
    yield offline
    offline.context.close()
    assert offline.blocked == [], "the Studio tried to reach another host"
    assert offline.errors == []


def go(studio, hash_: str, until: str) -> None:
    studio.page.evaluate(f"location.hash = {hash_!r}")
    studio.wait_for(until, hash_)


def snap(studio, shots, name: str) -> None:
    studio.page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_the_studio_asks_for_the_key_and_says_when_it_is_wrong(studio, shots):
    studio.open("/", until="a[href='studio/']")
    studio.page.click("a[href='studio/']")
    dialog = studio.page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("needs its key")
    studio.page.fill("#key-input", "not-the-key")
    studio.page.click("#key-form button")
    expect(dialog).to_contain_text("The API key was refused: Invalid API key")
    expect(studio.page.locator("#key-input")).to_be_focused()
    studio.page.fill("#key-input", KEY)
    studio.page.click("#key-form button")
    expect(dialog).to_be_hidden()
    expect(studio.page.locator(f"tr[data-model='{BASE}']")).to_contain_text("base")
    assert studio.page.evaluate("sessionStorage.getItem('llm-studio-api-key')") == KEY
    assert studio.outside_links() == []


def test_create_a_variant_chat_with_it_and_delete_it(studio, shots):
    page = studio.page
    go(studio, "#models", "form.create")
    name = page.get_by_label("Name", exact=True)
    name.fill("Pirate Bot")
    expect(page.locator(".field-error").first).to_contain_text("lowercase")
    page.click("text=Create variant")  # the API's 422 shows at the field
    expect(page.locator(".field-error").first).to_contain_text("invalid name 'Pirate Bot'")
    name.fill("pirate")
    expect(page.locator(".field-error").first).to_have_text("")
    page.get_by_label("System prompt").fill("You are a pirate. Answer like a pirate.")
    page.click("text=Create variant")
    expect(page.locator("tr[data-model='pirate']")).to_contain_text("You are a pirate")
    snap(studio, shots, "models")

    page.click("tr[data-model='pirate'] a")  # its name opens the playground
    studio.wait_for("form textarea[name='prompt']", "playground")
    expect(page.get_by_label("Model", exact=True)).to_have_value("pirate")
    page.click("text=Options")
    page.get_by_label("Max tokens").fill("12")
    page.get_by_label("Seed").fill("1")
    page.get_by_label("Message").fill("Where is the treasure?")
    page.click("button:text('Send')")
    answer = page.locator(".chat[data-model='pirate'] .answer").first
    expect(answer).not_to_be_empty()
    expect(answer).not_to_have_attribute("aria-busy", "true", timeout=LONG_MS)
    assert len(answer.text_content().strip()) > 0

    page.get_by_label("Side by side with a second model").check()  # the same prompt to two
    page.get_by_label("Second model", exact=True).select_option(BASE)
    page.get_by_label("Message").fill("Say hello.")
    page.click("button:text('Send')")
    for model in ("pirate", BASE):
        column = page.locator(f".chat[data-model='{model}'] .answer").first
        expect(column).not_to_have_attribute("aria-busy", "true", timeout=LONG_MS)
        assert column.text_content().strip(), model
    snap(studio, shots, "playground")

    go(studio, "#models", "tr[data-model='pirate']")
    page.click("text=Delete pirate")
    expect(page.locator("tr[data-model='pirate']")).to_have_count(0)
    expect(page.locator("#status")).to_have_text("Deleted pirate.")


def test_import_the_handbook_and_answer_with_its_source_page(studio, shots, tmp_path):
    page = studio.page
    pdf = tmp_path / "handbook.pdf"
    pdf.write_bytes(pdf_bytes(HANDBOOK))
    bad = tmp_path / "notes.pdf"
    bad.write_bytes(b"just text, not a PDF")
    go(studio, f"#documents/{BASE}", "input[type='file']")
    page.set_input_files("input[type='file']", [str(pdf), str(bad)])
    page.click("button:text('Import')")
    expect(page.locator(".upload[data-file='handbook.pdf']")).to_contain_text(
        "imported: 4 pages",
        timeout=LONG_MS,  # the first import loads the embedding model
    )
    expect(page.locator(".upload[data-file='handbook.pdf'] progress")).to_have_attribute(
        "value", "100"
    )
    expect(page.locator(".upload[data-file='notes.pdf'] .error")).to_contain_text("is not a PDF")
    expect(page.locator("tr[data-document='handbook.pdf']")).to_contain_text("4")
    snap(studio, shots, "documents")

    go(studio, f"#playground/{BASE}", "form textarea[name='prompt']")
    page.get_by_label("Answer from documents").check()
    page.get_by_label("handbook.pdf").check()
    page.click("text=Options")
    page.get_by_label("Max tokens").fill("16")
    page.get_by_label("Message").fill("What is the gate access code for the car park?")
    page.click("button:text('Send')")
    source = page.locator(".source").first
    expect(source.locator("summary")).to_have_text("handbook.pdf, page 3", timeout=LONG_MS)
    source.locator("summary").click()
    expect(source.locator("blockquote")).to_contain_text("ZEBRA-42")
    snap(studio, shots, "playground-sources")


def test_fine_tune_shows_problems_then_trains_with_a_live_loss_curve(studio, shots, tmp_path):
    page = studio.page
    bad = tmp_path / "bad.csv"
    bad.write_text("input,output\n,an answer\na question,\n")
    good = tmp_path / "train.csv"
    good.write_bytes(qa_csv(12))
    go(studio, "#finetune", "input[name='train_file']")
    page.get_by_label("New model name").fill("pirate-tuned")
    page.set_input_files("input[name='train_file']", str(bad))
    page.click("text=Start fine-tuning")
    problems = page.locator("form .error")
    expect(problems).to_contain_text("train_file has 2 problem(s)")
    expect(problems.locator("li")).to_have_text(
        ["row 1: 'input' is empty", "row 2: 'output' is empty"]
    )

    page.set_input_files("input[name='train_file']", str(good))
    page.click("text=Hyperparameters")
    expect(page.get_by_label("Max Steps")).to_have_value("-1")  # the schema's default
    expect(page.get_by_label("GPUs", exact=True)).to_have_value("1")  # gpus, titled in the schema
    for label, value in FAST.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_label("Export", exact=True).select_option("adapter")
    page.get_by_label("Gradient Checkpointing").uncheck()
    snap(studio, shots, "finetune")
    page.click("text=Start fine-tuning")
    page.wait_for_url(re.compile(r"#job/ftjob-"))
    job_id = page.url.rsplit("/", 1)[1]

    expect(page.locator(".job-step")).to_have_text("2/2", timeout=LONG_MS)
    expect(page.locator(".job-outcome")).to_have_text("Job succeeded.", timeout=LONG_MS)
    assert page.locator(".chart .u-over").count() == 1
    assert page.evaluate("document.querySelector('.chart').textContent").count("loss") >= 2
    expect(page.locator(".metrics")).to_contain_text("Perplexity")
    expect(page.locator(".metrics")).to_contain_text("adapter")
    snap(studio, shots, "job")

    page.reload()  # the URL names the job: the page reconnects and replays its events
    expect(page.locator(".job-outcome")).to_have_text("Job succeeded.")
    expect(page.locator(".events li").first).to_contain_text("validating_files")
    points = page.evaluate("document.querySelectorAll('.events li').length")
    assert points >= 5

    page.click("text=Open pirate-tuned in the playground")
    studio.wait_for("form textarea[name='prompt']", "playground")
    expect(page.get_by_label("Model", exact=True)).to_have_value("pirate-tuned")

    go(studio, "#jobs", f"tr[data-job='{job_id}']")
    expect(page.locator(f"tr[data-job='{job_id}']")).to_contain_text("succeeded")
    expect(page.locator(f"tr[data-job='{job_id}']")).to_contain_text("step 2/2")
    snap(studio, shots, "jobs")


def test_generate_a_dataset_preview_download_and_fine_tune_on_it(studio, shots, tmp_path):
    page = studio.page
    seeds = tmp_path / "seeds.csv"
    seeds.write_text("input,output\nName a colour.,Blue.\nName a fruit.,Apple.\n")
    go(studio, "#datasets", "form select[name='teacher']")
    page.get_by_label("Teacher model").select_option(BASE)
    page.set_input_files("input[name='seed_file']", str(seeds))
    page.click("text=Settings")
    expect(page.get_by_label("Count", exact=True)).to_have_value("50")  # the schema's default
    page.get_by_label("Count", exact=True).fill("2")
    page.get_by_label("Max New Tokens", exact=True).fill("24")
    page.get_by_label("Seed", exact=True).fill("1")
    snap(studio, shots, "datasets")
    page.click("button:text('Generate')")
    page.wait_for_url(re.compile(r"#datasets/dsjob-"))
    dataset_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".dataset-state")).to_contain_text("succeeded", timeout=LONG_MS)
    expect(page.locator(".dataset-state")).to_contain_text("2 of 2 pairs kept")
    expect(page.locator(".preview table")).to_contain_text("instruction")
    with page.expect_download() as download:
        page.click("text=Download JSONL")
    assert download.value.suggested_filename == f"{dataset_id}.jsonl"
    assert len(open(download.value.path()).read().splitlines()) == 2
    snap(studio, shots, "dataset")
    page.click("text=Fine-tune on this")
    studio.wait_for("input[name='dataset_id']", "fine-tune")
    expect(page.locator("input[name='dataset_id']")).to_have_value(dataset_id)
    assert studio.blocked == []
