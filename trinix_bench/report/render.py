"""Render NORMALIZATION.md and its plots from a stored results directory.

The pipeline is load (load.py) -> view model (model.py) -> Jinja template + matplotlib (plots.py).
Templates are found in this order: an explicit ``template_dir``; the checkout's top-level
``templates/`` folder next to ``trinix_bench/`` (running from a source tree); the installed
``trinix_bench.templates`` package. Jinja runs with StrictUndefined: a template that asks for a
field the view model does not have raises instead of printing nothing.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Optional

import jinja2

from .load import load_run
from .model import build_report_model
from .plots import write_plots

REPORT_TEMPLATE = "normalization.md.j2"
REPORT_FILENAME = "NORMALIZATION.md"
PLOTS_DIRNAME = "plots"
TEMPLATE_SUFFIX = ".j2"


def _checkout_templates() -> Optional[Path]:
    # trinix_bench/report/render.py -> the folder holding trinix_bench/ -> its templates/. Installed,
    # that folder is site-packages, so also ask for our main template to avoid someone else's templates/.
    candidate = Path(__file__).resolve().parents[2] / "templates"
    return candidate if (candidate / REPORT_TEMPLATE).is_file() else None


def _read_templates(folder) -> dict[str, str]:
    """name -> source of every *.j2 in ``folder`` (a Path or an importlib.resources Traversable)."""
    return {entry.name: entry.read_text(encoding="utf-8")
            for entry in folder.iterdir() if entry.name.endswith(TEMPLATE_SUFFIX) and entry.is_file()}


def default_templates() -> dict[str, str]:
    """The templates that ship with trinix_bench: the checkout's, else the installed package's."""
    checkout = _checkout_templates()
    if checkout is not None:
        return _read_templates(checkout)
    try:
        packaged = resources.files("trinix_bench.templates")
    except ModuleNotFoundError:
        raise ValueError("no report templates found: neither a templates/ folder next to trinix_bench/ "
                         "nor the installed package trinix_bench.templates; pass template_dir") from None
    return _read_templates(packaged)


def template_environment(template_dir: Optional[Path] = None) -> jinja2.Environment:
    """Jinja environment over ``template_dir`` (when given) layered on the default templates.

    A template_dir may override only some templates; the rest come from the defaults. One without
    any *.j2 file is a mistake (a wrong path), so it raises ValueError.
    """
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        folder = Path(template_dir)
        if not folder.is_dir():
            raise ValueError(f"template_dir: expected an existing folder of *.j2 templates, got {str(folder)!r}")
        overrides = _read_templates(folder)
        if not overrides:
            raise ValueError(f"template_dir: expected *.j2 templates in {str(folder)!r}, found none")
        loaders.append(jinja2.DictLoader(overrides))
    loaders.append(jinja2.DictLoader(default_templates()))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # markdown, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_template(name: str, model: dict[str, Any], template_dir: Optional[Path] = None) -> str:
    return template_environment(template_dir).get_template(name).render(**model)


def render_report(results_dir: Path, output_dir: Optional[Path] = None, template_dir: Optional[Path] = None) -> Path:
    """Write NORMALIZATION.md and plots/*.png for ``results_dir`` into ``output_dir``; return the md path.

    ``output_dir`` defaults to ``results_dir``. Raises ValueError for a missing results directory,
    no results file or no rows, and for a template_dir without templates; jinja2 errors (a missing
    field, a syntax error) propagate from a broken template.
    """
    run = load_run(results_dir, "results_dir")
    target = Path(output_dir) if output_dir is not None else run.results_dir
    if target.exists() and not target.is_dir():
        raise ValueError(f"output_dir: expected a directory, got the file {str(target)!r}")
    model = build_report_model(run)
    model["plots_dir"] = PLOTS_DIRNAME
    # Render before writing anything, so a broken template leaves no half-written report behind.
    text = render_template(REPORT_TEMPLATE, model, template_dir)
    target.mkdir(parents=True, exist_ok=True)
    write_plots(model["plots"], target / PLOTS_DIRNAME)
    report = target / REPORT_FILENAME
    report.write_text(text, encoding="utf-8")
    return report
