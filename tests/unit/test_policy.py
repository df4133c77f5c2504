"""The policy loaders: the real files load, and a malformed file says where and how it is wrong."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from checks import ConfigError, load_environments, load_escalation, load_severity
from checks._policy import format_duration, parse_duration, policy_dir
from checks.targets import CAPABILITIES

POLICY = Path(__file__).resolve().parents[2] / "policy"


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "policy"
    shutil.copytree(POLICY, folder)
    return folder


def test_the_shipped_severity_policy_has_four_levels_with_aliases() -> None:
    policy = load_severity(POLICY / "severity.yml")
    assert [level.id for level in policy.levels] == ["SEV1", "SEV2", "SEV3", "SEV4"]
    assert policy.level("p0").id == "SEV1"
    assert policy.level("P3").id == "SEV4"
    assert policy.level("SEV2").acknowledge_within == timedelta(minutes=30)


def test_unknown_level_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown severity 'SEV9'.*SEV1 \(P0\)"):
        load_severity(POLICY / "severity.yml").level("SEV9")


def test_shipped_escalation_and_environments_load() -> None:
    escalation = load_escalation(POLICY / "escalation.yml")
    assert set(escalation.ladders) == {"SEV1", "SEV2", "SEV3", "SEV4"}
    environments = load_environments(POLICY / "environments.yml")
    # Any number of environments may be added; these are the ones the project's own tools use.
    assert {"sandbox", "stock", "production"} <= set(environments)
    assert environments["production"]["gate"] == "confirm"
    assert all(spec["gate"] in ("apply", "confirm") for spec in environments.values())


def test_malformed_duration_names_file_line_key_and_expected_shape(policy_copy: Path) -> None:
    path = policy_copy / "severity.yml"
    text = path.read_text()
    path.write_text(text.replace("acknowledge_within: 30m", "acknowledge_within: half an hour"))
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if "half an hour" in row)

    with pytest.raises(ConfigError) as caught:
        load_severity(path)

    message = str(caught.value)
    assert f"{path}:{line}: levels[1].acknowledge_within" in message
    assert "a duration such as 15m, 4h or 1d" in message


def test_missing_key_is_reported_at_its_parent(policy_copy: Path) -> None:
    path = policy_copy / "environments.yml"
    path.write_text(path.read_text().replace("    gate: confirm\n", "", 1))

    with pytest.raises(
        ConfigError, match=r"environments\.yml:\d+: environments\.production: 'gate' is a required"
    ):
        load_environments(path)


def test_yaml_syntax_error_names_the_line(policy_copy: Path) -> None:
    path = policy_copy / "escalation.yml"
    path.write_text("contacts: [unclosed\n")
    with pytest.raises(ConfigError, match=r"escalation\.yml:\d+: not valid YAML"):
        load_escalation(path, severity=load_severity(POLICY / "severity.yml"))


def test_escalation_naming_an_unknown_contact_fails(policy_copy: Path) -> None:
    path = policy_copy / "escalation.yml"
    path.write_text(path.read_text().replace("page: [secondary-oncall]", "page: [night-owl]", 1))
    with pytest.raises(ConfigError, match=r"unknown contact 'night-owl'"):
        load_escalation(path)


def test_duplicate_alias_is_refused(policy_copy: Path) -> None:
    path = policy_copy / "severity.yml"
    path.write_text(path.read_text().replace("aliases: [P1]", "aliases: [P0]"))
    with pytest.raises(ConfigError, match=r"the name P0 is already used by SEV1"):
        load_severity(path)


@pytest.mark.parametrize(("text", "expected"), [("15m", timedelta(minutes=15)), ("1d", timedelta(days=1))])
def test_durations_round_trip(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert format_duration(expected) == text


def test_bad_duration_says_how_to_write_one() -> None:
    with pytest.raises(ConfigError, match="such as 15m"):
        parse_duration("soon")


def test_the_sandbox_waits_for_the_rate_window_the_policy_gives_it() -> None:
    from checks._policy import load_environments, parse_duration
    from sandbox._readiness import RATE_WINDOW_S

    window = load_environments()["sandbox"]["query_defaults"]["rate_window"]
    assert parse_duration(window).total_seconds() == RATE_WINDOW_S


def test_the_environments_schema_knows_exactly_the_capabilities_checks_know() -> None:
    schema = json.loads((policy_dir() / "environments.schema.json").read_text(encoding="utf-8"))
    spec = schema["properties"]["environments"]["additionalProperties"]["properties"]["capabilities"]
    assert set(spec["items"]["enum"]) == set(CAPABILITIES)


def test_every_contact_says_what_it_is_and_how_to_reach_it_in_order() -> None:
    contacts = load_escalation().contacts
    assert contacts["security-oncall"].kind == "rotation"
    assert contacts["security-oncall"].how.startswith("pager security-primary, chat #security-incidents")
    for contact in contacts.values():
        assert contact.reach, contact.key


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ('chat: "#platform-team", ticket: PLATFORM', "", "reach"),  # no way to reach the team
        ('chat: "#support-escalations"', 'chat: "support"', "chat"),  # neither a channel nor a handle
        ('phone: "+1 555 0100"', 'phone: "call the office"', "phone"),
        ("kind: person", "kind: celebrity", "kind"),
    ],
)
def test_a_contact_without_a_usable_way_to_reach_it_is_refused_naming_it(
    policy_copy: Path, old: str, new: str, complaint: str
) -> None:
    path = policy_copy / "escalation.yml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=complaint):
        load_escalation(path)


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        (
            "saturation_above: 0.80",
            "saturation_below: 0.80",
            r"saturation is worse above: write saturation_above",
        ),
        ("saturation_above: 0.80", "queue_depth_above: 3", r"declare queue_depth under measures"),
        (
            "conditions: [dependency_down_with_fallback]",
            "conditions: [gremlins]",
            r"'gremlins' is not declared",
        ),
        ("  CRIT: SEV3", "  CRIT: SEV9", r"otherwise\.CRIT: 'SEV9' is no level"),
        (
            "exceeds {p95_latency_seconds_above}",
            "exceeds {p99_above}",
            r"examples\[1\]: \{p99_above\} is no trigger",
        ),
    ],
)
def test_a_trigger_naming_what_the_policy_does_not_declare_is_refused_with_the_fix(
    policy_copy: Path, old: str, new: str, complaint: str
) -> None:
    path = policy_copy / "severity.yml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=complaint):
        load_severity(path)


def test_prose_quotes_a_trigger_in_its_unit_instead_of_writing_its_number_again() -> None:
    sev2 = load_severity(POLICY / "severity.yml").level("SEV2")
    assert "More than 10 % of requests fail." in sev2.examples
    assert "The 95th percentile response time exceeds 7 s." in sev2.examples
