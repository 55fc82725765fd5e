"""Rendering the report: the jinja2 templates in ``templates/`` and the helpers view models use.

The environment escapes every value (``autoescape=True``) and refuses a name the view model does
not hold (``StrictUndefined``), so a typo in a template is an error, not an empty cell. View models
are plain dicts and lists built in Python: numbers already formatted (:func:`fmt`), images as
inline ``data:`` URIs (:func:`image`); the templates only lay them out.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import jinja2

from micrograde.pipeline.signal.display import data_uri

__all__ = ["NA", "fmt", "image", "render", "environment"]

NA = "n/a"


def fmt(value: object, digits: int = 3) -> str:
    """Numbers to short text; missing values (None, NaN, NaT) to ``n/a``."""
    if value is None:
        return NA
    try:
        if isinstance(value, float) and math.isnan(value):
            return NA
    except TypeError:
        pass
    if str(value) in ("NaT", "nan", "<NA>", ""):
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def image(png: bytes, alt: str) -> dict[str, str]:
    """An inline PNG (a plot) for a template: ``{"src": data URI, "alt": ...}``."""
    return {"src": data_uri(png), "alt": alt}


@functools.cache
def environment() -> jinja2.Environment:
    """The report's template environment (built once, on first use)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("micrograde.pipeline.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, context: Mapping[str, object]) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return environment().get_template(template).render(context)
