"""The SMTP provider keeps its connection between messages (connect, EHLO and AUTH once, not per
message) and recovers when the server has dropped a kept connection, against a real SMTP server
(aiosmtpd stand-in in its own process)."""

import pytest
from support.notification_standins import SmtpStandIn

from services.notification.channels import SmtpProvider
from services.notification.domain.render import RenderedMessage
from services.notification.providers import TemporaryProviderError

MESSAGE = RenderedMessage(
    subject="Pengaduan baru DMS-7KQ4-MX9T-2BH3",
    text="Ada pengaduan baru untuk unit Anda.",
    html="<p>Ada pengaduan baru untuk unit Anda.</p>",
    sms="Pengaduan baru DMS-7KQ4-MX9T-2BH3",
)


@pytest.fixture
def smtp(tmp_path):
    with SmtpStandIn(tmp_path, reject="ditolak@=550 5.1.1 No such user") as server:
        yield server


def provider_for(server) -> SmtpProvider:
    return SmtpProvider(host="127.0.0.1", port=server.port, sender="dumas@kemenag.example",
                        timeout=5)


def peers(server) -> list[tuple]:
    return [tuple(e["peer"]) for e in server.entries()]


def test_consecutive_messages_share_one_smtp_connection(smtp):
    provider = provider_for(smtp)
    try:
        for i in range(3):
            provider.send(f"reuse-{i}", "email", f"unit{i}@kemenag.example", MESSAGE)
    finally:
        provider.close()

    assert [e["rcpt_tos"] for e in smtp.entries()] == [
        ["unit0@kemenag.example"], ["unit1@kemenag.example"], ["unit2@kemenag.example"]]
    assert len(set(peers(smtp))) == 1


def test_a_refused_recipient_does_not_spoil_the_kept_connection(smtp):
    provider = provider_for(smtp)
    try:
        provider.send("ok-1", "email", "unit@kemenag.example", MESSAGE)
        with pytest.raises(Exception, match="recipient refused"):
            provider.send("refused", "email", "ditolak@kemenag.example", MESSAGE)
        provider.send("ok-2", "email", "unit@kemenag.example", MESSAGE)
    finally:
        provider.close()

    assert len(smtp.entries()) == 2
    assert len(set(peers(smtp))) == 1


def test_a_kept_connection_the_server_dropped_is_replaced_without_losing_the_message(smtp):
    provider = provider_for(smtp)
    provider.send("before-restart", "email", "unit@kemenag.example", MESSAGE)
    smtp.stop()  # the server goes away: the kept connection is dead
    smtp.start()
    try:
        provider.send("after-restart", "email", "unit@kemenag.example", MESSAGE)
    finally:
        provider.close()

    sent = smtp.entries()
    assert len(sent) == 2
    assert len(set(peers(smtp))) == 2  # a new connection for the second message


def test_a_server_that_is_down_is_a_temporary_failure(smtp):
    provider = provider_for(smtp)
    provider.send("first", "email", "unit@kemenag.example", MESSAGE)
    smtp.stop()
    try:
        with pytest.raises(TemporaryProviderError):
            provider.send("while-down", "email", "unit@kemenag.example", MESSAGE)
    finally:
        provider.close()
