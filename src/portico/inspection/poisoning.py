"""Tool-poisoning scanner, pin hash and diff for MCP tool definitions (catalog time, pure).

Every string in the pinned fields (name, title, description, inputSchema, outputSchema, annotations) is checked,
including nested property descriptions, defaults, enum values and property names. Stable codes, with the
agent-scan issue each one refines:

| code  | severity    | rule                                                                   | agent-scan |
|-------|-------------|------------------------------------------------------------------------|------------|
| TP001 | block       | instructions to the model (`<IMPORTANT>`, "do not tell the user", "secretly") | E001   |
| TP002 | block       | reads of sensitive files or credentials (`~/.ssh/id_rsa`, `mcp.json`, `.env`)  | E001 |
| TP003 | block       | exfiltration: send/include secrets, files, history or other tools' output | E001 |
| TP004 | block       | cross-server shadowing: rules for how *another* tool is used             | E002 |
| TP005 | block       | Unicode tag characters (U+E0000-E007F); the smuggled text is decoded     | W021 |
| TP006 | block       | zero-width or bidi control characters                                   | W021 |
| TP007 | block/warn  | homoglyphs: mixed scripts (block) or non-ASCII (warn) in a name          | -    |
| TP008 | block/warn  | base64 blob (block when the decoded text trips TP001-TP004)             | -    |
| TP009 | warn        | description longer than `ScanOptions.max_description_chars`             | -    |
| TP010 | warn        | URL to a host outside `ScanOptions.allowed_hosts`                        | -    |
| TP011 | warn        | hidden markup: HTML comments, markdown link titles, hidden HTML         | -    |
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from portico.inspection.hidden import decode_tags, invisible_controls, is_tag, strip_invisible
from portico.inspection.model import Finding, Severity

PINNED_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """Tunable limits. `other_tools` are names of tools on *other* servers, for the shadowing check."""

    max_description_chars: int = 4000
    allowed_hosts: frozenset[str] = frozenset()
    other_tools: frozenset[str] = field(default_factory=frozenset)


DEFAULT_OPTIONS = ScanOptions()

_I = re.IGNORECASE | re.DOTALL

# TP001: text that speaks to the model rather than describing the tool.
_DIRECTIVES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("model-addressed markup tag", re.compile(r"<\s*/?\s*(important|system|instructions?|secret|hidden)\s*>", _I)),
    (
        "asks to hide something from the user",
        re.compile(
            r"\b(do\s*n[o']t|never|must\s+not|should\s+not)\s+(tell|inform|mention|notify|show|reveal|alert)\w*"
            r"\s+(this\s+|it\s+|anything\s+)?(to\s+)?the\s+user",
            _I,
        ),
    ),
    (
        "acts without the user knowing",
        re.compile(r"\b(without\s+(informing|telling|notifying|alerting|asking)\s+the\s+user|secretly|silently)\b", _I),
    ),
    (
        "overrides earlier instructions",
        re.compile(
            r"\b(ignore|disregard|forget|override)\s+(all\s+|any\s+)?(the\s+)?(previous|prior|above|earlier|other|"
            r"system)\s+(instructions|rules|prompts?|guidelines)",
            _I,
        ),
    ),
    (
        "orders an extra tool call",
        re.compile(r"\byou\s+(must|should|have\s+to|need\s+to)\s+(also|first|always)\s+(call|use|invoke|run)\b", _I),
    ),
    (
        "orders a read before use",
        re.compile(
            r"\bbefore\s+(using|calling|invoking)\s+this\s+tool,?\s+(you\s+must\s+|first\s+|please\s+)?read\b", _I
        ),
    ),
    (
        "addresses the assistant",
        re.compile(
            r"\b(the\s+)?(assistant|AI|model|LLM|agent)\s+(must|should|is\s+required\s+to)\s+(always\s+)?"
            r"(first\s+)?(read|send|pass|call|include|ignore|not\s+tell)",
            _I,
        ),
    ),
    ("threatens the model", re.compile(r"\botherwise\s+the\s+(tool|application|system)\s+will\s+(crash|fail)\b", _I)),
)

# TP002: files and stores that no tool description has a reason to point at.
SENSITIVE_PATH = re.compile(
    r"(~|\$HOME|/home/\w+|/root)/\.(ssh|aws|gnupg|kube|docker|config/gcloud|netrc|cursor|codeium)\b"
    r"|\bid_(rsa|ed25519|ecdsa|dsa)\b|\bmcp\.json\b|\bclaude_desktop_config\.json\b|/etc/(passwd|shadow)\b"
    r"|(^|[\s'\"`(])\.env\b|\.aws/credentials|\.npmrc\b|\.pypirc\b|\.git-credentials\b",
    _I,
)

# TP003: an exfiltration verb, then within one sentence something private and a channel or destination.
_EXFIL_VERB = r"\b(send|forward|include|pass|append|attach|upload|post|copy|leak|exfiltrate|transmit|email|bcc|cc)\b"
_PRIVATE = (
    r"(credentials?|secrets?|passwords?|api[\s_-]?keys?|tokens?|private\s+keys?|ssh\s+keys?|env(ironment)?\s+"
    r"var(iable)?s?|\.env|chat\s+history|conversation(\s+history)?|previous\s+messages|message\s+history|"
    r"system\s+prompt|contents?\s+of\s+(the\s+)?(file|~|/|\.)|other\s+tools?'?s?\s+(output|results?|responses?))"
)
_EXFIL = re.compile(
    rf"{_EXFIL_VERB}[^.!?\n]{{0,120}}?(?<!\w){_PRIVATE}"
    rf"|(?<!\w){_PRIVATE}[^.!?\n]{{0,40}}\b(must|should|has\s+to|is\s+to)\s+be\s+(included|sent|forwarded|attached|"
    r"appended|copied|uploaded|posted)\b",
    _I,
)
_NEGATED = re.compile(r"\b(not|never|n't|no)\s*$", re.IGNORECASE)

# TP004: rules about other tools or servers.
_SHADOW = re.compile(
    r"\b(when|whenever|if)\s+(the\s+)?[`'\"]?[\w.-]+[`'\"]?\s+tool\s+is\s+(used|called|invoked)"
    r"|\b(all|any)\s+(calls?|messages?|requests?)\s+(to|sent\s+(with|via|through))\s+(the\s+)?[`'\"]?[\w.-]+"
    r"[`'\"]?\s+(tool|server)\b[^.]{0,80}\b(must|should|instead)\b"
    r"|\b(any|every|all)\s+other\s+(tools?|servers?)\b[^.]{0,60}\b(must|should|instead|change|redirect)\b"
    r"|\binstead\s+of\s+(the\s+)?(user'?s?\s+)?(intended|original|specified)\s+(recipient|address|number|target)",
    _I,
)

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{32,}={0,2}(?![A-Za-z0-9+/=])")
_URL = re.compile(r"\b(?:https?|ftp|wss?)://[^\s<>\"')\]]+", re.IGNORECASE)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_LINK_TITLE = re.compile(r"\]\([^)\s]+\s+[\"'][^\"']+[\"']\)")
_HIDDEN_HTML = re.compile(r"<[^>]+(display\s*:\s*none|visibility\s*:\s*hidden|\bhidden\b)[^>]*>", re.IGNORECASE)


def _walk(value: Any, where: str) -> Iterator[tuple[str, str, bool]]:
    """Every string under `value` as (path, text, is_key); object keys are yielded too (property names)."""
    if isinstance(value, str):
        yield where, value, False
    elif isinstance(value, Mapping):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            yield path, str(key), True
            yield from _walk(item, path)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk(item, f"{where}[{i}]")


def _snippet(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _semantic(text: str, where: str, origin: str = "") -> list[Finding]:
    """TP001-TP004 over one (already visible) text; `origin` notes where hidden text was decoded from."""
    found: list[Finding] = []
    suffix = f" ({origin})" if origin else ""
    for label, pattern in _DIRECTIVES:
        if match := pattern.search(text):
            found.append(Finding("TP001", Severity.BLOCK, where, f"{label}: {_snippet(match.group(0))!r}{suffix}"))
            break
    if match := SENSITIVE_PATH.search(text):
        found.append(Finding("TP002", Severity.BLOCK, where, f"sensitive path {match.group(0).strip()!r}{suffix}"))
    if (match := _EXFIL.search(text)) and not _NEGATED.search(text[max(0, match.start() - 12) : match.start()]):
        found.append(
            Finding("TP003", Severity.BLOCK, where, f"exfiltration request: {_snippet(match.group(0))!r}{suffix}")
        )
    if match := _SHADOW.search(text):
        found.append(
            Finding("TP004", Severity.BLOCK, where, f"rules for another tool: {_snippet(match.group(0))!r}{suffix}")
        )
    return found


def _other_tool_reference(text: str, where: str, own: str, others: frozenset[str]) -> list[Finding]:
    """Another server's tool named in this text. A compound name (`send_email`, `createIssue`) is evidence of
    shadowing and blocks; a plain word (`search`, `echo`, `add`) may just be English, so it only warns."""
    found = []
    for name in sorted(others - {own}):
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            compound = bool(re.search(r"[_.-]|[a-z][A-Z]", name))
            severity = Severity.BLOCK if compound else Severity.WARN
            found.append(Finding("TP004", severity, where, f"mentions another server's tool {name!r}"))
    return found


def _scripts(word: str) -> set[str]:
    scripts = set()
    for ch in word:
        if ch.isalpha():
            scripts.add(unicodedata.name(ch, "UNKNOWN").split(" ")[0])
    return scripts


def _homoglyph(text: str, where: str) -> list[Finding]:
    if text.isascii():
        return []
    for word in re.findall(r"\w+", text):
        if len(_scripts(word)) > 1:
            return [Finding("TP007", Severity.BLOCK, where, f"mixed scripts {sorted(_scripts(word))} in a name")]
    return [Finding("TP007", Severity.WARN, where, "non-ASCII characters in a name")]


def _base64_blobs(text: str, where: str) -> list[Finding]:
    found: list[Finding] = []
    for match in _BASE64.finditer(text):
        blob = match.group(0)
        # Words, paths and hex digests are not blobs: require mixed case and a digit or symbol.
        if not (re.search(r"[a-z]", blob) and re.search(r"[A-Z]", blob) and re.search(r"[0-9+/]", blob)):
            continue
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        hits = _semantic(decoded, where, "decoded from base64")
        if hits:
            found.extend(hits)
            found.append(Finding("TP008", Severity.BLOCK, where, "base64 blob hiding instructions"))
        elif decoded.isprintable():
            found.append(Finding("TP008", Severity.WARN, where, f"base64 blob decoding to {_snippet(decoded, 40)!r}"))
    return found


def _urls(text: str, where: str, allowed: frozenset[str]) -> list[Finding]:
    found = []
    for match in _URL.finditer(text):
        host = (urlsplit(match.group(0).rstrip(".,;:!?")).hostname or "").lower()
        if not any(host == h or host.endswith("." + h) for h in allowed):
            found.append(Finding("TP010", Severity.WARN, where, f"URL to non-allowlisted host {host!r}"))
    return found


def _markup(text: str, where: str) -> list[Finding]:
    found = []
    if _HTML_COMMENT.search(text):
        found.append(Finding("TP011", Severity.WARN, where, "HTML comment (invisible when rendered)"))
    if _LINK_TITLE.search(text):
        found.append(Finding("TP011", Severity.WARN, where, "markdown link title (shown only on hover)"))
    if _HIDDEN_HTML.search(text):
        found.append(Finding("TP011", Severity.WARN, where, "HTML element hidden from display"))
    return found


def scan_tool(definition: Mapping[str, Any], options: ScanOptions = DEFAULT_OPTIONS) -> list[Finding]:
    """All findings for one MCP tool definition, in field order; an empty list means nothing was flagged."""
    own = str(definition.get("name", ""))
    findings: list[Finding] = []
    for key in PINNED_FIELDS:
        if key not in definition:
            continue
        for where, raw, is_key in _walk(definition[key], key):
            tags = "".join(ch for ch in raw if is_tag(ch))
            if tags:
                findings.append(
                    Finding(
                        "TP005",
                        Severity.BLOCK,
                        where,
                        f"Unicode tag characters spelling {_snippet(decode_tags(tags))!r}",
                    )
                )
                findings.extend(_semantic(decode_tags(tags), where, "decoded from Unicode tags"))
            zero, bidi = invisible_controls(raw)
            if zero or bidi:
                names = ", ".join(sorted(set(zero + bidi)))
                findings.append(Finding("TP006", Severity.BLOCK, where, f"invisible control characters {names}"))
            text = strip_invisible(raw)
            if where == "name" or is_key or where == "title":
                findings.extend(_homoglyph(text, where))
            if is_key:
                continue
            findings.extend(_semantic(text, where))
            findings.extend(_other_tool_reference(text, where, own, options.other_tools))
            findings.extend(_base64_blobs(text, where))
            if not where.rsplit(".", 1)[-1].startswith("$"):  # `$schema`, `$id`: identifiers, not links
                findings.extend(_urls(text, where, options.allowed_hosts))
            findings.extend(_markup(text, where))
    description = definition.get("description")
    if isinstance(description, str) and len(description) > options.max_description_chars:
        findings.append(
            Finding(
                "TP009",
                Severity.WARN,
                "description",
                f"description is {len(description)} characters (limit {options.max_description_chars})",
            )
        )
    return findings


def blocks(findings: list[Finding]) -> bool:
    """True when any finding has block severity (the tool should be quarantined)."""
    return any(f.severity is Severity.BLOCK for f in findings)


def _pinned(definition: Mapping[str, Any]) -> dict[str, Any]:
    return {key: definition[key] for key in PINNED_FIELDS if key in definition}


def pin_hash(definition: Mapping[str, Any]) -> str:
    """sha256 (hex) over canonical JSON of the pinned fields: sorted keys, no whitespace, UTF-8.

    Key order and unpinned fields (`_meta`, `icons`, `execution`) do not change it; any pinned value does.
    """
    canonical = json.dumps(_pinned(definition), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _visible(text: str) -> str:
    """`text` with invisible characters spelled out, so a diff shows them."""
    out = []
    for ch in text:
        if is_tag(ch) or (unicodedata.category(ch) in ("Cf", "Cc") and ch not in "\n\t"):
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out)


def _render(definition: Mapping[str, Any]) -> list[str]:
    """One `path: value` line per leaf, multi-line strings continued with indentation."""
    lines: list[str] = []

    def leaf(path: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key in sorted(value):
                leaf(f"{path}.{key}", value[key])
        elif isinstance(value, list) and value and any(isinstance(v, Mapping | list) for v in value):
            for i, item in enumerate(value):
                leaf(f"{path}[{i}]", item)
        elif isinstance(value, str):
            first, *rest = _visible(value).split("\n")
            lines.append(f"{path}: {first}")
            lines.extend(f"{' ' * (len(path) + 2)}{line}" for line in rest)
        else:
            lines.append(f"{path}: {_visible(json.dumps(value, sort_keys=True, ensure_ascii=False))}")

    for key in PINNED_FIELDS:
        if key in definition:
            leaf(key, definition[key])
    return lines


def diff_tools(old: Mapping[str, Any], new: Mapping[str, Any], context: int = 2) -> str:
    """A unified diff of the pinned fields of two tool definitions; empty when their pin hashes are equal."""
    if pin_hash(old) == pin_hash(new):
        return ""
    name = str(new.get("name", old.get("name", "tool")))
    diff = difflib.unified_diff(
        _render(old),
        _render(new),
        fromfile=f"{name} (pinned {pin_hash(old)[:12]})",
        tofile=f"{name} (now {pin_hash(new)[:12]})",
        n=context,
        lineterm="",
    )
    return "\n".join(diff) + "\n"
