"""The live stream's client messages, checked before anything acts on them (ticks.stream_input)."""

import json
import time

import pytest

from ticks.stream import StreamError
from ticks.stream_input import MessageTooLarge, StreamRequest, stream_request_parse

CHAIN = "NIFTY:2026-12-01"


def refused(text: str | None, data: bytes | None = None) -> StreamError:
    with pytest.raises(StreamError) as error:
        stream_request_parse(text, data)
    return error.value


def test_a_token_beyond_64_bits_is_refused_naming_tokens() -> None:
    """It reached the database, whose driver raised OverflowError and dropped the connection."""
    error = refused(json.dumps({"action": "subscribe", "tokens": [2**70]}))

    assert error.field == "tokens"
    assert error.message == "a token is an integer from 1 to 4294967295, not 1180591620717411303424"


def test_json_nested_deeper_than_the_parser_can_recurse_is_refused_naming_message(settings) -> None:
    """json.loads raised RecursionError, which nothing caught."""
    text = "[" * 30_000 + "]" * 30_000
    assert len(text) <= settings.STREAM_MAX_MESSAGE_BYTES

    error = refused(text)

    assert (error.field, error.message) == ("message", "a message nests at most 8 deep")


@pytest.mark.parametrize(
    "tokens",
    [
        [True],
        [1.0],
        [0],
        [-5],
        [2**32],
        [2**63],
        [256265, "256265"],
        [None],
        [[256265]],
        [],
        "256265",
        {"a": 1},
    ],
)
def test_tokens_are_ints_kite_can_have(tokens: object) -> None:
    assert refused(json.dumps({"action": "subscribe", "tokens": tokens})).field == "tokens"


def test_the_largest_kite_token_is_accepted() -> None:
    request = stream_request_parse(json.dumps({"action": "unsubscribe", "tokens": [2**32 - 1, 1, 1]}), None)

    assert request == StreamRequest("unsubscribe", tokens=frozenset({1, 2**32 - 1}))


@pytest.mark.parametrize(
    "chain",
    [
        ["NIFTY", "2026-12-01"],  # unhashable: a dict lookup raised TypeError
        {"NIFTY": 1},
        7,
        None,
        "NIFTY:20261201",  # ISO 8601 too, but a second spelling of the chain
        "NIFTY:2026-W49-2",
        "NIFTY:2026-13-01",
        "NIFTY:2026-02-30",
        "NIFTY 50:2026-12-01",
        "\uff2e\uff29\uff26\uff34\uff39:2026-12-01",  # full-width letters are alphanumeric to str.isalnum
        "NIFTY\x00:2026-12-01",
        "A" * 65 + ":2026-12-01",  # past Instrument.name and, as a group name, past channels' 100
        "NIFTY:2026-12-01\n",
    ],
)
def test_chains_are_ascii_underlying_colon_iso_date(chain: object) -> None:
    assert refused(json.dumps({"action": "subscribe", "chain": chain})).field == "chain"


@pytest.mark.parametrize("chain", [CHAIN, "NIFTY:0001-01-01", "NIFTY:9999-12-31", "A" * 64 + ":2026-12-01"])
def test_any_well_formed_chain_goes_on_to_the_database(chain: str) -> None:
    assert stream_request_parse(json.dumps({"action": "snapshot", "chain": chain}), None).chain == chain


@pytest.mark.parametrize("action", [["subscribe"], {"a": 1}, None, 1, "SUBSCRIBE", "dance"])
def test_the_action_is_one_of_three_strings(action: object) -> None:
    """An unhashable action raised TypeError from a set lookup."""
    assert refused(json.dumps({"action": action, "chain": CHAIN})).field == "action"


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        '{"action": "subscribe", "chain": "NIFTY:2026-12-01", "x": Infinity}',
        '{"action": "subscribe", "tokens": [-Infinity]}',
        "1" * 5000,  # past Python's 4300 digits for int()
        "not json",
        "",
        "[]",
        '"\\ud800"',
    ],
)
def test_what_is_not_a_json_object_is_refused_naming_message(text: str) -> None:
    assert refused(text).field == "message"


def test_binary_frames_are_refused_naming_message() -> None:
    error = refused(None, b"\xff\xfe not utf-8")

    assert (error.field, error.message) == ("message", "send JSON text frames")


def test_nesting_counts_brackets_outside_strings_only(settings) -> None:
    at_limit = json.dumps({"action": "subscribe", "tokens": [1], "x": [[[[[[[]]]]]]]})
    brackets_in_a_string = json.dumps({"action": "subscribe", "chain": '[[[[[[[[[[{{{{{{{{{{\\"['})

    assert stream_request_parse(at_limit, None).tokens == frozenset({1})
    assert refused(at_limit.replace("[[[[[[[]]]]]]]", "[[[[[[[[]]]]]]]]")).field == "message"
    assert refused(brackets_in_a_string).field == "chain"  # a bad chain, not a deep message
    assert refused('"' + "[" * 20 + '"').message == "a message is a JSON object"
    assert refused('"' + "[" * 20).message == "invalid JSON"  # an unterminated string


def test_nesting_is_counted_in_linear_time() -> None:
    """A pattern that had to find each string's closing quote took seconds on a frame of backslash-quote pairs."""
    started = time.perf_counter()
    for unit in ('\\"', '"', "[]", '["\\"]'):
        refused(unit * (60_000 // len(unit)))

    assert time.perf_counter() - started < 0.5


def test_frames_over_the_limit_in_bytes_are_too_large(settings) -> None:
    settings.STREAM_MAX_MESSAGE_BYTES = 100
    at_limit = json.dumps({"action": "subscribe", "chain": "é" * 30}, ensure_ascii=False)
    at_limit += " " * (100 - len(at_limit.encode()))

    assert refused(at_limit).field == "chain"
    with pytest.raises(MessageTooLarge, match="a message is at most 100 bytes"):
        stream_request_parse(at_limit + " ", None)
    with pytest.raises(MessageTooLarge):
        stream_request_parse(at_limit.replace("é", "€"), None)  # same characters, more bytes
    with pytest.raises(MessageTooLarge):
        stream_request_parse(None, b"x" * 101)


def test_an_error_quotes_the_client_value_cut_short() -> None:
    error = refused(json.dumps({"action": "x" * 10_000, "chain": CHAIN}))

    assert error.message == f"unknown action '{'x' * 38}…"


@pytest.mark.parametrize(
    ("message", "request_"),
    [
        (
            {"action": "subscribe", "chain": CHAIN, "tokens": "ignored"},
            StreamRequest("subscribe", chain=CHAIN),
        ),
        (
            {"action": "subscribe", "tokens": [256265], "extra": 1},
            StreamRequest("subscribe", tokens=frozenset({256265})),
        ),
        ({"action": "snapshot", "chain": CHAIN}, StreamRequest("snapshot", chain=CHAIN)),
    ],
)
def test_what_was_accepted_still_is(message: dict, request_: StreamRequest) -> None:
    assert stream_request_parse(json.dumps(message), None) == request_


@pytest.mark.parametrize(
    "message", [{"action": "snapshot", "tokens": [256265]}, {"action": "subscribe"}, {"chain": CHAIN}]
)
def test_a_request_needs_an_action_and_a_chain_or_tokens(message: dict) -> None:
    assert refused(json.dumps(message)).field in {"chain", "action"}
