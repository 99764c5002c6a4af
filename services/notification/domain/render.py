"""Message templates: one set of files per (event, audience), rendered with Jinja2.

Layout of ``templates/``::

    <event>/<audience>.subject.j2   one line (whitespace is collapsed)
    <event>/<audience>.txt.j2       plain text: e-mail text part and WhatsApp
    <event>/<audience>.html.j2      HTML e-mail part, autoescaped
    <event>/<audience>.sms.j2       one short paragraph for SMS
    _layouts/                       shared layouts; directories starting with "_" are not events

Templates are strict: a variable missing from the context is an error, never an empty string.
Dates are formatted in the template with the filters ``tanggal`` and ``tanggal_jam`` so contexts
stay JSON-ready (ISO 8601 strings) and can be stored with a planned delivery.
"""

import re
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    UndefinedError,
    meta,
    nodes,
    select_autoescape,
)
from markupsafe import Markup, escape

from services.notification.domain.dates import format_date, format_datetime
from services.notification.domain.privacy import redact
from services.notification.domain.samples import SAMPLE_CONTEXTS

DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"

PARTS: tuple[str, ...] = ("subject", "txt", "html", "sms")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # event and audience names; "_layouts" is not one

# Two concatenated GSM-7 segments: beyond this an SMS costs more and some phones split it badly.
SMS_MAX_CHARS = 306


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    sms: str


class TemplateError(Exception):
    """A message cannot be rendered; retrying the same input will not help."""


class UnknownTemplate(TemplateError, LookupError):
    pass


class TemplateContextError(TemplateError, ValueError):
    pass


def _nl2br(value: Any) -> Markup:
    """Free text (an answer, a question) in HTML: escaped, line breaks kept."""
    return Markup("<br>\n").join(escape(line) for line in str(value).splitlines())


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _tidy_text(value: str) -> str:
    lines = [line.rstrip() for line in value.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


class TemplateCatalogue:
    def __init__(self, template_dir: Path | str = DEFAULT_TEMPLATE_DIR):
        self.template_dir = Path(template_dir)
        self._env = Environment(
            loader=FileSystemLoader(self.template_dir),
            undefined=StrictUndefined,
            # Only the HTML part is escaped: plain text, WhatsApp and SMS would show "&lt;".
            autoescape=select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False, default=False
            ),
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship with the code: no stat() of every template and layout per render
            # to see whether the file changed (about 20 per complaint).
            auto_reload=False,
            # Every template kept in a plain dict: the templates are a fixed set, and each
            # render looks up its layouts and macros here (6 a message) without the LRU cache's
            # lock and bookkeeping.
            cache_size=-1,
        )
        # No Jinja globals (range, dict, lipsum, cycler, joiner, namespace): the templates only
        # format their context. Jinja copies the globals into every part's context and iterates
        # them again for each layout and import (a ChainMap each time): about a fifth of a
        # render. A template that calls one fails as an undefined variable.
        self._env.globals.clear()
        self._env.filters.update(tanggal=format_date, tanggal_jam=format_datetime, nl2br=_nl2br)
        # (event, audience) -> {part: compiled template}, looked up once per pair.
        self._compiled: dict[tuple[str, str], dict[str, Any]] = {}

    def templates(self) -> list[tuple[str, str]]:
        """Every (event, audience) pair that has at least one template file, sorted."""
        pairs = {
            (path.parent.name, path.name.split(".", 1)[0])
            for path in self.template_dir.glob("*/*.j2")
            if not path.parent.name.startswith("_")
        }
        return sorted(pairs)

    def render(self, event: str, audience: str, context: Mapping[str, Any]) -> RenderedMessage:
        try:
            templates = self._templates(event, audience)
            safe_context = redact(audience, context)
            parts = {part: template.render(safe_context) for part, template in templates.items()}
        except TemplateNotFound as exc:
            raise UnknownTemplate(f"{event}/{audience}: missing template {exc.name}") from exc
        except UndefinedError as exc:
            raise TemplateContextError(f"{event}/{audience}: {exc.message}") from exc
        return RenderedMessage(
            subject=_one_line(parts["subject"]),
            text=_tidy_text(parts["txt"]),
            html=parts["html"].strip(),
            sms=_one_line(parts["sms"]),
        )

    def _templates(self, event: str, audience: str) -> dict[str, Any]:
        key = (event, audience)
        found = self._compiled.get(key)
        if found is None:
            names = self._names(event, audience)
            found = {part: self._env.get_template(name) for part, name in names.items()}
            self._compiled[key] = found
        return found

    def required_variables(self, event: str, audience: str) -> frozenset[str]:
        """Every variable the templates of the pair (and their layouts) may read."""
        seen: set[str] = set()
        found: set[str] = set()
        for name in self._names(event, audience).values():
            found |= self._variables(name, seen)
        return frozenset(found)

    def sample_context(
        self, event: str, audience: str, *, confidential: bool = False
    ) -> dict[str, Any]:
        return sample_context(event, audience, confidential=confidential)

    def _names(self, event: str, audience: str) -> dict[str, str]:
        if not (_NAME.match(event) and _NAME.match(audience)):
            raise UnknownTemplate(f"no templates for event {event!r} and audience {audience!r}")
        return {part: f"{event}/{audience}.{part}.j2" for part in PARTS}

    def _variables(self, name: str, seen: set[str]) -> set[str]:
        if name in seen:
            return set()
        seen.add(name)
        try:
            source, _, _ = self._env.loader.get_source(self._env, name)
        except TemplateNotFound as exc:
            raise UnknownTemplate(f"missing template {name}") from exc
        tree = self._env.parse(source)
        # meta reports a top-level `{% import ... as ui %}` as undeclared when a block uses it.
        imported = {node.target for node in tree.find_all(nodes.Import)}
        imported |= {
            name if isinstance(name, str) else name[1]
            for node in tree.find_all(nodes.FromImport)
            for name in node.names
        }
        found = set(meta.find_undeclared_variables(tree)) - imported
        for ref in meta.find_referenced_templates(tree):
            if ref is None:
                raise TemplateError(f"{name}: dynamic extends/include cannot be checked")
            found |= self._variables(ref, seen)
        return found


def sample_context(event: str, audience: str, *, confidential: bool = False) -> dict[str, Any]:
    """A realistic context for previews and tests (a fresh copy each call)."""
    try:
        context = deepcopy(SAMPLE_CONTEXTS[(event, audience)])
    except KeyError:
        raise UnknownTemplate(f"no sample context for {event}/{audience}") from None
    if "confidential" in context:
        context["confidential"] = confidential
    return context
