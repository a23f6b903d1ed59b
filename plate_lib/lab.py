"""Lab: the notebooks as a workbench. ``make lab`` runs ``python -m plate_lib.lab``: JupyterLab from this
environment, serving the project root with the file browser in ``notebooks/``, on the project's kernel.

The kernel is ``report.KERNEL``, installed as ``make report`` installs it (``report.ensure_kernel``), and the
only one the server offers: the notebooks name ``python3`` in their metadata, and JupyterLab picks the one
kernel of their language instead. Without a display (no ``$DISPLAY``/``$WAYLAND_DISPLAY`` on Linux) no browser is
opened; JupyterLab prints the URL with its token either way. Pairing with the ``.py`` files is jupytext's
contents manager, which the ``jupytext`` package enables in the server.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .report import KERNEL, ensure_kernel, find_root

NOTEBOOK_DIR = "notebooks"


def has_display() -> bool:
    """Whether a browser can open here: macOS and Windows always; elsewhere an X11 or Wayland display."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def lab_argv(root: str | Path, port: int | None = None, open_browser: bool | None = None,
             token: str | None = None) -> list[str]:
    """The command line that starts JupyterLab on ``root`` (``port`` None: 8888 or the next free one;
    ``open_browser`` None: when there is a display; ``token`` None: JupyterLab makes one and prints it)."""
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(root).resolve()}",
            f"--FileContentsManager.preferred_dir={NOTEBOOK_DIR}",
            f"--KernelSpecManager.allowed_kernelspecs={KERNEL}", f"--MappingKernelManager.default_kernel_name={KERNEL}"]
    if port is not None:
        argv += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]  # the port asked for, or an error
    if not (has_display() if open_browser is None else open_browser):
        argv.append("--no-browser")
    if token is not None:
        argv.append(f"--IdentityProvider.token={token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # containers and CI run as root; JupyterLab refuses to without this
    return argv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m plate_lib.lab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="the port to serve on (default: 8888 or the next free one)")
    parser.add_argument("--no-browser", action="store_true", help="print the URL rather than open a browser")
    args = parser.parse_args(argv)
    try:
        root = find_root()
    except FileNotFoundError as e:  # outside the project: say where to run it, no traceback
        sys.exit(f"python -m plate_lib.lab: {e} (or `make lab` there)")
    ensure_kernel()
    cmd = lab_argv(root, args.port, False if args.no_browser else None)
    print(f"lab: JupyterLab on {root} with the {KERNEL} kernel; open {NOTEBOOK_DIR}/01_data_prep.ipynb first",
          flush=True)
    os.execv(cmd[0], cmd)  # JupyterLab in this process: Ctrl-C reaches it alone


if __name__ == "__main__":
    main()
