"""Rendering reads and compiles each template (and its layouts) once per process: no file
system access per message (issue 8: ~20 stat() calls per complaint before), and the same text.
The catalogue keeps its templates in a plain dict and gives them no Jinja globals (session 6):
every message still reads as Jinja renders it with its defaults."""

import shutil

import pytest

from services.notification.domain.privacy import redact
from services.notification.domain.render import (
    DEFAULT_TEMPLATE_DIR,
    TemplateCatalogue,
    TemplateContextError,
    UnknownTemplate,
    _tidy_text,
    sample_context,
)

PAIR = ("complaint_routed", "unit")


def counting_loader(catalogue):
    calls = []
    loader = catalogue._env.loader
    real = loader.get_source

    def get_source(environment, name):
        calls.append(name)
        return real(environment, name)

    loader.get_source = get_source
    return calls


def test_a_template_and_its_layouts_are_read_once_then_rendered_from_memory():
    catalogue = TemplateCatalogue()
    calls = counting_loader(catalogue)
    context = sample_context(*PAIR)

    first = catalogue.render(*PAIR, context)
    read_first = len(calls)
    second = catalogue.render(*PAIR, context)

    assert read_first >= 4  # the four parts, and the layouts they extend
    assert len(calls) == read_first  # nothing read again
    assert second == first


def test_a_template_changed_on_disk_is_not_picked_up_by_a_running_catalogue(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATE_DIR, templates)
    catalogue = TemplateCatalogue(templates)
    context = sample_context(*PAIR)
    before = catalogue.render(*PAIR, context)

    (templates / "complaint_routed" / "unit.subject.j2").write_text("Diubah", encoding="utf-8")

    assert catalogue.render(*PAIR, context) == before
    assert TemplateCatalogue(templates).render(*PAIR, context).subject == "Diubah"


def test_a_missing_layout_is_an_unknown_template_every_time(tmp_path):
    templates = tmp_path / "templates"
    (templates / "complaint_routed").mkdir(parents=True)
    for part in ("subject", "txt", "html", "sms"):
        (templates / "complaint_routed" / f"unit.{part}.j2").write_text(
            '{% extends "_layouts/hilang.j2" %}', encoding="utf-8")
    catalogue = TemplateCatalogue(templates)

    for _ in range(2):
        with pytest.raises(UnknownTemplate, match="hilang"):
            catalogue.render(*PAIR, sample_context(*PAIR))


def jinja_defaults_render(catalogue, event, audience, context):
    """The four parts as Jinja renders them with its default cache and globals."""
    from jinja2 import Environment

    env = catalogue._env
    plain = Environment(
        loader=env.loader, undefined=env.undefined, autoescape=env.autoescape,
        trim_blocks=True, lstrip_blocks=True)
    plain.filters.update(env.filters)
    return {part: plain.get_template(f"{event}/{audience}.{part}.j2").render(context)
            for part in ("subject", "txt", "html", "sms")}


@pytest.mark.parametrize("confidential", [False, True])
def test_every_message_reads_as_jinja_renders_it_with_its_default_cache_and_globals(
        confidential):
    catalogue = TemplateCatalogue()
    for event, audience in catalogue.templates():
        context = sample_context(event, audience, confidential=confidential)
        expected = jinja_defaults_render(catalogue, event, audience, redact(audience, context))
        for _ in range(2):  # compiled, then from the catalogue's cache
            message = catalogue.render(event, audience, context)
            assert message.subject == " ".join(expected["subject"].split())
            assert message.html == expected["html"].strip()
            assert message.sms == " ".join(expected["sms"].split())
            assert message.text == _tidy_text(expected["txt"])


def test_a_template_calling_a_jinja_global_fails_as_a_context_error(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATE_DIR, templates)
    (templates / "complaint_routed" / "unit.sms.j2").write_text(
        "{% for i in range(2) %}{{ tracking_code }}{% endfor %}", encoding="utf-8")
    catalogue = TemplateCatalogue(templates)

    with pytest.raises(TemplateContextError, match="range"):
        catalogue.render(*PAIR, sample_context(*PAIR))
