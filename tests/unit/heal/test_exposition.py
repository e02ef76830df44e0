"""A pod's /metrics page and reset answer, read as untrusted input (`heal.exposition`)."""

from __future__ import annotations

import json

import pytest

from promdemo_operator.heal.exposition import (
    MAX_LINE_BYTES,
    MAX_SAMPLES,
    ExpositionError,
    InventoryScanner,
    parse_inventory,
    parse_reset_answer,
    redact,
)

APP_PAGE = """# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="POST",route="/order",status="200"} 12.0
# HELP product_inventory_extra Not the gauge.
# TYPE product_inventory_extra gauge
product_inventory_extra -999.0
# HELP product_inventory Units in stock in this process (per pod).
# TYPE product_inventory gauge
product_inventory -12.0
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
process_open_fds 9.0
"""


def scan_in_chunks(page: bytes, size: int) -> float:
    scanner = InventoryScanner()
    for i in range(0, len(page), size):
        scanner.feed(page[i : i + size])
    return scanner.finish()


def test_the_gauge_and_only_the_gauge() -> None:
    assert parse_inventory(APP_PAGE) == -12
    assert parse_inventory("product_inventory 7") == 7  # no final newline
    assert parse_inventory("product_inventory 7\r\n") == 7
    assert parse_inventory("product_inventory 7 1700000000000\n") == 7  # with a timestamp


@pytest.mark.parametrize("size", [1, 2, 3, 7, 17, 18, 19, 64, 4096])
def test_any_chunking_gives_the_same_value(size: int) -> None:
    """A page arrives in pieces of any size; a line split anywhere is still found."""
    assert scan_in_chunks(APP_PAGE.encode(), size) == -12


def test_several_series_give_the_lowest() -> None:
    page = 'product_inventory{shelf="a"} 5\nproduct_inventory{shelf="b"} -3\n'
    assert parse_inventory(page) == -3


@pytest.mark.parametrize(
    ("page", "kind", "words"),
    [
        ("# TYPE up gauge\nup 1\n", "missing", "no product_inventory"),
        ("", "missing", "no product_inventory"),
        ("product_inventory_extra -5\n", "missing", "no product_inventory"),
        # the same series twice: which one is true? neither decides a reset
        ("product_inventory 5\nproduct_inventory -3\n", "garbage", "duplicate"),
        ("product_inventory 5\nup 1\nproduct_inventory -3\n", "garbage", "duplicate"),
        ('product_inventory{a="1"} 5\nproduct_inventory{a="1"} -3\n', "garbage", "duplicate"),
        ("product_inventory NaN\n", "garbage", "nan"),
        ("product_inventory +Inf\n", "garbage", "inf"),
        ("product_inventory -Inf\n", "garbage", "inf"),
        ("product_inventory -1e300\n", "garbage", "out of range"),
        ("product_inventory{ broken\n", "garbage", ""),
        ("<html>{{ nope }}</html>\nproduct_inventory -1\n", "garbage", "not a prometheus"),
        ('{"inventory": -1}\n', "garbage", "not a prometheus"),
    ],
)
def test_unusable_pages(page: str, kind: str, words: str) -> None:
    with pytest.raises(ExpositionError) as caught:
        parse_inventory(page)
    assert caught.value.reason == kind
    assert words in caught.value.detail.lower()


def test_too_many_samples_stop_the_scan_early() -> None:
    scanner = InventoryScanner()
    lines = b"".join(b'product_inventory{i="%d"} 1\n' % i for i in range(MAX_SAMPLES + 1))
    with pytest.raises(ExpositionError, match="more than"):
        scanner.feed(lines)


def test_an_endless_product_inventory_line_is_refused_while_it_streams() -> None:
    scanner = InventoryScanner()
    scanner.feed(b"product_inventory ")

    def drip() -> None:
        for _ in range(MAX_LINE_BYTES):
            scanner.feed(b"1")

    with pytest.raises(ExpositionError, match="longer than"):
        drip()


def test_huge_lines_of_other_metrics_are_skipped_without_being_kept() -> None:
    """Other metrics' lines, however long, do not count against the gauge's line limit."""
    scanner = InventoryScanner()
    scanner.feed(b"# HELP other " + b"x" * 100_000)
    for _ in range(50):
        scanner.feed(b"y" * 100_000)
    scanner.feed(b"\nproduct_inventory -4\n")
    assert scanner.finish() == -4
    assert scanner.bytes_seen > 5_000_000


def test_a_non_utf8_gauge_line_is_garbage_other_binary_is_ignored() -> None:
    assert parse_inventory(b"# junk \xff\xfe\nproduct_inventory 3\n") == 3
    with pytest.raises(ExpositionError, match="UTF-8"):
        parse_inventory(b'product_inventory{a="\xff"} 3\n')


@pytest.mark.parametrize(
    "value",
    [
        "-٥",  # ARABIC-INDIC DIGIT FIVE: Python's float() reads -5, Prometheus refuses
        "٣e2",
        "-５",  # FULLWIDTH DIGIT FIVE
        "-5\u00a0",  # a no-break space after the value
        "1_000",
        "0x10",
        "-5 ١٧٠٠",  # a non-ASCII timestamp
        "-5 1700000000000 7",  # a third field
    ],
)
def test_values_prometheus_would_not_read_are_garbage(value: str) -> None:
    """Only an ASCII float (and an ASCII integer timestamp) is a value, as Prometheus's
    text parser reads it: the operator never resets on a number Prometheus does not see."""
    for line in (f"product_inventory {value}\n", f'product_inventory{{shelf="}} ٥"}} {value}\n'):
        with pytest.raises(ExpositionError) as caught:
            parse_inventory(line)
        assert caught.value.reason == "garbage"
        assert "not a number prometheus reads" in caught.value.detail.lower()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("-5", -5), ("+5", 5), ("5.", 5), (".5", 0.5), ("-1.5e2", -150), ("3 1700000000000", 3)],
)
def test_ascii_values_in_every_form_prometheus_reads(value: str, expected: float) -> None:
    assert parse_inventory(f"product_inventory {value}\n") == expected
    assert parse_inventory(f'product_inventory{{shelf="٥ }}"}} {value}\n') == expected


# -- what a pod's error answer may put in the log -----------------------------------------


def test_redact_hides_the_secret_and_credential_shapes() -> None:
    token = "tok-0123456789abcdef"
    text = (
        f'{{"error": "bad {token}", "Authorization": "Bearer {token}", "token": "other",'
        f' "password": "hunter2"}} api_key=zzz&x=1 authorization: Basic dXNlcjpwYXNz'
    )
    got = redact(text, [token, None, ""])
    for secret in (token, "other", "hunter2", "zzz", "dXNlcjpwYXNz"):
        assert secret not in got
    assert got.count("<redacted>") == 6
    assert "x=1" in got  # what is not a credential stays readable
    assert redact("inventory is -3", [token]) == "inventory is -3"


def test_redact_hides_a_secret_cut_off_at_the_end_of_a_snippet() -> None:
    token = "tok-0123456789abcdef"
    assert redact(f"refused {token[:9]}", [token]) == "refused <redacted>"
    assert redact("refused tok", [token]) == "refused tok"  # 3 characters: no secret left


# -- reset answers -----------------------------------------------------------------------


def test_reset_answer() -> None:
    assert parse_reset_answer(b'{"inventory": 100}') == 100
    assert parse_reset_answer(b'{"inventory": 2.5, "other": [1, 2]}') == 2.5


@pytest.mark.parametrize(
    "body",
    [
        b'{"inventory": NaN}',
        b'{"inventory": Infinity}',
        b'{"inventory": -Infinity}',
        b'{"inventory": 1e400}',
        b'{"inventory": ' + b"9" * 400 + b"}",
        b'{"inventory": true}',
        b'{"inventory": "100"}',
        b'{"inventory": null}',
        b'{"count": 100}',
        b"[100]",
        b"done?",
        b"",
        b"\xff\xfe\x00",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_unusable_reset_answers(body: bytes) -> None:
    with pytest.raises(ExpositionError) as caught:
        parse_reset_answer(body)
    assert caught.value.reason == "garbage"


def test_reset_answer_out_of_int64_range() -> None:
    with pytest.raises(ExpositionError, match="out of range"):
        parse_reset_answer(json.dumps({"inventory": 2**60}).encode())
