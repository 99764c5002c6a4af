import re

from services.notification.domain.render import TemplateCatalogue
from services.notification.preview import main


def test_preview_prints_every_template_and_writes_files(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 0

    printed = capsys.readouterr().out
    for event, audience in TemplateCatalogue().templates():
        assert f"=== {event} / {audience} ===" in printed
        folder = tmp_path / event
        assert (folder / f"{audience}.html").read_text(encoding="utf-8").startswith("<!DOCTYPE")
        assert (folder / f"{audience}.txt").read_text(encoding="utf-8").startswith("Subject: ")
        assert (folder / f"{audience}.sms.txt").exists()
    assert "OVER" not in printed


def test_preview_of_confidential_variants_shows_complainants_no_unit_names(capsys):
    assert main(["--confidential"]) == 0

    sections = re.split(r"^=== ", capsys.readouterr().out, flags=re.MULTILINE)
    complainant = [s for s in sections if s.split("\n", 1)[0].endswith("/ complainant ===")]
    assert len(complainant) == 7
    assert not any("Kabawetan" in s for s in complainant)
