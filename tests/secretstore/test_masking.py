"""Masking secret values in log lines: the leaks other CI systems shipped, one test each."""

from __future__ import annotations

import base64
import random
import string
import time

import pytest

from secretstore.masking import REPLACEMENT, Masker

SECRET = "hunter2-Correct-Horse"
PEM = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n0ZsYwJ2fE1xPq7Lm3NcV\n-----END KEY-----"


def test_a_value_is_replaced_wherever_it_appears():
    masker = Masker([SECRET], min_length=4)
    assert masker.mask(f"password={SECRET} and again {SECRET}!") == f"password={REPLACEMENT} and again {REPLACEMENT}!"


def test_lines_without_secrets_are_returned_unchanged():
    masker = Masker([SECRET], min_length=4)
    line = "compiling 42 files, nothing to hide"
    assert masker.mask(line) == line
    assert masker.mask("") == ""


def test_a_multi_line_value_is_masked_line_by_line():
    masker = Masker([PEM], min_length=4)
    printed = PEM.splitlines()
    masked = [masker.mask(line) for line in printed]
    assert masked == [REPLACEMENT] * len(printed)
    assert "MIIBOgIBAAJBAKj34GkxFhD9" not in "".join(masked)


def test_each_line_of_a_multi_line_value_is_masked_inside_other_text_and_reindented():
    masker = Masker([PEM], min_length=4)
    assert masker.mask("key:     0ZsYwJ2fE1xPq7Lm3NcV   # second line") == f"key:     {REPLACEMENT}   # second line"


def test_short_lines_of_a_multi_line_value_are_left_alone():
    masker = Masker(["ok\nlong-enough-line"], min_length=4)
    assert masker.mask("ok then") == "ok then"
    assert masker.mask("x long-enough-line y") == f"x {REPLACEMENT} y"


@pytest.mark.parametrize("value", ["1", "yes", "ab"])
def test_values_shorter_than_the_minimum_are_not_masked(value):
    masker = Masker([value], min_length=4)
    assert not masker
    assert masker.mask("1 test passed, yes, abc") == "1 test passed, yes, abc"


def test_the_minimum_length_defaults_to_the_setting(settings):
    settings.GOFER_SECRET_MASK_MIN_LENGTH = 8
    assert Masker(["seven77"]).mask("seven77") == "seven77"
    assert Masker(["eight888"]).mask("eight888") == REPLACEMENT


def test_a_value_exactly_at_the_minimum_is_masked():
    assert Masker(["abcd"], min_length=4).mask("xxabcdxx") == f"xx{REPLACEMENT}xx"


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: base64.b64encode(v).decode(),
        lambda v: base64.b64encode(v).decode().rstrip("="),
        lambda v: base64.urlsafe_b64encode(v).decode(),
        lambda v: base64.urlsafe_b64encode(v).decode().rstrip("="),
    ],
    ids=["standard", "standard-unpadded", "urlsafe", "urlsafe-unpadded"],
)
def test_base64_forms_of_the_value_are_masked(encode):
    value = "p>?~é-secret-with-urlsafe-difference??"
    encoded = encode(value.encode())
    masker = Masker([value], min_length=4)
    assert masker.mask(f"Authorization: Basic {encoded}") == f"Authorization: Basic {REPLACEMENT}"


def test_standard_and_urlsafe_forms_really_differ_for_the_value_above():
    raw = b"p>?~\xc3\xa9-secret-with-urlsafe-difference??"
    assert base64.b64encode(raw) != base64.urlsafe_b64encode(raw)


def test_base64_of_the_value_with_a_trailing_newline_is_masked():
    # ``echo "$SECRET" | base64`` encodes the value plus a newline.
    encoded = base64.b64encode((SECRET + "\n").encode()).decode()
    masked = Masker([SECRET], min_length=4).mask(encoded)
    assert masked.startswith(REPLACEMENT)
    assert base64.b64encode(SECRET.encode()[:18]).decode() not in masked


def test_wrapped_base64_of_a_long_value_is_masked_line_by_line():
    value = "".join(random.Random(7).choices(string.ascii_letters, k=200))
    encoded = base64.encodebytes(value.encode()).decode()  # wrapped at 76 characters, like GNU base64
    lines = encoded.splitlines()
    assert len(lines) > 2
    masker = Masker([value], min_length=4)
    for line in lines:
        assert masker.mask(line) == REPLACEMENT, line


def test_base64_wrapped_at_64_characters_like_openssl_is_masked_line_by_line():
    value = "".join(random.Random(8).choices(string.ascii_letters, k=150))
    encoded = base64.b64encode(value.encode()).decode()
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    masker = Masker([value], min_length=4)
    assert [masker.mask(line) for line in lines] == [REPLACEMENT] * len(lines)


def test_the_percent_encoded_form_is_masked():
    masker = Masker(["p@ss w/rd!"], min_length=4)
    assert masker.mask("https://bot:p%40ss%20w%2Frd%21@git.example.com") == f"https://bot:{REPLACEMENT}@git.example.com"


def test_a_longer_value_wins_over_a_shorter_one_it_contains():
    masker = Masker(["abcd", "abcdefghij"], min_length=4)
    assert masker.mask("[abcdefghij]") == f"[{REPLACEMENT}]"
    assert masker.mask("[abcd]") == f"[{REPLACEMENT}]"


def test_overlapping_values_leave_no_piece_visible():
    # The shorter one starts first; masking it alone would leave "efgh" of the longer one showing.
    masker = Masker(["xabcd", "bcdefgh"], min_length=4)
    assert masker.mask("..xabcdefgh..") == f"..{REPLACEMENT}.."


def test_adjacent_values_are_one_replacement():
    masker = Masker(["aaaa1", "bbbb2"], min_length=4)
    assert masker.mask("aaaa1bbbb2") == REPLACEMENT


def test_the_replacement_does_not_reveal_the_length():
    masker = Masker(["short1", "a-much-longer-secret-value"], min_length=4)
    assert masker.mask("short1") == masker.mask("a-much-longer-secret-value") == REPLACEMENT


def test_regex_characters_in_values_are_literal():
    masker = Masker(["a.b*c+(d)"], min_length=4)
    assert masker.mask("aXbbbc+(d)") == "aXbbbc+(d)"
    assert masker.mask("see a.b*c+(d) here") == f"see {REPLACEMENT} here"


def test_empty_and_non_string_values_are_ignored():
    masker = Masker(["", None, SECRET], min_length=4)
    assert masker.mask(SECRET) == REPLACEMENT


def test_no_values_means_nothing_is_masked():
    masker = Masker([], min_length=4)
    assert not masker
    assert masker.mask("anything") == "anything"


def test_masking_is_fast_enough_for_thousands_of_lines_with_tens_of_secrets():
    rng = random.Random(42)
    secrets = ["".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(8, 64))) for _ in range(40)]
    secrets.append(PEM)
    masker = Masker(secrets, min_length=4)
    words = ["building", "step", "ok", "warning:", "/usr/lib/x86_64", "took", "12ms", "=>", "done"]
    lines = [" ".join(rng.choices(words, k=20)) for _ in range(5000)]
    for index in range(0, 5000, 50):
        lines[index] += " token=" + secrets[index % 40]
    started = time.perf_counter()
    masked = [masker.mask(line) for line in lines]
    elapsed = time.perf_counter() - started
    assert sum(REPLACEMENT in line for line in masked) == 100
    assert not any(secret in line for line in masked for secret in secrets[:40])
    # 5,000 lines must take well under a second; a per-secret replace loop or a catastrophic regex would not.
    assert elapsed < 1.0, f"{elapsed:.3f}s for 5000 lines"


def test_a_shorter_value_still_matches_where_the_longer_one_it_begins_does_not():
    masker = Masker(["abcd", "abcdefgh"], min_length=4)
    assert masker.mask("abcdefXX") == f"{REPLACEMENT}efXX"


def test_hundreds_of_nested_prefixes_still_mask_correctly():
    # Too deep for one prefix-tree regex: the masker splits the needles into several trees.
    masker = Masker(["a" * n for n in range(4, 700)], min_length=4)
    assert len(masker._patterns) > 1
    assert masker.mask("b" + "a" * 800 + "b") == f"b{REPLACEMENT}b"
    assert masker.mask("xaaaaaaay") == f"x{REPLACEMENT}y"
    assert masker.mask("baaab") == "baaab"


# --- every base64 alignment, hex, form encoding (issue 8, finding 4) -------------------------------------------------


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b"user:", b"us:"])
@pytest.mark.parametrize("suffix", [b"", b"\n", b"!", b"tail of the stream"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_of_the_value_after_any_prefix_is_masked(prefix, suffix, encode):
    """``printf 'a%s' "$SECRET" | base64`` leaked the secret: only offset 0 was masked."""
    secret = "hunter2-correct-horse-battery"
    line = "Authorization: Basic " + encode(prefix + secret.encode() + suffix).decode()
    masked = Masker([secret]).mask(line)
    assert masked.startswith("Authorization: Basic ")
    encoded = line.removeprefix("Authorization: Basic ")
    # Whatever is left visible of the encoding spells at most the prefix's and suffix's groups, not the secret.
    visible = masked.removeprefix("Authorization: Basic ").replace(REPLACEMENT, "")
    assert REPLACEMENT in masked
    assert len(visible) <= len(encoded) - (len(secret) - 4) * 4 // 3


def test_the_hex_forms_of_the_value_are_masked():
    secret = "hunter2-correct-horse"
    hex_form = secret.encode().hex()
    masker = Masker([secret])
    assert masker.mask(f"dump: {hex_form}") == f"dump: {REPLACEMENT}"
    assert masker.mask(f"DUMP: {hex_form.upper()}") == f"DUMP: {REPLACEMENT}"


def test_the_form_encoded_value_with_plus_for_spaces_is_masked():
    secret = "two words & more"
    assert Masker([secret]).mask("body: password=two+words+%26+more") == f"body: password={REPLACEMENT}"
