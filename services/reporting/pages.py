"""Pages of the reporting service (Bahasa Indonesia, Jinja2 autoescaping, no JavaScript)."""

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared.auth import ROLES
from shared.catalogue import CATEGORIES, CHANNELS, CONFIDENTIALITY, STATUSES

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals.update(
    STATUSES=STATUSES, CHANNELS=CHANNELS, CATEGORIES=CATEGORIES, CONFIDENTIALITY=CONFIDENTIALITY,
    ROLES=ROLES,
)


def _pct(value):
    return "-" if value is None else f"{value * 100:.1f}%".replace(".", ",")


def _bars(items: dict, width: int = 320):
    """(label, value, bar width in px) for an inline SVG bar chart (no inline styles: CSP)."""
    top = max(items.values(), default=0) or 1
    return [(k, v, max(1, round(v * width / top)) if v else 0) for k, v in items.items()]


_env.filters["pct"] = _pct
_env.filters["bars"] = _bars


def render(name: str, **context) -> str:
    return _env.get_template(name).render(**context)


def static_file(name: str) -> tuple[bytes, str] | None:
    path = (STATIC / name).resolve()
    if path.parent != STATIC.resolve() or not path.is_file():
        return None
    types = {".css": "text/css"}
    return path.read_bytes(), types.get(path.suffix, "application/octet-stream")
