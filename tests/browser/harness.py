"""Drive JupyterLab in headless Chromium: serve a folder, open and run a notebook, act on its widgets.

Reads results from the notebook *model* (outputs as the kernel sent them), not from DOM text, which
also matches cell sources and misses outputs scrolled out of view. Widgets are found by the CSS
classes cryonb gives them (``cryonb-monitor-progress``...) or by a button's description.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]

# Concatenated text of every output in the current notebook, error outputs as "ENAME: evalue".
_OUTPUTS_JS = """() => {
  const nb = window.jupyterapp.shell.currentWidget;
  let text = '';
  for (const cell of nb.content.model.cells) {
    if (cell.type !== 'code') continue;
    for (let i = 0; i < cell.outputs.length; i++) {
      const o = cell.outputs.get(i).toJSON();
      if (o.text) text += [].concat(o.text).join('');
      if (o.data && o.data['text/plain']) text += [].concat(o.data['text/plain']).join('') + '\\n';
      if (o.ename) text += `${o.ename}: ${o.evalue}\\n`;
    }
  }
  return text;
}"""

# Run code in the notebook's kernel outside any cell; resolves to its stdout (or the error).
_EXECUTE_JS = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false});
  let out = '';
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === 'stream') out += msg.content.text;
    if (msg.header.msg_type === 'error') out += `${msg.content.ename}: ${msg.content.evalue}`;
  };
  await future.done;
  return out;
}"""


def missing_requirements() -> str | None:
    """Why browser tests cannot run here (Chromium or a Python package missing), or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (install it with `apt-get install -y chromium`, or run `make browser-deps`)"
    absent = [m for m in ("playwright", "jupyterlab", "ipywidgets", "nbformat") if importlib.util.find_spec(m) is None]
    if absent:
        return f"missing Python packages {', '.join(absent)} (pip install -e '.[browser]')"
    return None


def write_notebook(path: Path, *cells: str) -> Path:
    """A Python 3 notebook at ``path`` with one code cell per string."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.write_text(nbformat.writes(nb))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 serving ``root``, its state kept under ``state``.

    Kernels it starts import cryonb from this checkout. Use as a context manager.
    """

    def __init__(self, root: Path, state: Path, timeout: float = 60):
        self.root, self.state, self.timeout = Path(root), Path(state), timeout
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = self.state / "jupyterlab.log"
        # The kernel that notebooks opened with ``warm=True`` share (see LabPage.open), once one has started.
        self.warm_kernel: str | None = None

    def __enter__(self) -> JupyterLab:
        self.state.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "JUPYTER_CONFIG_DIR": str(self.state / "config"),
            "JUPYTER_RUNTIME_DIR": str(self.state / "runtime"),
            "IPYTHONDIR": str(self.state / "ipython"),
            "MPLBACKEND": "agg",
        }
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.user_settings_dir={self.state / 'settings'}",
            f"--LabApp.workspaces_dir={self.state / 'workspaces'}",
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self):
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=2) as r:
                    json.load(r)
                    return
            except OSError:
                time.sleep(0.25)
        raise TimeoutError(f"JupyterLab did not answer in {self.timeout} s:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc):
        """Stop the server and whatever it started (its kernels share its process group)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def api(self, method: str, path: str, body: dict | None = None):
        """A call to the server's REST API; the decoded JSON answer (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}/api/{path}?token={self.token}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else None

    def kernel_alive(self, kernel_id: str | None) -> bool:
        return kernel_id is not None and any(k["id"] == kernel_id for k in self.api("GET", "kernels"))

    def notebook_url(self, name: str) -> str:
        """The notebook in a workspace of its own, reset, so no earlier layout gets in the way."""
        return f"{self.base}/lab/workspaces/{secrets.token_hex(6)}/tree/{name}?reset&token={self.token}"


class LabPage:
    """A Playwright page showing one notebook of a :class:`JupyterLab`."""

    def __init__(self, page, lab: JupyterLab, warm: bool = False):
        self.page, self.lab, self.warm = page, lab, warm

    def open(self, name: str, timeout: float = 60):
        """Open notebook ``name`` (relative to the server's root) and wait for its kernel to be idle.

        A warm page's notebook runs on the kernel an earlier warm notebook of this server started, so
        that torch, HoloViews and datashader's compiled functions are ready (and cryonb's widgets load
        BokehJS into this page though the kernel loaded it into another one).
        """
        attached = self.warm and self.lab.kernel_alive(self.lab.warm_kernel)
        if attached:
            self.lab.api("POST", "sessions", {"path": name, "name": name, "type": "notebook",
                                              "kernel": {"id": self.lab.warm_kernel}})
        self.page.goto(self.lab.notebook_url(name))
        self.page.wait_for_function(
            "(name) => { const w = window.jupyterapp?.shell?.currentWidget;"
            " return w?.context?.path === name && w.sessionContext?.session?.kernel?.status === 'idle'; }",
            arg=name, timeout=timeout * 1000, polling=200,
        )
        if self.warm and not attached:
            self.lab.warm_kernel = self.kernel_id()

    def kernel_id(self) -> str:
        return self.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id")

    def run_all(self):
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    def run_notebook(self, name: str, *cells: str, until: str, timeout: float = 60) -> str:
        """Write ``cells`` as notebook ``name`` in the server's root, open it, run every cell and wait
        until ``until`` appears in the outputs (which are returned)."""
        write_notebook(self.lab.root / name, *cells)
        self.open(name)
        self.run_all()
        return self.wait_for_output(until, timeout=timeout)

    def outputs(self) -> str:
        """All the notebook's outputs as text, as the model holds them."""
        return self.page.evaluate(_OUTPUTS_JS)

    def wait_for_output(self, sentinel: str, timeout: float = 60) -> str:
        """Wait until ``sentinel`` appears in the outputs; fails at once on an error output."""
        end = time.monotonic() + timeout
        while True:
            text = self.outputs()
            if sentinel in text:
                return text
            error = re.search(r"^\w*(Error|Exception)\w*: .*$", text, re.M)
            if error:
                raise AssertionError(f"the notebook failed: {error.group(0)}\n{text[-2000:]}")
            if time.monotonic() > end:
                raise TimeoutError(f"{sentinel!r} not in the outputs after {timeout} s:\n{text[-2000:]}")
            time.sleep(0.2)

    def execute(self, code: str) -> str:
        """Run ``code`` in the notebook's kernel (not in a cell) and return what it printed."""
        return self.page.evaluate(_EXECUTE_JS, code)

    def widget(self, css: str):
        """The locator of the one rendered widget matching ``css`` in the outputs."""
        locator = self.page.locator(f".jp-OutputArea-output {css}")
        locator.wait_for(state="visible")
        return locator

    def button(self, description: str):
        """The rendered ipywidgets button whose text is exactly ``description``."""
        exact = re.compile(rf"^\s*{re.escape(description)}\s*$")
        return self.page.locator(".jp-OutputArea-output button.widget-button").filter(has_text=exact)

    def click_button(self, description: str):
        self.button(description).click()

    def text(self, css: str) -> str:
        """The text a rendered widget shows (a Label's value)."""
        return self.widget(css).inner_text().strip()

    def progress(self, css: str) -> float:
        """The filled fraction (0-1) of a rendered IntProgress/FloatProgress, from its bar's width."""
        width = self.widget(css).locator(".progress-bar").evaluate("(bar) => bar.style.width || bar.style.height")
        return float(width.rstrip("%")) / 100

    def wait_until(self, condition, timeout: float = 30, message: str = "condition", describe=None):
        """Poll ``condition()`` (which reads the page) until it is true; ``describe()``: what the page
        shows instead, told in the error if it never becomes true."""
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                seen = f"; instead: {describe()!r}" if describe is not None else ""
                raise TimeoutError(f"{message} not reached in {timeout} s{seen}")
            time.sleep(0.1)

    def close(self):
        """Shut the notebook's kernel down; a warm one is interrupted instead and kept for the next."""
        if not self.warm:
            self.page.evaluate("() => window.jupyterapp.shell.currentWidget?.sessionContext?.shutdown()")
        elif self.lab.kernel_alive(self.lab.warm_kernel):
            self.lab.api("POST", f"kernels/{self.lab.warm_kernel}/interrupt")


def foreground_pixels(png: bytes, tolerance: int = 16) -> int:
    """How many pixels of a screenshot differ from its most common colour by more than ``tolerance``."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return int((np.abs(rgb - background).max(1) > tolerance).sum())


def element_pixels(locator, tolerance: int = 16) -> int:
    """Non-background pixels in a screenshot of one element (a canvas, a plot, an image)."""
    return foreground_pixels(locator.screenshot(), tolerance)


def lasso(page, locator, polygon, steps: int = 10) -> list[tuple[float, float]]:
    """Drag a closed lasso over ``locator``: mouse down at the first vertex, move through the others
    and back, mouse up. ``polygon`` is in fractions (0-1) of the element's box, y downwards; returns
    the vertices in page pixels."""
    box = locator.bounding_box()
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in polygon]
    page.mouse.move(*points[0])
    page.mouse.down()
    for x, y in [*points[1:], points[0]]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()
    return points


def drag(page, locator, start, end, steps: int = 10) -> list[tuple[float, float]]:
    """Press at ``start``, move to ``end`` and release (fractions of ``locator``'s box, y downwards);
    returns the two points in page pixels."""
    box = locator.bounding_box()
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in (start, end)]
    page.mouse.move(*points[0])
    page.mouse.down()
    page.mouse.move(*points[1], steps=steps)
    page.mouse.up()
    return points


def launch_chromium(playwright, profile: Path):
    """Headless Debian Chromium using the profile folder ``profile`` (WebGL through SwiftShader)."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )
