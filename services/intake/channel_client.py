"""A small client for channel developers who submit complaints over AMQP.

    from services.intake.channel_client import ChannelPublisher

    with ChannelPublisher("amqp://user:pass@broker/") as publisher:
        publisher.submit({
            "message_id": "rd-2025-000123",       # your own id: resending it is harmless
            "channel": "rumah_digital",
            "category": "nikah_rujuk",
            "description": "Pendaftaran nikah belum diproses dua minggu.",
            "kecamatan_code": "17.08.05",
            "confidentiality": "public",
            "complainant": {"name": "Budi", "phone": "0812-3456-7890", "email": None},
        })

Messages go to the topic exchange ``channels.events`` with routing key ``complaint_submitted``
in the standard Dumas envelope (shared.contracts), persistent, with publisher confirms: when
``submit`` returns, the broker has the message. intake answers nothing on the wire; invalid
messages are parked in ``intake.complaint_submitted.dead`` with the reason. See docs/channels.md.
"""

from kombu import Connection, Exchange

from shared.contracts import build_event

EXCHANGE = "channels.events"
ROUTING_KEY = "complaint_submitted"


class ChannelPublisher:
    def __init__(self, amqp_uri: str):
        self._conn = Connection(amqp_uri, transport_options={"confirm_publish": True})
        self._exchange = Exchange(EXCHANGE, type="topic", durable=True)
        self._producer = None

    def __enter__(self) -> "ChannelPublisher":
        self._producer = self._conn.Producer()
        return self

    def __exit__(self, *exc) -> None:
        self._conn.release()

    def submit(self, data: dict) -> dict:
        """Validate ``data`` against the contract, publish it (confirmed); the envelope."""
        envelope = build_event(ROUTING_KEY, data, correlation_id=data["message_id"][:64])
        producer = self._producer or self._conn.Producer()
        producer.publish(
            envelope,
            exchange=self._exchange,
            routing_key=ROUTING_KEY,
            declare=[self._exchange],
            serializer="json",
            delivery_mode=2,
            message_id=envelope["event_id"],
            correlation_id=envelope["correlation_id"],
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2},
        )
        return envelope
