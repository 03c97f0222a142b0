"""DVC's plots page that draws offline (``make plots`` / ``make report``; ``nat2 plots-html``).

``dvc plots show`` writes an HTML page whose Vega, Vega-Lite and Vega-Embed scripts load from a CDN: offline, or on
a cluster node without internet, every plot stays blank. DVC takes a page template (``--html-template``); this
module writes one that carries those three libraries inline, taken from the copies Snakemake ships for its own
report (so they are installed with the pipeline and never downloaded), then runs ``dvc plots show`` (or
``dvc plots diff`` for revisions/experiments) with it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from nat2.errors import Nat2Error
from nat2.io import write_text

__all__ = ["offline_template", "plots_html", "vega_scripts"]

_LIBS = ("vega/vega.js", "vega-lite/vega-lite.js", "vega-embed/vega-embed.js")

_PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>nat2: DVC plots</title>
  {inline_scripts}
  <style>
    body {{ font-family: sans-serif; margin: 16px; }}
    table {{ border-spacing: 15px; }}
    img {{ max-width: 640px; }}
  </style>
</head>
<body>
  <h1>nat2: DVC plots</h1>
  <p>Drawn by <code>dvc plots {command}</code> from the plot definitions in <code>dvc.yaml</code>
     (the report's CSV files and figures).</p>
  {{plot_divs}}
</body>
</html>
"""


def vega_scripts() -> list[Path]:
    """Snakemake's bundled Vega, Vega-Lite and Vega-Embed (raises the one-line error when one is missing)."""
    import snakemake

    root = Path(snakemake.__file__).parent / "assets" / "data"
    paths = [root / lib for lib in _LIBS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise Nat2Error(f"Snakemake's bundled Vega scripts are missing ({', '.join(missing)}); reinstall snakemake "
                        "(pip install --force-reinstall snakemake)")
    return paths


def offline_template(command: str = "show") -> str:
    """A ``dvc plots --html-template`` page with the Vega libraries inline (no ``{scripts}``: no CDN tags)."""
    scripts = "\n  ".join(f"<script>{p.read_text(encoding='utf-8')}</script>" for p in vega_scripts())
    return _PAGE.format(inline_scripts=scripts, command=command)


def plots_html(out: Path, revisions: Sequence[str] = (), cwd: Path | None = None) -> Path:
    """Write DVC's plots page into folder ``out`` (``index.html``): the workspace, or ``dvc plots diff`` of revisions.

    Raises:
        Nat2Error: ``dvc plots`` failed (its last line is quoted).
    """
    command = "diff" if revisions else "show"
    template = out.parent / f".{out.name}.template.html"
    write_text(template, offline_template(command))
    try:
        proc = subprocess.run([sys.executable, "-m", "dvc", "plots", command, *revisions, "--html-template",
                               str(template.resolve()), "-o", str(out.resolve())],
                              cwd=cwd, capture_output=True, text=True)
    finally:
        template.unlink(missing_ok=True)
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        raise Nat2Error(f"dvc plots {command} failed: {lines[-1] if lines else proc.returncode}; run it by hand "
                        "to see the whole message")
    return out / "index.html"
