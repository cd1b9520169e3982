"""The inspection stage in front of a small real terminal: how the two layers combine, failing closed, the size
cap, what counts as a message's text, and the `inspection:` settings' errors.

The learned layer is exercised through its contract (`Classifier.probabilities`) with classifiers written here,
so these tests hold whether or not the optional `ml` extra is installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from portico.config import Settings
from portico.config import load as load_config
from portico.errors import DENIED, ConfigError
from portico.inspection.scoring import load_learned
from portico.inspection.settings import CREDENTIAL_DETECTORS, InspectionSettings, PublicSettings
from portico.inspection.stage import InspectionStage, build_inspection_stage
from portico.inspection.texts import META_KEY, annotated, arguments_text, result_text
from portico.metrics import Metrics
from portico.pipeline import ErrorStage, compose
from portico.types import Era, Exchange, Outcome, Principal, Reply
from tests.upstreams.leaky import PAGES

pytestmark = pytest.mark.anyio


class Fixed:
    """A classifier that gives every text the same probability, and remembers what it was asked."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.asked: list[str] = []

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        self.asked.extend(texts)
        return [self.probability for _ in texts]


class Broken:
    def probabilities(self, texts: Sequence[str]) -> list[float]:
        raise RuntimeError("the model file is corrupt")


class Answers:
    """The terminal: answers every call with `result` and counts the calls that reached it."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        self.reached = 0

    async def __call__(self, exchange: Exchange) -> Reply:
        self.reached += 1
        return Reply.ok(self.result)


def tool_call(arguments: dict[str, Any] | None = None, server: str = "docs") -> Exchange:
    params = {"name": "page", "arguments": arguments or {"name": "x"}}
    exchange = Exchange("tools/call", params, 1, Principal.anonymous(), Era.MODERN, "2026-07-28")
    exchange.server_id, exchange.target = server, "page"
    return exchange


def text_result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}]}


def stage(
    classifier: Any = None, public: dict[str, PublicSettings] | None = None, **settings: Any
) -> tuple[InspectionStage, Metrics]:
    metrics = Metrics()
    built = InspectionStage(InspectionSettings(**settings), ["docs"], public or {}, metrics, classifier)
    return built, metrics


async def run(built: InspectionStage, exchange: Exchange, terminal: Answers) -> Reply:
    return await compose([ErrorStage(), built], terminal)(exchange)


def counted(metrics: Metrics, action: str, direction: str) -> float:
    value = metrics.registry.get_sample_value(
        "portico_inspection_verdicts_total", {"action": action, "direction": direction}
    )
    return value or 0.0


# ------------------------------------------------------------------------------------ the two layers


@pytest.mark.parametrize(
    ("text", "probability", "action", "learned_signal"),
    [
        pytest.param(PAGES["plain"], 0.9, "block", True, id="the_classifier_alone_blocks"),
        pytest.param(PAGES["plain"], 0.6, "annotate", True, id="the_classifier_alone_makes_it_suspect"),
        pytest.param(PAGES["plain"], 0.3, "pass", False, id="a_low_probability_adds_nothing"),
        pytest.param(PAGES["strong"], 0.1, "block", False, id="the_heuristic_alone_blocks"),
        pytest.param(PAGES["mild"], 0.55, "annotate", True, id="two_lukewarm_opinions_are_not_added_up"),
    ],
)
async def test_the_message_score_is_the_higher_of_the_two_layers(
    text: str, probability: float, action: str, learned_signal: bool
) -> None:
    built, _ = stage(Fixed(probability))
    exchange = tool_call()
    reply = await run(built, exchange, Answers(text_result(text)))
    noted = exchange.notes["audit_extra"]["inspection"]
    assert noted["action"] == action
    assert noted["learned"] == probability
    assert noted["score"] == max(probability, noted["score"])
    assert ("learned" in noted["signals"]) is learned_signal
    assert (reply.outcome is Outcome.DENIED) is (action == "block")


async def test_the_classifier_sees_the_whole_message_text_once() -> None:
    classifier = Fixed(0.0)
    built, _ = stage(classifier)
    await run(built, tool_call(), Answers({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}))
    assert classifier.asked == ["a\n\nb"]


@pytest.mark.parametrize("classifier", [Broken(), Fixed(1.5), Fixed(math.nan)], ids=["raises", "above_1", "nan"])
async def test_a_failing_scorer_blocks_the_message(classifier: Any) -> None:
    built, metrics = stage(classifier)
    exchange = tool_call()
    reply = await run(built, exchange, Answers(text_result(PAGES["plain"])))
    assert reply.error is not None
    assert reply.error.code == DENIED
    assert reply.error.message == "Blocked: content inspection failed"
    assert exchange.notes["audit_extra"]["inspection"]["action"] == "error"
    assert counted(metrics, "error", "response") == 1


def test_the_learned_layer_is_never_loaded_when_off_and_auto_never_fails_start_up() -> None:
    assert load_learned("off") is None
    load_learned("auto")  # a classifier when the `ml` extra is installed, None when not: never an error


# ------------------------------------------------------------------------------------ arguments, size


async def test_a_hostile_argument_is_blocked_before_the_terminal_when_arguments_are_scored() -> None:
    built, metrics = stage(arguments=True)
    terminal = Answers(text_result("ok"))
    exchange = tool_call({"query": PAGES["strong"]})
    reply = await run(built, exchange, terminal)
    assert terminal.reached == 0
    assert reply.error is not None
    assert "the arguments look like a prompt injection" in reply.error.message
    assert PAGES["strong"] not in str(reply.error.to_json())
    assert exchange.notes["audit_extra"]["inspection"]["direction"] == "request"
    assert counted(metrics, "block", "request") == 1


async def test_a_suspect_argument_is_flagged_not_annotated_and_both_verdicts_are_audited() -> None:
    built, _ = stage(arguments=True)
    exchange = tool_call({"query": PAGES["mild"]})
    reply = await run(built, exchange, Answers(text_result(PAGES["plain"])))
    assert reply.result == text_result(PAGES["plain"])
    extra = exchange.notes["audit_extra"]
    assert (extra["inspection_request"]["action"], extra["inspection_request"]["direction"]) == ("flag", "request")
    assert (extra["inspection"]["action"], extra["inspection"]["direction"]) == ("pass", "response")


async def test_with_oversize_block_a_message_over_the_cap_is_blocked() -> None:
    built, _ = stage(max_scored_chars=1_024, oversize="block")
    reply = await run(built, tool_call(), Answers(text_result(PAGES["plain"] * 20)))
    assert reply.error is not None
    assert "oversize" in reply.error.message


async def test_an_input_required_round_is_not_scored() -> None:
    built, _ = stage()
    exchange = tool_call()
    result = {"resultType": "input_required", "inputRequests": {"a": {"method": "elicitation/create"}}}
    reply = await run(built, exchange, Answers(result))
    assert reply.result == result
    assert "audit_extra" not in exchange.notes


# ------------------------------------------------------------------------------------ public: leaks


async def test_a_credential_in_a_public_servers_answer_blocks_it_naming_only_the_detector() -> None:
    built, metrics = stage(public={"docs": PublicSettings()})
    exchange = tool_call()
    reply = await run(built, exchange, Answers(text_result("aws_access_key_id = AKIAIOSFODNN7EXAMPLE")))
    assert reply.error is not None
    assert reply.error.message == "Blocked by content inspection: the answer contains a credential (aws_access_key_id)"
    assert "AKIA" not in str(reply.error.to_json())
    assert exchange.notes["audit_extra"]["inspection"]["signals"] == ["leak:aws_access_key_id"]
    assert counted(metrics, "block", "response") == 1


async def test_a_credential_in_a_private_servers_answer_is_left_to_the_dlp_stage() -> None:
    built, _ = stage()
    reply = await run(built, tool_call(), Answers(text_result("aws_access_key_id = AKIAIOSFODNN7EXAMPLE")))
    assert reply.error is None


def test_every_default_leak_detector_is_a_dlp_detector() -> None:
    PublicSettings(leak_detectors=list(CREDENTIAL_DETECTORS))  # validated against portico.dlp's names


# ------------------------------------------------------------------------------------ what is text


@pytest.mark.parametrize(
    ("method", "result", "expected"),
    [
        pytest.param("tools/call", {"content": [{"type": "image", "data": "AAAA", "mimeType": "image/png"}]}, "",
                     id="images_are_not_text"),
        pytest.param("tools/call", {"content": [{"type": "resource_link", "uri": "x://y", "name": "n",
                                                  "description": "d"}]}, "n\n\nd", id="resource_link_names"),
        pytest.param("tools/call", {"content": [{"type": "text", "text": '{"a": "b"}'}],
                                    "structuredContent": {"a": "b", "c": ["d"]}}, '{"a": "b"}\n\nc\nd',
                     id="structured_strings_not_already_in_the_text"),
        pytest.param("resources/read", {"contents": [{"uri": "x://y", "mimeType": "text/plain", "blob": "aGk="}]},
                     "hi", id="small_text_blobs_are_decoded"),
        pytest.param("resources/read", {"contents": [{"uri": "x://y", "mimeType": "image/png", "blob": "aGk="}]},
                     "", id="other_blobs_are_not"),
        pytest.param("prompts/get", {"description": "d", "messages": [
            {"role": "user", "content": {"type": "text", "text": "t"}},
            {"role": "user", "content": {"type": "resource", "resource": {"uri": "x://y", "text": "r"}}}]},
                     "d\n\nt\n\nr", id="prompt_description_and_messages"),
        pytest.param("tools/call", {"content": [{"type": "text", "text": "same"}, {"type": "text", "text": "same"}]},
                     "same", id="a_repeated_text_counts_once"),
    ],
)  # fmt: skip
def test_the_text_of_a_message_is_what_a_model_would_read(method: str, result: dict[str, Any], expected: str) -> None:
    assert result_text(method, result) == expected


def test_the_text_of_arguments_includes_keys_and_nested_values() -> None:
    assert arguments_text({"arguments": {"q": "a", "opts": {"deep": ["b", 1]}}}) == "q\na\nopts\ndeep\nb"


def test_an_annotation_goes_first_and_keeps_the_hosts_meta() -> None:
    result = {"content": [{"type": "text", "text": "x"}], "_meta": {"other": 1}, "structuredContent": {"a": 1}}
    out = annotated("tools/call", result, {"action": "annotate"}, ("override",), 0.6)
    assert out["content"][1] == {"type": "text", "text": "x"}
    assert "override" in out["content"][0]["text"]
    assert out["_meta"] == {"other": 1, META_KEY: {"action": "annotate"}}
    assert out["structuredContent"] == {"a": 1}
    assert result["content"] == [{"type": "text", "text": "x"}]  # the original is not changed


# ------------------------------------------------------------------------------------ settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "portico.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("yaml", "key"),
    [
        ("inspection:\n  flag_at: 0.9\n  block_at: 0.5\n",
         "inspection (line 1): flag_at (0.9) must not be above block_at (0.5)"),
        ("inspection:\n  servers:\n    docs: {flag_at: 0.95}\n", "servers.docs: flag_at (0.95)"),
        ("inspection:\n  block_at: 2\n", "inspection.block_at (line 2)"),
        ("inspection:\n  on_suspect: shout\n", "inspection.on_suspect (line 2)"),
        ("inspection:\n  max_scored_chars: 10\n", "inspection.max_scored_chars (line 2)"),
        ("servers:\n  - id: docs\n    command: [x]\n    public: {leak_detectors: [aws_key]}\n",
         "servers[0].public.leak_detectors (line 4): unknown DLP detector 'aws_key'"),
        ("servers:\n  - id: docs\n    command: [x]\n    public: {rate_limit: {burst: 0}}\n",
         "servers[0].public.rate_limit.burst (line 4)"),
    ],
)  # fmt: skip
def test_an_invalid_inspection_setting_names_its_key(tmp_path: Path, yaml: str, key: str) -> None:
    with pytest.raises(ConfigError) as invalid:
        load_config(write(tmp_path, yaml))
    assert key in invalid.value.public


def test_overrides_for_an_unknown_server_stop_start_up_naming_the_key() -> None:
    settings = Settings.model_validate({"inspection": {"servers": {"wiki": {"block_at": 0.6}}}})
    with pytest.raises(ConfigError) as invalid:
        build_inspection_stage(settings, Metrics())
    assert invalid.value.public == "inspection.servers.wiki: no server with this id in `servers`"


def test_public_true_takes_the_defaults_and_a_public_server_is_always_inspected_both_ways() -> None:
    settings = Settings.model_validate(
        {"servers": [{"id": "docs", "command": ["x"], "public": True}], "inspection": {"enabled": False}}
    )
    docs = settings.servers[0]
    assert docs.public == PublicSettings()
    profile = settings.inspection.profile("docs", public=True)
    assert (profile.enabled, profile.arguments) == (True, True)
    assert settings.inspection.profile("other", public=False).enabled is False


def test_block_at_null_for_one_server_never_blocks_there() -> None:
    settings = InspectionSettings.model_validate({"servers": {"docs": {"block_at": None}, "wiki": {"flag_at": 0.4}}})
    assert settings.profile("docs", public=False).block_at is None
    assert settings.profile("wiki", public=False).block_at == 0.8
