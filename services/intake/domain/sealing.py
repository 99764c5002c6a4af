"""Personal data of confidential complaints, sealed at rest (Fernet: AES-128-CBC + HMAC-SHA256),
and keyed contact fingerprints for finding a person's earlier complaints without storing the
contact in clear for that purpose."""

import hashlib
import hmac
import json

from cryptography.fernet import Fernet, InvalidToken


class SealBroken(ValueError):
    pass


class PersonalDataBox:
    def __init__(self, key: bytes):
        self._fernet = Fernet(key)
        # A separate key for fingerprints, derived so that one secret is enough to configure.
        self._fp_key = hashlib.sha256(b"dumas-contact-fingerprint:" + key).digest()

    def seal(self, person: dict) -> str:
        return self._fernet.encrypt(json.dumps(person, sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError) as exc:
            raise SealBroken("sealed personal data cannot be opened with this key") from exc

    def fingerprint(self, person: dict | None) -> str | None:
        """Keyed digest of the person's phone (preferred) or e-mail; None without either."""
        if not person:
            return None
        contact = person.get("phone") or (person.get("email") or "").strip().lower()
        if not contact:
            return None
        return hmac.new(self._fp_key, contact.encode(), hashlib.sha256).hexdigest()


def new_key() -> bytes:
    return Fernet.generate_key()
