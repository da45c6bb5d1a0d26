"""Parsing ``kind{{ key }}`` references (the cases of Gofer's own parser tests, plus empty keys)."""

from __future__ import annotations

import pytest

from kernel.references import Reference, ReferenceKind, parse_reference


@pytest.mark.parametrize(
    ("value", "kind", "key"),
    [
        ("pipeline_secret{{db_password}}", ReferenceKind.PIPELINE_SECRET, "db_password"),
        ("global_secret{{slack}}", ReferenceKind.GLOBAL_SECRET, "slack"),
        ("pipeline_object{{cache.tar}}", ReferenceKind.PIPELINE_OBJECT, "cache.tar"),
        ("run_object{{artifact}}", ReferenceKind.RUN_OBJECT, "artifact"),
    ],
)
def test_each_kind_is_recognised(value, kind, key):
    assert parse_reference(value) == Reference(kind, key)


@pytest.mark.parametrize(
    "value",
    [
        "pipeline_secret{{ db_password }}",
        "pipeline_secret{{\tdb_password\n}}",
        "  pipeline_secret{{db_password}}  ",
        "pipeline_secret{{   db_password}}",
    ],
)
def test_whitespace_inside_the_braces_and_around_the_value_is_ignored(value):
    assert parse_reference(value) == Reference(ReferenceKind.PIPELINE_SECRET, "db_password")


@pytest.mark.parametrize("prefix", ["PIPELINE_SECRET", "Pipeline_Secret", "pipeline_SECRET"])
def test_the_prefix_is_case_insensitive_and_the_key_keeps_its_case(prefix):
    assert parse_reference(f"{prefix}{{{{Db_Password}}}}") == Reference(ReferenceKind.PIPELINE_SECRET, "Db_Password")


@pytest.mark.parametrize(
    "value",
    [
        "pipeline_secret{{db_password",
        "pipeline_secret{{db_password}",
        "pipeline_secret{db_password}}",
        "pipeline_secret{db_password}",
        "pipeline_secret db_password",
        "pipeline_secret{{a}}b}}",
        "pipeline_secret{{a{{b}}",
        "pipeline_secret{{db}} trailing",
        "leading pipeline_secret{{db}}",
        "pipeline_secret {{db}}",
        "pipeline_secret{{a}}pipeline_secret{{b}}",
    ],
)
def test_malformed_or_unclosed_braces_are_a_plain_value(value):
    assert parse_reference(value) is None


@pytest.mark.parametrize(
    "value", ["secret{{db}}", "vault{{db}}", "pipelinesecret{{db}}", "{{db}}", "global_secrets{{db}}", "run{{x}}"]
)
def test_an_unknown_prefix_is_a_plain_value(value):
    assert parse_reference(value) is None


@pytest.mark.parametrize("value", ["pipeline_secret{{}}", "global_secret{{   }}", "run_object{{\n}}"])
def test_an_empty_key_is_a_plain_value(value):
    assert parse_reference(value) is None


@pytest.mark.parametrize("value", ["", "plain", "https://example.com/{{x}}", "echo {{ not a ref }}"])
def test_ordinary_values_are_plain(value):
    assert parse_reference(value) is None


def test_the_key_inside_the_braces_is_the_one_used_not_the_variables_name():
    # Gofer looked objects up by the variable's own key; the reference carries the braces key only.
    reference = parse_reference("run_object{{build_output}}")
    assert reference.key == "build_output"


def test_a_reference_prints_in_canonical_form_and_says_whether_it_is_a_secret():
    reference = parse_reference("GLOBAL_SECRET{{ token }}")
    assert str(reference) == "global_secret{{token}}"
    assert reference.is_secret
    assert not parse_reference("run_object{{x}}").is_secret


def test_a_non_string_is_not_a_reference():
    assert parse_reference(None) is None
