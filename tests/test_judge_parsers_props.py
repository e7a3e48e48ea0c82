"""Property tests (hypothesis) for the judges' output parsers and HTTP helpers."""

from __future__ import annotations

import json
import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from orbench_harness.chat_client import MalformedResponse, RetryPolicy, parse_chat_body, parse_retry_after
from orbench_harness.types import Label
from orbench_judges.keywords import LIST_MARKERS, opening
from orbench_judges.llm.rubrics import parse_orbench, parse_xstest

XS = {
    "1_full_compliance": Label.FULL_COMPLIANCE,
    "2_full_refusal": Label.FULL_REFUSAL,
    "3_partial_refusal": Label.PARTIAL_REFUSAL,
}
OB = {
    "direct_answer": Label.FULL_COMPLIANCE,
    "direct_refusal": Label.FULL_REFUSAL,
    "indirect_refusal": Label.FULL_REFUSAL,
}
# filler that cannot spell a label: no letters at all, so label boundaries stay clean
filler = st.text(alphabet=" \n\t.,:;!?()-*#0123456789\"'", max_size=40)
prose = st.text(max_size=200)


def _no_xs_label(text: str) -> bool:
    low = text.lower().replace(" ", "_")
    return not any(k in low for k in ("full_compliance", "full_refusal", "partial_refusal"))


@given(st.lists(st.sampled_from(sorted(XS)), min_size=1, max_size=5), st.lists(filler, min_size=6, max_size=6))
def test_xstest_parser_takes_the_last_label(labels, gaps):
    text = gaps[0] + "".join(lab + gaps[i + 1] for i, lab in enumerate(labels))
    assert parse_xstest(text) is XS[labels[-1]]


@given(st.sampled_from(sorted(XS)), st.booleans(), st.booleans(), filler)
def test_xstest_parser_tolerates_case_digits_and_spaces(label, upper, drop_digit, gap):
    text = label[2:] if drop_digit else label
    text = text.replace("_", " ") if upper else text
    text = text.upper() if upper else text
    assert parse_xstest(gap + text + gap) is XS[label]


@given(prose)
def test_xstest_parser_never_guesses(text):
    assume(_no_xs_label(text))
    assert parse_xstest(text) is None


@given(
    st.lists(st.sampled_from(sorted(OB)), min_size=1, max_size=4),
    st.lists(st.sampled_from(sorted(OB)), max_size=3),
    st.lists(filler, min_size=8, max_size=8),
)
def test_orbench_parser_prefers_the_last_bracketed_label(bracketed, bare_after, gaps):
    text = "".join(f"{gaps[i]}[[{lab}]]" for i, lab in enumerate(bracketed))
    text += "".join(f"{gaps[4 + i]}{lab}" for i, lab in enumerate(bare_after))
    assert parse_orbench(text) is OB[bracketed[-1]]


@given(st.lists(st.sampled_from(sorted(OB)), min_size=1, max_size=4), filler.filter(bool))
def test_orbench_parser_reads_bare_labels_when_unbracketed(labels, gap):
    # labels glued together ("direct_answerdirect_answer") are not words: keep a gap between
    assert parse_orbench(gap.join(labels)) is OB[labels[-1]]


@given(prose)
def test_orbench_parser_never_guesses(text):
    low = text.lower().replace(" ", "_")
    assume("direct_answer" not in low and "direct_refusal" not in low)
    assert parse_orbench(text) is None


@given(st.text(max_size=300))
def test_chat_body_content_roundtrips(content):
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    assert parse_chat_body(json.dumps(body)) == content


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@given(json_values | st.text(max_size=50).map(lambda s: {"raw": s}))
@settings(max_examples=200)
def test_chat_body_parser_fails_only_with_malformed_response(value):
    for text in (json.dumps(value), json.dumps(value)[:-1], json.dumps({"choices": value})):
        try:
            out = parse_chat_body(text)
        except MalformedResponse:
            continue
        assert isinstance(out, str)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_retry_after_seconds(seconds):
    assert parse_retry_after({"Retry-After": repr(seconds)}) == seconds
    assert parse_retry_after({"retry-after-ms": repr(seconds * 1000)}) == seconds * 1000 / 1000


@given(st.text(max_size=30))
def test_retry_after_never_raises(value):
    got = parse_retry_after({"retry-after": value})
    assert got is None or got >= 0


@given(
    st.integers(min_value=0, max_value=30),
    st.none() | st.floats(min_value=0, max_value=500, allow_nan=False),
    st.floats(min_value=0.001, max_value=5),
    st.integers(),
)
def test_backoff_is_bounded_and_honours_retry_after(retry, retry_after, base, seed):
    policy = RetryPolicy(max_retries=5, base_delay=base, max_delay=60.0)
    wait = policy.delay(retry, retry_after, random.Random(seed))
    assert 0 <= wait <= 60.0
    if retry_after is not None:
        assert wait >= min(retry_after, 60.0)
    step = min(60.0, base * 2**retry)
    assert wait >= step / 2 - 1e-12


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40), max_size=8))
def test_opening_is_at_most_two_leading_non_list_lines(lines):
    text = "\n".join(lines)
    got = opening(text)
    kept = [ln for ln in got.split("\n") if ln] if got else []
    assert len(kept) <= 2
    for ln in kept:
        assert not ln.startswith(LIST_MARKERS)
        assert ln in text
