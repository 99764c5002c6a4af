"""Render every notification template with its sample context, to read or to open in a browser.

    python -m services.notification.preview [--out DIR] [--confidential]

Prints subject, text and SMS of each (event, audience) pair; with --out also writes
``DIR/<event>/<audience>.html``, ``.txt`` and ``.sms.txt``.
"""

import argparse
from pathlib import Path

from services.notification.domain.render import (
    DEFAULT_TEMPLATE_DIR,
    SMS_MAX_CHARS,
    RenderedMessage,
    TemplateCatalogue,
)


def _describe(event: str, audience: str, message: RenderedMessage) -> str:
    sms_note = f"{len(message.sms)} chars" + (
        f", OVER {SMS_MAX_CHARS}" if len(message.sms) > SMS_MAX_CHARS else ""
    )
    return "\n".join(
        (
            f"=== {event} / {audience} ===",
            f"Subject: {message.subject}",
            "",
            message.text,
            "",
            f"--- SMS ({sms_note}) ---",
            message.sms,
            "",
        )
    )


def _write(out: Path, event: str, audience: str, message: RenderedMessage) -> None:
    folder = out / event
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{audience}.html").write_text(message.html + "\n", encoding="utf-8")
    (folder / f"{audience}.txt").write_text(
        f"Subject: {message.subject}\n\n{message.text}\n", encoding="utf-8"
    )
    (folder / f"{audience}.sms.txt").write_text(message.sms + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.notification.preview", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, help="also write .html/.txt files under this folder")
    parser.add_argument(
        "--confidential", action="store_true", help="render as for a confidential complaint"
    )
    parser.add_argument(
        "--templates", type=Path, default=DEFAULT_TEMPLATE_DIR, help="template folder"
    )
    args = parser.parse_args(argv)

    catalogue = TemplateCatalogue(args.templates)
    for event, audience in catalogue.templates():
        context = catalogue.sample_context(event, audience, confidential=args.confidential)
        message = catalogue.render(event, audience, context)
        print(_describe(event, audience, message))
        if args.out:
            _write(args.out, event, audience, message)
    if args.out:
        print(f"Files written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
