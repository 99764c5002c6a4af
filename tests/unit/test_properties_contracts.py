"""Property-based tests (hypothesis) of the wire contracts and signed sessions: `load_event`
refuses anything malformed with MalformedEvent only, and `read_session` never accepts a token that
differs in any way from the one issued."""

import json
import uuid
from datetime import UTC, datetime

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from shared.auth import ROLES, issue_session, read_session
from shared.contracts import MalformedEvent, build_event, load_event
from shared.contracts.envelope import CURRENT_VERSIONS, SCHEMAS

FAST = settings(max_examples=200, deadline=None, database=None)
REASONS = {"undecodable", "invalid_envelope", "unexpected_type", "unknown_version", "invalid_data"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def received_event(**data_overrides):
    complaint_id = str(uuid.uuid4())
    data = {
        "complaint_id": complaint_id,
        "tracking_code": "DMS-7KQ4-MX9T-2BH3",
        "channel": "web",
        "category": "lainnya",
        "description": "Uraian pengaduan untuk pengujian",
        "confidentiality": "public",
        "received_at": datetime.now(UTC),
        **data_overrides,
    }
    return build_event("complaint_received", data, correlation_id=complaint_id)


def _refused_cleanly(body, expected_types=None):
    """load_event either loads the body or raises MalformedEvent with a documented reason."""
    try:
        return load_event(body, expected_types=expected_types)
    except MalformedEvent as exc:
        assert exc.reason in REASONS
        return None


@FAST
@given(st.binary(max_size=2000))
@example(b"\xff\xfe\x00")
@example(b"[" * 100_000)  # nested deeper than the JSON parser's recursion limit
@example(json.dumps("[" * 100_000).encode())
@example(b"1" * 5000)  # an integer longer than Python's int parsing limit
@example(b'{"event_id": NaN}')
def test_any_bytes_are_loaded_or_refused_as_malformed(body):
    _refused_cleanly(body)


@FAST
@given(json_values)
def test_any_json_value_is_loaded_or_refused_as_malformed(value):
    _refused_cleanly(value)
    _refused_cleanly(json.dumps(value))
    _refused_cleanly(json.dumps(value).encode())


ENVELOPE_FIELDS = ["event_id", "event_type", "version", "occurred_at", "correlation_id",
                   "producer", "data"]


@FAST
@given(
    st.sampled_from(ENVELOPE_FIELDS),
    json_values | st.sampled_from([None, "", -1, 0, 10**30, "2026-13-45", "v1", [], {}]),
    st.booleans(),
)
def test_a_valid_event_with_any_envelope_field_damaged_is_refused_or_still_valid(
    field, value, drop
):
    envelope = received_event()
    if drop:
        del envelope[field]
    else:
        envelope[field] = value
    event = _refused_cleanly(envelope, expected_types=("complaint_received",))
    if event is not None:  # the damage happened to produce another valid envelope
        assert event.event_type == "complaint_received"


@FAST
@given(st.data())
def test_a_valid_event_with_any_data_field_damaged_is_refused_or_loaded_strictly(data):
    envelope = received_event()
    field = data.draw(st.sampled_from([*envelope["data"], "unknown_field"]))
    envelope["data"][field] = data.draw(json_values)
    _refused_cleanly(json.dumps(envelope).encode())


@FAST
@given(
    st.sampled_from(sorted(SCHEMAS)),
    st.integers(-5, 2000),
    st.dictionaries(st.text(max_size=12), json_values, max_size=4),
)
def test_unknown_types_and_versions_are_refused_with_their_reason(key, version, data):
    event_type, _ = key
    envelope = {**received_event(), "event_type": event_type, "version": version, "data": data}
    try:
        load_event(envelope)
    except MalformedEvent as exc:
        if not 1 <= version <= 1000:
            assert exc.reason == "invalid_envelope"
        elif (event_type, version) not in SCHEMAS:
            assert exc.reason == "unknown_version"
    else:
        assert (event_type, version) in SCHEMAS and version <= CURRENT_VERSIONS[event_type]


# --- signed sessions -----------------------------------------------------------------------------

SECRET = b"s" * 48
NOW = 1_800_000_000.0


@st.composite
def issued_tokens(draw):
    session, token = issue_session(
        draw(st.text(min_size=1, max_size=40)),
        draw(st.sampled_from(sorted(ROLES))),
        draw(st.none() | st.text(max_size=20)),
        draw(st.text(max_size=60)),
        secret=SECRET,
        now=NOW,
    )
    return session, token


@FAST
@given(issued_tokens())
def test_an_issued_session_reads_back_unchanged(issued):
    session, token = issued
    assert read_session(token, secret=SECRET, now=NOW) == session


# Characters a cookie value can carry, and some it should not.
cookie_chars = st.characters(codec="ascii") | st.sampled_from(["é", "\u200b", "ß", "="])


@st.composite
def modified_tokens(draw):
    _, token = draw(issued_tokens())
    kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "append", "swap"]))
    i = draw(st.integers(0, len(token) - 1))
    if kind == "replace":
        new = token[:i] + draw(cookie_chars) + token[i + 1:]
    elif kind == "insert":
        new = token[:i] + draw(st.text(cookie_chars, min_size=1, max_size=3)) + token[i:]
    elif kind == "delete":
        new = token[:i] + token[i + 1:]
    elif kind == "truncate":
        new = token[:i]
    elif kind == "append":
        new = token + draw(st.text(cookie_chars, min_size=1, max_size=8))
    else:
        j = draw(st.integers(0, len(token) - 1))
        chars = list(token)
        chars[i], chars[j] = chars[j], chars[i]
        new = "".join(chars)
    assume(new != token)
    return new


_, ISSUED = issue_session("op-merigi", "unit_operator", "kua-merigi", "Operator", secret=SECRET,
                          now=NOW)


@FAST
@given(modified_tokens())
@example(ISSUED[:-1] + "\u00e9")  # one signature character replaced by a non-ASCII one
@example(ISSUED.replace(".", "..", 1))
def test_a_modified_session_token_is_never_accepted(token):
    assert read_session(token, secret=SECRET, now=NOW) is None


@FAST
@given(issued_tokens())
def test_a_token_signed_with_another_secret_or_expired_is_refused(issued):
    _, token = issued
    assert read_session(token, secret=b"t" * 48, now=NOW) is None
    assert read_session(token, secret=SECRET, now=NOW + 8 * 3600 + 1) is None


@FAST
@given(st.none() | st.text(max_size=300) | st.text(cookie_chars, max_size=300))
@example("abc.\u00e9\u00e9")  # what Werkzeug hands over for a cookie `abc.éé`
@example("x" * 5000 + ".y")
def test_any_cookie_value_is_refused_without_error(value):
    assert read_session(value, secret=SECRET, now=NOW) is None
