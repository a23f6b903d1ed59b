"""Lab: ``make lab``'s JupyterLab offers the plate_lib kernel, opens a notebook's .py pair as the same notebook and
saves both, runs 01_data_prep in a browser (headless Debian Chromium) to its first table, and 02_train in a live
kernel shows progress bars and reuses a finished run until the config changes.

The tests that start a server, a kernel or a browser are marked ``lab`` (``pytest -m lab`` runs them alone,
``-m 'not lab'`` skips them). The server serves a copy of the project in a temporary folder, so nothing here can
save over the committed notebooks."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from conftest import write_dl1_zip

from plate_lib.lab import has_display, lab_argv
from plate_lib.report import KERNEL, SESSION_ENV, ensure_kernel, interactive

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 45  # seconds for JupyterLab to answer (2-4 s on this project's 2-core machine)


def test_lab_opens_no_browser_without_a_display(monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    assert not has_display() and "--no-browser" in lab_argv(REPO)
    monkeypatch.setenv("DISPLAY", ":0")
    assert has_display() and "--no-browser" not in lab_argv(REPO)
    assert "--no-browser" in lab_argv(REPO, open_browser=False)


def test_lab_serves_the_port_asked_for_or_fails():
    argv = lab_argv(REPO, port=8890)
    assert "--ServerApp.port=8890" in argv and "--ServerApp.port_retries=0" in argv
    assert not any("port" in a for a in lab_argv(REPO)), "default: 8888 or the next free port"


def test_progress_bars_only_in_a_notebook_open_in_a_jupyter_server(monkeypatch):
    monkeypatch.delenv(SESSION_ENV, raising=False)
    assert not interactive()  # papermill, nbval, refresh: no server session
    monkeypatch.setenv(SESSION_ENV, "notebooks/02_train.ipynb")
    assert interactive()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project_copy(dest: Path) -> Path:
    """cfg.yaml, profiles/ and notebooks/ in ``dest``; data/ links to the repository's, which nbval shares."""
    dest.mkdir(parents=True)
    shutil.copy(REPO / "cfg.yaml", dest)
    shutil.copytree(REPO / "profiles", dest / "profiles")
    shutil.copytree(REPO / "notebooks", dest / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (REPO / "data").mkdir(exist_ok=True)
    (dest / "data").symlink_to(REPO / "data", target_is_directory=True)
    return dest


class Lab:
    """A JupyterLab server started as ``make lab`` starts it, on a free local port with a token of ours."""

    def __init__(self, root: Path, scratch: Path):
        ensure_kernel()  # as make lab and make report do: the kernel spec in this environment
        self.root, self.port, self.token = root, free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = scratch / "lab.log"
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),  # not the user's Jupyter folders
               "JUPYTERLAB_SETTINGS_DIR": str(scratch / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "ws")}
        env.pop(SESSION_ENV, None)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(lab_argv(root, self.port, open_browser=False, token=self.token), cwd=root,
                                         env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                self.api("GET", "/api/status")
                return
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"JupyterLab did not answer in {START_TIMEOUT} s:\n{self.log_tail()}")
            time.sleep(0.3)

    def api(self, method: str, path: str, body: dict | None = None) -> dict | list | None:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else None

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        """Shut the kernels and the server down through the API; kill the server's process group if it lingers."""
        with contextlib.suppress(OSError, ValueError):
            for kernel in self.api("GET", "/api/kernels") or []:
                self.api("DELETE", f"/api/kernels/{kernel['id']}")
            self.api("POST", "/api/shutdown")
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    scratch = tmp_path_factory.mktemp("lab")
    server = Lab(project_copy(scratch / "project"), scratch)
    try:
        yield server
    finally:
        server.stop()
    assert server.proc.returncode is not None


@pytest.mark.lab
def test_lab_server_offers_the_plate_lib_kernel_and_only_it(lab):
    specs = lab.api("GET", "/api/kernelspecs")
    assert specs["default"] == KERNEL
    assert list(specs["kernelspecs"]) == [KERNEL], "the notebooks' python3 falls back on the one python kernel"
    assert specs["kernelspecs"][KERNEL]["spec"]["display_name"] == f"Python ({KERNEL})"


@pytest.mark.lab
def test_lab_opens_the_py_pair_as_the_same_notebook_and_saves_both(lab):
    def cells(path: str) -> list[tuple[str, str]]:
        nb = lab.api("GET", f"/api/contents/notebooks/{path}?type=notebook&content=1")["content"]
        return [(c["cell_type"], c["source"]) for c in nb["cells"]]

    assert cells("02_train.py") == cells("02_train.ipynb")
    nb = lab.api("GET", "/api/contents/notebooks/02_train.ipynb?type=notebook&content=1")["content"]
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "Saved from Lab, paired."})
    lab.api("PUT", "/api/contents/notebooks/02_train.ipynb", {"type": "notebook", "format": "json", "content": nb})
    folder = lab.root / "notebooks"
    assert "# Saved from Lab, paired." in (folder / "02_train.py").read_text(encoding="utf-8")
    saved = nbformat.read(folder / "02_train.ipynb", as_version=4)
    assert saved.cells[-1].source == "Saved from Lab, paired."
    assert any(c.outputs for c in saved.cells if c.cell_type == "code"), "the outputs stay in the .ipynb"
    # a .py edited elsewhere (a text editor, a merge) is what the next open of the .ipynb shows
    py = folder / "03_error_analysis.py"
    py.write_text(py.read_text(encoding="utf-8") + "\n# %%\nprint('edited in the .py')\n", encoding="utf-8")
    assert cells("03_error_analysis.ipynb")[-1] == ("code", "print('edited in the .py')")


# --- JupyterLab in headless Chromium ----------------------------------------------------------------------------


def browser_paths() -> tuple[str, str] | str:
    """(chromium, chromedriver), or why the browser test cannot run here."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the dev extra: pip install -e '.[dev]')"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        return ("no Chromium and chromedriver found (on Debian: apt-get install chromium chromium-driver; "
                ".ci/run installs them)")
    return chromium, driver


BROWSER = browser_paths()
needs_browser = pytest.mark.skipif(isinstance(BROWSER, str), reason=str(BROWSER))


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1500,1000", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=BROWSER[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.lab
@needs_browser
def test_01_data_prep_runs_in_jupyterlab_to_its_first_table(lab, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def clickable(xpath: str):
        return wait.until(ec.element_to_be_clickable((By.XPATH, xpath)))

    def menu_item(label: str) -> str:  # a label may hold a mnemonic <span>: compare its whole text
        return (f"//li[contains(@class, 'lm-Menu-item')]"
                f"[.//div[contains(@class, 'lm-Menu-itemLabel')][normalize-space(.)='{label}']]")

    def menu(bar: str, item: str) -> None:
        clickable(f"//div[contains(@class, 'lm-MenuBar-itemLabel')][normalize-space(.)='{bar}']").click()
        clickable(menu_item(item)).click()

    def prompts() -> list[str]:  # the code cells' "[n]:" prompts, "[*]:" while queued or running
        return [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputArea .jp-InputPrompt")]

    def tracebacks() -> list[str]:  # an error's traceback is shown as stderr
        return [e.text for e in browser.find_elements(
            By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            if "Traceback" in e.text]

    screenshot = tmp_path / "lab-01_data_prep.png"
    wait = WebDriverWait(browser, 50)
    browser.get(f"{lab.url}/lab?token={lab.token}")
    try:
        # the launcher offers the project's kernel once the kernel specs are in; the file browser is in notebooks/
        launcher = clickable("//div[contains(@class, 'jp-LauncherCard')][@data-category='Notebook']")
        assert launcher.text == f"Python ({KERNEL})"
        ActionChains(browser).double_click(clickable(
            "//li[contains(@class, 'jp-DirListing-item')][.//span[text()='01_data_prep.ipynb']]")).perform()
        wait.until(lambda _: [s["kernel"]["execution_state"] for s in lab.api("GET", "/api/sessions")] == ["idle"])
        menu("Edit", "Clear Outputs of All Cells")
        assert not browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output table")
        menu("Run", "Run All Cells")
        table = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".jp-OutputArea-output table.dataframe")))
        rows = [r.text.split()[0] for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
        assert rows == ["train", "val", "test"]  # split_counts: plates per split, the notebook's first table
        n_code = len(code_cells("01_data_prep"))
        failed = wait.until(lambda _: tracebacks() or (len(prompts()) == n_code and
                                                       all(p.strip("[]:").isdigit() for p in prompts())))
        assert failed is True, f"a cell failed:\n{failed[0]}"
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", table)
        sessions = lab.api("GET", "/api/sessions")
        assert [(s["path"], s["kernel"]["name"]) for s in sessions] == [("notebooks/01_data_prep.ipynb", KERNEL)]
        browser.save_screenshot(str(screenshot))
        print(f"screenshot: {screenshot}")

        # the .py pair opens as a notebook too: right-click → Open With → Jupytext Notebook
        ActionChains(browser).context_click(clickable(
            "//li[contains(@class, 'jp-DirListing-item')][.//span[text()='02_train.py']]")).perform()
        clickable(menu_item("Open With")).click()
        clickable(menu_item("Jupytext Notebook")).click()
        wait.until(lambda _: ("notebooks/02_train.py", KERNEL) in
                   [(s["path"], s["kernel"]["name"]) for s in lab.api("GET", "/api/sessions")])
        n_cells = len(nbformat.read(lab.root / "notebooks" / "02_train.ipynb", as_version=4).cells)
        wait.until(lambda _: [len(panel.find_elements(By.CSS_SELECTOR, ".jp-Cell")) for panel in
                              browser.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel") if panel.is_displayed()]
                   == [n_cells])
    finally:
        browser.save_screenshot(str(tmp_path / "lab-last.png"))


# --- 02_train in a live kernel, as JupyterLab runs it ----------------------------------------------------------


def code_cells(name: str) -> list[str]:
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def run_cell(client, code: str) -> str:
    """Execute ``code``; everything it printed or displayed as text (stdout, stderr, text/plain), or its error."""
    out: list[str] = []

    def hook(msg):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind in ("display_data", "execute_result", "update_display_data"):
            out.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            out.append("\n".join(content["traceback"]))

    reply = client.execute_interactive(code, output_hook=hook, timeout=120)
    text = "".join(out)
    assert reply["content"]["status"] == "ok", text
    return text


@pytest.mark.lab
def test_02_train_in_a_live_kernel_shows_progress_and_reuses_a_finished_run(tmp_path):
    from jupyter_client.manager import start_new_kernel

    ensure_kernel()
    data = write_dl1_zip(tmp_path / "plates.zip", {"train": ["皖A12345", "苏B88888", "沪AD1234", "皖AD12345"] * 20,
                                                   "test": ["皖A54321", "鲁Q99999"]})
    # the parameters as a person would change them: own data, a small model, the run in tmp_path
    mine = {"data.source": str(data), "data.cache_dir": str(tmp_path / "cache"), "training.out_dir": str(tmp_path),
            "run.name": "lab", "model.hidden": 16, "training.batch_size": 16, "training.epochs": 1}
    params, setup, fit_cell, *_ = code_cells("02_train")
    assert "progress=report.interactive()" in fit_cell and "reuse=True" in fit_cell
    km, kc = start_new_kernel(kernel_name=KERNEL, cwd=str(REPO / "notebooks"),
                              env={**os.environ, SESSION_ENV: "notebooks/02_train.ipynb"})
    try:
        run_cell(kc, params + f"\noverrides = {{**overrides, **{mine!r}}}")
        run_cell(kc, setup)
        first = run_cell(kc, fit_cell)
        assert "epoch 1/1" in first, "a progress bar while training"
        assert "training " in first and "afresh" in first
        again = run_cell(kc, fit_cell)
        assert "reusing the finished run" in again and "epoch 1/1" not in again
        run_cell(kc, 'overrides["run.seed"] = 1')
        run_cell(kc, setup)
        changed = run_cell(kc, fit_cell)
        assert "the config differs (run.seed)" in changed and "epoch 1/1" in changed
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert (tmp_path / "lab" / "summary.json").is_file()
