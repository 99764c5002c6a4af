"""Helpers for intake channel tests: Meta-shaped WhatsApp payloads and their signatures."""

import hashlib
import hmac
import json

APP_SECRET = "test-app-secret-0123456789"
VERIFY_TOKEN = "verify-me-please"
API_KEY = "rd-key-0123456789abcdef"
SITE_KEY = "site-key-0123456789abcdef"


def whatsapp_text(message_id: str, sender: str, text: str, name: str = "Siti") -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "6281100000001",
                                 "phone_number_id": "106540352242922"},
                    "contacts": [{"profile": {"name": name}, "wa_id": sender}],
                    "messages": [{"from": sender, "id": message_id, "timestamp": "1700000000",
                                  "type": "text", "text": {"body": text}}],
                },
            }],
        }],
    }


def whatsapp_status(message_id: str, status: str = "delivered") -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "6281100000001",
                                 "phone_number_id": "106540352242922"},
                    "statuses": [{"id": message_id, "status": status,
                                  "timestamp": "1700000001", "recipient_id": "6281234567890"}],
                },
            }],
        }],
    }


def signed(payload: dict, secret: str = APP_SECRET) -> tuple[bytes, dict]:
    raw = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"}


def intake_config() -> dict:
    return {
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "INTAKE_API_KEYS": f"rumah_digital:{API_KEY}:3/60;website:{SITE_KEY}::madrasah-x",
        "INTAKE_DATA_KEY": "qE0sX2dXWk3m0m7c1J3Y8hQd0v4f2Xb6cR1n9tT5aLs=",
        "INTAKE_QR_SECRET": "qr-secret-for-tests",
        "EVENT_RETRY_DELAYS_MS": [50, 100],
    }
