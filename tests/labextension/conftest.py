"""A real ``jupyter lab`` (with pai_extension and the prebuilt PAI Lab extension) against a real
``pai server``, driven by Playwright with Debian's chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.hub import CHROMIUM
from tests.nni import nni_venv, reap_nni
from tests.requirements import require_file
from tests.server import REPO, free_port, running_server

ARTIFACTS = REPO / "test-artifacts" / "lab"
PREBUILT = REPO / "labextension" / "build" / "pai-hub"
TOKEN = "lab-e2e-token"


def require_deps() -> None:
    require_file(PREBUILT / "package.json", "the built Lab extension", "make labextension")
    require_file(Path(CHROMIUM), "chromium", "make e2e-deps (Debian package `chromium`)")


@pytest.fixture(scope="module")
def pai(tmp_path_factory):
    require_deps()
    nni = nni_venv("3.0", required=False)  # for the experiment views; the other tests run without it
    env = {"PAI_NNI_PYTHON": str(nni / "bin" / "python")} if nni else {}
    with running_server(tmp_path_factory.mktemp("lab"), env=env) as srv:
        srv.has_nni = nni is not None
        srv.alice = srv.add_user("alice")
        yield srv
    reap_nni(srv.data_dir)


@pytest.fixture(scope="module")
def lab(pai, tmp_path_factory):
    root = tmp_path_factory.mktemp("labroot")
    # the prebuilt extension, found as it would be in <prefix>/share/jupyter/labextensions
    data = root / "jupyter-data"
    (data / "labextensions").mkdir(parents=True)
    (data / "labextensions" / "pai-hub").symlink_to(PREBUILT)
    work = root / "work"
    work.mkdir()
    settings = root / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    config = root / "jupyter_lab_e2e_config.py"
    config.write_text("c.ServerApp.jpserver_extensions = {'pai_extension': True, 'jupyterlab': True}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAI_", "JUPYTERHUB_", "PYTEST_"))}
    env.update({"PYTHONPATH": str(REPO), "JUPYTER_CONFIG_DIR": str(root / "cfg"), "JUPYTER_PATH": str(data),
                "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "PAI_URL": pai.url, "PAI_TOKEN": pai.alice,
                "PAI_USER_NAME": "alice"})
    port = free_port()
    log = open(root / "lab.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--config={config}", f"--ServerApp.root_dir={work}",
         "--ServerApp.port_retries=0", f"--LabApp.user_settings_dir={root / 'user-settings'}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited; see {log.name}")
        try:
            if httpx.get(url + "/api/status", headers={"Authorization": f"token {TOKEN}"}, timeout=1).is_success:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"jupyter lab did not start; see {log.name}")
        time.sleep(0.2)
    lab = type("Lab", (), {"url": url, "root": work, "log": root / "lab.log"})()
    yield lab
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1400, "height": 950})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        pg.errors = []
        pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
        pg.goto(f"{lab.url}/lab/workspaces/e2e?reset&token={TOKEN}")
        pg.wait_for_selector("#pai-jobs", state="attached")
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# WCAG 2 contrast of every piece of text in a panel against the background it is drawn on (alpha
# blended up the tree); disabled controls are exempt, as WCAG exempts inactive components.
CONTRAST_JS = """
(selector) => {
  const parse = c => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return [0, 0, 0, 0];
    const p = m[1].split(',').map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, under) => { const a = top[3] + under[3] * (1 - top[3]);
    if (!a) return [0, 0, 0, 0];
    return [0, 1, 2].map(i => (top[i] * top[3] + under[i] * under[3] * (1 - top[3])) / a).concat([a]); };
  const background = el => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255, 1]); };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const out = [];
  for (const el of document.querySelectorAll(selector + ' *')) {
    const own = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent.trim()).join('');
    if (!own || el.closest('[disabled], svg, .xterm') || el.matches('option')) continue;
    const bg = background(el);
    const fg = over(parse(getComputedStyle(el).color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    out.push({ratio: Math.round((a + 0.05) / (b + 0.05) * 100) / 100, text: own.slice(0, 40),
              cls: el.className && el.className.baseVal === undefined ? el.className : el.tagName});
  }
  return out.sort((x, y) => x.ratio - y.ratio);
}
"""


def contrast(page, selector: str) -> list[dict]:
    """The text of ``selector``'s panel with its contrast ratio, worst first."""
    return page.evaluate(CONTRAST_JS, selector)
