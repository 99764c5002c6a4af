"""Rendering reads and compiles each template (and its layouts) once per process: no file
system access per message (issue 8: ~20 stat() calls per complaint before), and the same text."""

import shutil

import pytest

from services.notification.domain.render import (
    DEFAULT_TEMPLATE_DIR,
    TemplateCatalogue,
    UnknownTemplate,
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
