"""Offline token counting: known cl100k counts, the tool-list serialization, and no network ever (proved in a
fresh interpreter whose audit hook refuses every socket, where plain tiktoken does try to download)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from portico.codemode.tokens import count_tokens, count_tool_list, encoding, serialize_tool_list
from tests.upstreams.launch import REPO_ROOT


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("hello world", 2),
        ("tiktoken is great!", 6),
        ("antidisestablishmentarianism", 6),
        ('{"type":"object","properties":{}}', 9),
        ("<|endoftext|>", 7),  # a special-token marker is ordinary text here, never the special token
        ("日本語のテキスト", 8),
    ],
)
def test_fixed_strings_have_their_cl100k_counts(text: str, tokens: int) -> None:
    assert count_tokens(text) == tokens


def test_the_encoding_is_genuine_cl100k_base() -> None:
    # token ids published for cl100k_base (OpenAI cookbook, "How to count tokens with tiktoken")
    assert encoding().encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert encoding().n_vocab == 100277


TOOLS = [
    {
        "name": "github_list_issues",
        "title": "List issues",
        "description": "List issues in a repository. Résumé: newest first.",
        "inputSchema": {
            "type": "object",
            "properties": {"owner": {"type": "string"}, "state": {"enum": ["open", "closed"]}},
            "required": ["owner"],
        },
        "annotations": {"readOnlyHint": True},
    },
    {"name": "ping", "inputSchema": {"type": "object"}},
]


def test_a_tool_list_is_serialized_as_compact_utf8_json_in_key_order() -> None:
    text = serialize_tool_list(TOOLS)
    assert text.startswith('[{"name":"github_list_issues","title":"List issues","description":"List issues')
    assert "Résumé" in text
    assert text.count(", ") == 0
    assert text.count(": ") == 1  # the one in the description
    assert json.loads(text) == TOOLS


def test_a_tool_list_counts_the_tokens_of_its_serialization() -> None:
    assert count_tool_list(TOOLS) == count_tokens(orjson.dumps(TOOLS).decode())
    assert count_tool_list(TOOLS) == 78
    assert count_tool_list([]) == 1  # "[]"


def test_more_tools_cost_more_tokens() -> None:
    assert count_tool_list(TOOLS[:1]) < count_tool_list(TOOLS) < count_tool_list(TOOLS * 2)


PROBE = textwrap.dedent(
    """
    import json, sys, threading

    def no_network(event, args):
        if event in {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                     "socket.sendto", "socket.sendmsg"}:
            sys.stderr.write(f"NETWORK ATTEMPT: {event}\\n")
            raise PermissionError("network refused in this test")

    sys.addaudithook(no_network)

    if sys.argv[1] == "plain":
        import tiktoken
        try:
            tiktoken.get_encoding("cl100k_base")
        except BaseException as exc:
            print(json.dumps({"failed": type(exc).__name__}))
        else:
            print(json.dumps({"failed": None}))
    else:
        from portico.codemode import tokens
        barrier = threading.Barrier(8)
        seen = []
        def work():
            barrier.wait()
            seen.append((id(tokens.encoding()), tokens.count_tokens("hello world")))
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps({"encodings": len({s[0] for s in seen}), "counts": sorted({s[1] for s in seen})}))
    """
)


def run_probe(mode: str, tmp_path: Path) -> tuple[dict[str, object], str]:
    env = {k: v for k, v in os.environ.items() if k not in {"TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"}}
    env["TMPDIR"] = str(tmp_path)  # tiktoken's default cache lives under the temp dir
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1]), completed.stderr


def test_counting_never_touches_the_network_nor_writes_a_cache(tmp_path: Path) -> None:
    result, stderr = run_probe("portico", tmp_path)
    assert "NETWORK ATTEMPT" not in stderr
    assert result == {"encodings": 1, "counts": [2]}  # eight threads racing the first load share one encoding
    assert list(tmp_path.iterdir()) == []


def test_the_probe_catches_plain_tiktoken_trying_to_download(tmp_path: Path) -> None:
    result, stderr = run_probe("plain", tmp_path)
    assert "NETWORK ATTEMPT" in stderr
    assert result["failed"] is not None
