import ast
import re
from pathlib import Path

import pytest

from services.notification.domain.render import (
    DEFAULT_TEMPLATE_DIR,
    SMS_MAX_CHARS,
    TemplateCatalogue,
    TemplateContextError,
    UnknownTemplate,
)
from services.notification.domain.samples import SAMPLE_CONTEXTS

CATALOGUE = TemplateCatalogue()
PAIRS = CATALOGUE.templates()
COMPLAINANT_EVENTS = {
    "complaint_received",
    "complaint_routed",
    "complaint_acknowledged",
    "info_requested",
    "complaint_responded",
    "complaint_resolved",
    "complaint_closed",
}
UNIT_EVENTS = {
    "complaint_routed",
    "info_received",
    "complaint_returned_rerouted",
    "sla_warning",
    "sla_breach",
}


def render_sample(event, audience, **overrides):
    context = CATALOGUE.sample_context(event, audience) | overrides
    return CATALOGUE.render(event, audience, context)


def test_catalogue_covers_every_event_and_audience_we_notify():
    expected = {(e, "complainant") for e in COMPLAINANT_EVENTS} | {(e, "unit") for e in UNIT_EVENTS}
    assert set(PAIRS) == expected


def test_every_template_pair_has_a_sample_context_and_no_sample_is_orphaned():
    assert set(SAMPLE_CONTEXTS) == set(PAIRS)


@pytest.mark.parametrize(("event", "audience"), PAIRS)
def test_every_template_renders_all_four_parts_with_its_sample(event, audience):
    message = render_sample(event, audience)
    assert message.subject and "\n" not in message.subject
    assert message.text.startswith("Yth. Bapak/Ibu")
    assert "terima kasih" in message.text.lower()
    assert message.html.startswith("<!DOCTYPE html>") and 'lang="id"' in message.html
    assert message.sms and "\n" not in message.sms


@pytest.mark.parametrize(("event", "audience"), PAIRS)
def test_templates_read_exactly_the_variables_of_their_sample_context(event, audience):
    required = CATALOGUE.required_variables(event, audience)
    provided = set(CATALOGUE.sample_context(event, audience))
    assert required - provided == set(), "template reads variables the sample does not provide"
    assert provided - required == set(), "sample provides variables no template reads"


@pytest.mark.parametrize(("event", "audience"), PAIRS)
def test_sms_fits_in_two_segments_of_plain_characters(event, audience):
    for confidential in (False, True):
        context = CATALOGUE.sample_context(event, audience, confidential=confidential)
        sms = CATALOGUE.render(event, audience, context).sms
        assert len(sms) <= SMS_MAX_CHARS
        assert re.fullmatch(r"[\x20-\x7e]+", sms), "non-ASCII would force UCS-2 (70 chars/SMS)"


@pytest.mark.parametrize(("event", "audience"), PAIRS)
def test_a_missing_variable_is_an_error_not_an_empty_string(event, audience):
    context = CATALOGUE.sample_context(event, audience)
    del context["tracking_code" if audience == "unit" else "tracking_url"]
    with pytest.raises(TemplateContextError):
        CATALOGUE.render(event, audience, context)


def test_required_variables_follow_layouts_and_flag_unknown_names(tmp_path):
    (tmp_path / "_layouts").mkdir()
    (tmp_path / "_layouts" / "base.txt.j2").write_text(
        "{{ from_layout }}{% block b %}{% endblock %}"
    )
    (tmp_path / "ping").mkdir()
    for part in ("subject", "html", "sms"):
        (tmp_path / "ping" / f"unit.{part}.j2").write_text("{{ name }}")
    (tmp_path / "ping" / "unit.txt.j2").write_text(
        '{% extends "_layouts/base.txt.j2" %}{% block b %}{{ typo_nmae }}{% endblock %}'
    )
    catalogue = TemplateCatalogue(tmp_path)

    assert catalogue.required_variables("ping", "unit") == {"name", "from_layout", "typo_nmae"}
    with pytest.raises(TemplateContextError):
        catalogue.render("ping", "unit", {"name": "x", "from_layout": "y"})


def test_unknown_template_pair_is_reported():
    with pytest.raises(UnknownTemplate):
        CATALOGUE.render("complaint_teleported", "unit", {})
    with pytest.raises(UnknownTemplate):
        CATALOGUE.sample_context("sla_breach", "complainant")


def test_html_escapes_a_script_in_the_summary_but_text_keeps_it_verbatim():
    summary = "Petugas bilang <script>alert('x')</script> & minta uang"
    message = render_sample("complaint_routed", "unit", summary=summary)
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; minta uang" in message.html
    assert summary in message.text


def test_html_escapes_free_text_from_units_and_keeps_its_line_breaks():
    message = render_sample("info_requested", "complainant", question="Baris <b>1</b>\nBaris 2")
    assert "Baris &lt;b&gt;1&lt;/b&gt;<br>\nBaris 2" in message.html


def test_dates_appear_in_indonesian_and_wib():
    message = render_sample("complaint_routed", "unit", due_at="2026-12-07T09:00:00+00:00")
    assert "Senin, 7 Desember 2026 pukul 16.00 WIB" in message.text
    assert "Senin, 7 Desember 2026" in message.sms


def test_unit_message_for_a_confidential_complaint_has_no_summary():
    context = CATALOGUE.sample_context("complaint_routed", "unit", confidential=True)
    summary = context["summary"]
    message = CATALOGUE.render("complaint_routed", "unit", context)
    for part in (message.subject, message.text, message.html, message.sms):
        assert summary not in part
    assert "bersifat rahasia" in message.text
    assert context["category_name"] in message.text


def test_rerouted_unit_message_for_a_confidential_complaint_has_no_free_text():
    context = CATALOGUE.sample_context("complaint_returned_rerouted", "unit", confidential=True)
    message = CATALOGUE.render("complaint_returned_rerouted", "unit", context)
    for part in (message.text, message.html, message.sms):
        assert context["summary"] not in part
        assert context["return_reason"] not in part


def _details(context):
    """Every sample value a confidential complainant message must not show."""
    shown = {"tracking_url", "confidential"}
    values = [v for k, v in context.items() if k not in shown and isinstance(v, str)]
    return [v for v in values if len(v) >= 4]


@pytest.mark.parametrize("event", sorted(COMPLAINANT_EVENTS))
def test_confidential_complainant_message_shows_nothing_but_the_tracking_link(event):
    context = CATALOGUE.sample_context(event, "complainant", confidential=True)
    message = CATALOGUE.render(event, "complainant", context)
    for part in (message.subject, message.text, message.html, message.sms):
        without_link = part.replace(context["tracking_url"], "")
        for detail in _details(context):
            assert detail not in without_link
        assert "Desember" not in without_link and "November" not in without_link
    assert context["tracking_url"] in message.text
    assert context["tracking_url"] in message.sms


def test_confidential_complainant_messages_are_identical_whatever_happened():
    rendered = {
        CATALOGUE.render(
            e, "complainant", CATALOGUE.sample_context(e, "complainant", confidential=True)
        )
        for e in COMPLAINANT_EVENTS
    }
    assert len(rendered) == 1


def test_notification_domain_imports_no_infrastructure():
    domain = Path(DEFAULT_TEMPLATE_DIR).parent / "domain"
    forbidden = {"nameko", "kombu", "eventlet", "sqlalchemy"}
    for path in domain.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not {r.lower() for r in roots} & forbidden, f"{path.name} imports {roots}"
