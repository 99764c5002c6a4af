import json
import logging
import shutil
from datetime import UTC, datetime

import pytest

from services.notification.domain.render import RenderedMessage
from services.notification.providers import (
    FileProvider,
    PermanentProviderError,
    Provider,
    TemporaryProviderError,
)

DELIVERY_ID = "5b8e2d7c-1f3a-5e9b-8c4d-7a6f0e1b2c3d"
ADDRESS = "warga.kabawetan@example.id"


def make_message(**overrides):
    fields = {
        "subject": "Pengaduan KPH-26-0417 Telah Diteruskan",
        "text": "Yth. Bapak/Ibu,\n\nPengaduan Bapak/Ibu telah diteruskan.",
        "html": "<p>Yth. Bapak/Ibu,</p>",
        "sms": "Yth. Bapak/Ibu, pengaduan KPH-26-0417 telah diteruskan.",
    }
    return RenderedMessage(**(fields | overrides))


def fixed_clock():
    return datetime(2026, 11, 23, 2, 20, tzinfo=UTC)


def test_file_provider_is_a_provider():
    assert isinstance(FileProvider("unused"), Provider)


def test_delivery_is_written_as_one_json_file_named_by_its_id(tmp_path):
    provider = FileProvider(tmp_path / "outbox", clock=fixed_clock)
    result = provider.send(DELIVERY_ID, "email", ADDRESS, make_message())

    files = list((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [f"{DELIVERY_ID}.json"]
    assert result.provider_message_id == f"{DELIVERY_ID}.json"
    document = json.loads(files[0].read_text(encoding="utf-8"))
    assert document == {
        "delivery_id": DELIVERY_ID,
        "channel": "email",
        "to": ADDRESS,
        "subject": "Pengaduan KPH-26-0417 Telah Diteruskan",
        "text": "Yth. Bapak/Ibu,\n\nPengaduan Bapak/Ibu telah diteruskan.",
        "html": "<p>Yth. Bapak/Ibu,</p>",
        "sms": "Yth. Bapak/Ibu, pengaduan KPH-26-0417 telah diteruskan.",
        "created_at": "2026-11-23T02:20:00+00:00",
    }


def test_sending_the_same_delivery_twice_leaves_exactly_one_file(tmp_path):
    provider = FileProvider(tmp_path)
    provider.send(DELIVERY_ID, "sms", "+6281234567890", make_message(sms="pertama"))
    provider.send(DELIVERY_ID, "sms", "+6281234567890", make_message(sms="kedua"))

    assert [f.name for f in tmp_path.iterdir()] == [f"{DELIVERY_ID}.json"]
    assert json.loads((tmp_path / f"{DELIVERY_ID}.json").read_text())["sms"] == "kedua"


def test_different_deliveries_get_different_files(tmp_path):
    provider = FileProvider(tmp_path)
    provider.send("delivery-a", "email", ADDRESS, make_message())
    provider.send("delivery-b", "email", ADDRESS, make_message())
    assert sorted(f.name for f in tmp_path.iterdir()) == ["delivery-a.json", "delivery-b.json"]


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", ".hidden", "", "x" * 65])
def test_delivery_id_that_is_not_a_safe_file_name_is_a_permanent_error(tmp_path, bad_id):
    with pytest.raises(PermanentProviderError):
        FileProvider(tmp_path).send(bad_id, "email", ADDRESS, make_message())
    assert list(tmp_path.iterdir()) == []


def test_missing_address_is_a_permanent_error(tmp_path):
    with pytest.raises(PermanentProviderError):
        FileProvider(tmp_path).send(DELIVERY_ID, "email", "", make_message())


def test_unwritable_outbox_is_a_temporary_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(TemporaryProviderError):
        FileProvider(blocker / "outbox").send(DELIVERY_ID, "email", ADDRESS, make_message())


def test_address_never_reaches_the_log(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    FileProvider(tmp_path).send(DELIVERY_ID, "email", ADDRESS, make_message())
    assert DELIVERY_ID in caplog.text
    assert ADDRESS not in caplog.text


def test_an_outbox_directory_removed_while_running_is_created_again_on_the_next_send(tmp_path):
    provider = FileProvider(tmp_path / "outbox")
    provider.send("delivery-a", "email", ADDRESS, make_message())
    shutil.rmtree(tmp_path / "outbox")

    provider.send("delivery-b", "email", ADDRESS, make_message())

    assert [f.name for f in (tmp_path / "outbox").iterdir()] == ["delivery-b.json"]


def test_many_sends_leave_only_their_files_and_no_temporary_ones(tmp_path):
    provider = FileProvider(tmp_path)
    for i in range(20):
        provider.send(f"delivery-{i % 5}", "email", ADDRESS, make_message(sms=f"ke-{i}"))

    assert sorted(f.name for f in tmp_path.iterdir()) == [f"delivery-{i}.json" for i in range(5)]
    assert json.loads((tmp_path / "delivery-4.json").read_text())["sms"] == "ke-19"
