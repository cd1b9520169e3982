"""Heuristic prompt-injection scorer for free text (tool results, resource contents, prompts); pure, offline.

`score(text)` normalises the text into several views (as written; invisible characters removed and NFKC-folded;
homoglyphs folded to Latin; leetspeak undone; base64 blobs and Unicode tag characters decoded), runs
multilingual (EN, DE, FR, ES, IT, PT, NL) phrase patterns over every view, and combines the weights of the
signal groups that fired as independent evidence: value = 1 - prod(1 - weight). Each group counts once.

A hit inside quotation marks counts for less: texts *about* prompt injection quote the phrases they discuss.
This is a rules layer, meant to sit in front of a classifier; it is not one.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

from portico.inspection.hidden import decode_tags, has_invisible, invisible_controls, strip_invisible
from portico.inspection.model import Score
from portico.inspection.poisoning import SENSITIVE_PATH

_I = re.IGNORECASE

_PREV = (
    r"(previous|prior|above|earlier|preceding|initial|original|vorherigen?|obigen?|bisherigen?|précédentes?|"
    r"ci-dessus|anteriores?|precedenti|voorgaande|vorige)"
)
_RULES = (
    r"(instructions?|rules|prompts?|guidelines|directions|directives|constraints|Anweisungen|Regeln|Vorgaben|"
    r"consignes|règles|instrucciones|reglas|istruzioni|regole|instruções|regras|instructies|regels)"
)

# (signal name, weight, pattern). Weights are evidence strengths, combined as independent probabilities.
_RULESET: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    (
        "override",
        0.85,
        re.compile(
            rf"\b(ignore|disregard|forget|override|drop|skip|ignoriere|vergiss|missachte|ignore[sz]?|oublie|"
            rf"ignora|olvida|negeer|vergeet)\b[^.!?\n]{{0,40}}\b{_PREV}\b[^.!?\n]{{0,30}}\b{_RULES}"
            rf"|\bne\s+tiens\s+pas\s+compte\s+des\s+{_RULES}|\bno\s+hagas\s+caso\s+de\s+las\s+{_RULES}"
            rf"|\b(ignore|disregard|forget)\s+(all\s+of\s+|everything\s+)?(the\s+)?(above|previous|prior)\s*(and|[;,:])"
            rf"|\bforget\s+everything\s+you\s+(were|have\s+been)\s+told|\bvergiss\s+alles|\boublie\s+tout|\bolvida\s+todo",
            _I,
        ),
    ),
    (
        "new-instructions",
        0.6,
        re.compile(
            r"\b(new|updated|priority)\s+(task|instructions?)\s*([:.]|from\s+the\s+(operator|administrator|admin))"
            r"|\b(no\s+longer\s+bound\s+by|rules\s+no\s+longer\s+apply|your\s+(real|only|true)\s+task|overrides?\s+what\s+"
            r"the\s+user\s+(said|asked))|\binstruction\s+from\s+the\s+(maintainers?|administrator|admin|developers?|operator|owner)"
            r"|\bneue\s+Anweisung|\bnouvelle\s+instruction|\bnueva\s+instrucci[oó]n",
            _I,
        ),
    ),
    (
        "prompt-leak",
        0.55,
        re.compile(
            r"\b(reveal|print|show|output|dump|repeat|display|gib|zeige|révèle|affiche|muestra|revela|rivela|toon)\b"
            r"[^.!?\n]{0,30}\b(system\s*-?\s*prompt|initial\s+instructions|your\s+instructions|hidden\s+configuration|"
            r"Systemprompt|prompt\s+(système|del\s+sistema|di\s+sistema))",
            _I,
        ),
    ),
    (
        "jailbreak-persona",
        0.6,
        re.compile(
            r"\b(you\s+are\s+(now\s+)?DAN|do\s+anything\s+now|(in|into|enable|enter|activate)\s+developer\s*mode|DevMode|jailbr(oken|eak\s+mode))\b"
            r"|\b(without|no|ohne|sans|sin|keine)\s+(any\s+|aucune\s+)?(rules|restrictions|limits|content\s+policy|"
            r"Einschränkungen|Richtlinien|restriction|règles|restricciones|l[ií]mites)\b"
            r"|\b(unrestricted|never\s+refuses|always\s+complies)\b|\bbypass\s+(all\s+|any\s+|the\s+)?(restrictions|"
            r"rules|safety|filters|guardrails)|\bwithout\s+(disclaimers|refusals|warnings|moral)|\bact\s+as\s+if\s+you\s+(have|had)\s+no\b",
            _I,
        ),
    ),
    (
        "role-marker",
        0.6,
        re.compile(
            r"<\|im_start\|>|<\|system\|>|\[/?INST\]|<</?SYS>>|\[SYSTEM\]|#{2,}\s*SYSTEM|</?(system|important)>"
            r"|</user>|^\s*(system|assistant)\s*:|\bSYSTEM\s+(NOTE|OVERRIDE|MESSAGE)\b",
            _I | re.MULTILINE,
        ),
    ),
    (
        "addressed-to-ai",
        0.5,
        re.compile(
            r"\b(note|instruction|message|attention|hinweis|note\s+pour|nota\s+para)\s+(to|for|für|pour|para)\s+(the\s+|den\s+|l'|el\s+)?"
            r"(any\s+)?(AI|KI|IA|assistant|agent|language\s+model|LLM|copilot|bot|automated)"
            r"|\b(AI|KI)\s+agents?\s*[:,]|\bif\s+you\s+are\s+an?\s+(AI|language\s+model|LLM|assistant)\b"
            r"|\b(any|every)\s+(AI|automated)\s+(assistant|agent|tool)s?\b|\blanguage\s+models?\s+must\b"
            r"|\b(assistant|agent|claude|copilot|AI|@bot)\s*,\s*(please\s+)?(this\s+is|when|after|list|send|forward|"
            r"ignore|read|run)\b|\b(AI|assistant)\s*:\s*(after|when|ignore|you)\b|#\s*TODO\(ai\)|assistant\s+processing"
            r"|\b(AI|assistant|agent|copilot|bot)s?\s+(reading|processing|triaging|screening)\b"
            r"|\b(copilot|claude|chatgpt|gemini|assistant|AI|agent|bot)\s*:\s*(when|after|ignore|you|please)\b"
            r"|\bthe\s+(assistant|AI|model|agent)\s+(should|must|is\s+required\s+to)\b",
            _I,
        ),
    ),
    (
        "secrecy",
        0.6,
        re.compile(
            r"\b(do\s*n[o']t|never|must\s+not)\s+(tell|inform|mention|say|reveal|notify)\w*\s+(this\s+|it\s+|anything\s+)?"
            r"(to\s+)?(the\s+user|why|this\s+(instruction|comment|message|step))|\bwithout\s+(mentioning|informing|telling)"
            r"|\bsag\s+dem\s+Nutzer\s+nichts|\bsans\s+en\s+informer"
            r"|\bno\s+se\s+lo\s+digas",
            _I,
        ),
    ),
    ("covert", 0.3, re.compile(r"\b(silently|quietly|secretly|covertly)\b", _I)),
    (
        "autonomy",
        0.5,
        re.compile(r"\bnever\s+ask\s+(for\s+)?(confirmation|permission)|\bexecute\s+all\s+(shell\s+)?commands", _I),
    ),
    (
        "exfiltration",
        0.5,
        re.compile(
            r"\b(send|forward|e-?mail|post|upload|append|include|copy|paste|leite|weiter|envoie|envie|reenv[ií]a|envía)"
            r"\w*\b(?:[^.!?\n]|\.(?=\S)){0,60}?(?<!\w)(passwords?|secrets?|api[\s-]?keys?|private\s+keys?|tokens?|credentials|"
            r"(chat|conversation)\s+history|conversation|historique|hist[oó]rico|(all|every|latest|last\s+\d+)\s+"
            r"(e-?mails?|messages|contacts|correos)|contacts|\.env|id_rsa|2FA\s+code|recovery\s+codes|environment\s+"
            r"variables|customer\s+list|E-Mails|correos|README\s+contents|repository)\b"
            r"|!\[[^\]]*\]\(https?://[^)\s]+\?[^)\s]*="
            r"|\b(send|forward|post|upload|e-?mail)\w*\b[^.!?\n]{0,60}\bto\s+([\w.+-]+@[\w-]+\.[\w.]+|https?://)",
            _I,
        ),
    ),
    ("sensitive-path", 0.35, SENSITIVE_PATH),
    (
        "hidden-markup",
        0.3,
        re.compile(r"<!--.*?-->|display\s*:\s*none|font-size\s*:\s*0|visibility\s*:\s*hidden", _I | re.DOTALL),
    ),
    (
        "payload-assembly",
        0.4,
        re.compile(
            r"\b(combine|concatenate)\s+part|\bfirst\s+letter\s+of\s+each\s+word|\bthen\s+(do|follow|obey)\s+it\b", _I
        ),
    ),
    (
        "harmful-action",
        0.25,
        re.compile(
            r"\b(delete|remove|wipe|erase|lösche|supprime|borra)\b[^.!?\n]{0,30}\b(every|all|the\s+originals|"
            r"repository|database|Repository|fichiers|base\s+de\s+datos)\b|\brm\s+-rf\s+~|\bbackdoor\b|"
            r"\b(disable|turn\s+off)\s+(logging|safety|filters?)|\bsafety\s+filters\s+disabled|\btransfer\s+\$|"
            r"\b(reset|change)\s+the\s+(user's\s+)?(MFA|CI\s+secrets)|\bgrant\b[^.]{0,30}\badmin",
            _I,
        ),
    ),
)

# Literal anchors per rule: every match of the rule's pattern contains one of its `parts` (lowercase substrings)
# or one of its `words` (whole ASCII words). On ASCII text, where lowercasing is exactly the pattern's case
# folding, a rule none of whose anchors occur cannot match and is skipped: one `in` test instead of a regex scan
# over the whole text. Non-ASCII text runs every pattern. tests/inspection/test_injection_score.py proves the
# gated and ungated scores equal on every row of both evaluation sets.
_ANCHORS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "override": (
        frozenset(),
        ("ignor", "disregard", "forget", "overrid", "drop", "skip", "vergiss", "missacht", "oubli", "olvid",
         "negeer", "vergeet", "tiens", "hagas"),
    ),
    "new-instructions": (frozenset(), ("task", "instruction", "longer", "overrid", "anweisung", "instrucci")),
    "prompt-leak": (frozenset(), ("prompt", "instructions", "configuration")),
    "jailbreak-persona": (
        frozenset({"dan", "act"}),
        ("anything", "developer", "devmode", "jailbr", "rules", "restric", "limit", "mites", "policy", "einschr",
         "richtlinien", "refuses", "complies", "bypass", "without"),
    ),
    "role-marker": (frozenset(), ("<|", "inst]", "sys>>", "system", "important>", "</user>", "assistant")),
    "addressed-to-ai": (
        frozenset({"ai", "ais", "ki", "ia", "llm", "bot", "bots", "agent", "agents", "assistant", "assistants",
                   "copilot", "copilots", "claude", "chatgpt", "gemini", "automated", "model", "models", "todo",
                   "language"}),
        (),
    ),
    "secrecy": (frozenset(), ("tell", "inform", "mention", "say", "reveal", "notify", "without", "nutzer", "digas")),
    "covert": (frozenset(), ("silently", "quietly", "secretly", "covertly")),
    "autonomy": (frozenset(), ("never", "execute")),
    "exfiltration": (
        frozenset(),
        ("send", "forward", "mail", "post", "upload", "append", "include", "copy", "paste", "leite", "weiter",
         "envoie", "envie", "reenv", "!["),
    ),
    "sensitive-path": (
        frozenset(),
        ("/.", "id_", "mcp.json", "claude_desktop_config", "/etc/", ".env", ".aws/", ".npmrc", ".pypirc",
         ".git-credentials"),
    ),
    "hidden-markup": (frozenset(), ("<!--", "display", "font-size", "visibility")),
    "payload-assembly": (frozenset(), ("combine", "concatenate", "letter", "then")),
    "harmful-action": (
        frozenset(),
        ("delete", "remove", "wipe", "erase", "supprime", "borra", "lösche", "-rf", "backdoor", "disable", "turn",
         "safety", "transfer", "reset", "change", "grant"),
    ),
}  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+")


def _candidates(body: str, gated: bool) -> list[tuple[str, float, re.Pattern[str]]]:
    """The rules whose pattern can match `body` (all of them for non-ASCII text, or with `gated` off)."""
    if not gated or not body.isascii():
        return list(_RULESET)
    lowered = body.lower()
    words = set(_WORD.findall(lowered))
    out = []
    for rule in _RULESET:
        anchor_words, parts = _ANCHORS[rule[0]]
        if not words.isdisjoint(anchor_words) or any(part in lowered for part in parts):
            out.append(rule)
    return out


# Cyrillic and Greek letters that look like Latin ones, folded onto them (escaped: they are indistinguishable).
_HOMOGLYPHS = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u03bf\u03b1\u03b5\u03b9\u039f\u0391\u0395",
    "aeopcyxijsABEKMHOPCTXoaeiOAE",
)
_LEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_WORD = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*[013457])\w{3,}\b")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_QUOTES = "'\"\u2018\u2019\u201c\u201d\u00ab\u00bb\u201e"
_NEGATED = re.compile(r"\b(not|never|n't|no)\s*$", _I)
_NEGATABLE = frozenset({"exfiltration", "harmful-action"})
_IMPERATIVE = re.compile(
    r"(^|[.!?:;]\s+)(ignore|forget|reveal|send|forward|delete|call|run|print|output|disregard|include|copy|post)\b",
    _I | re.MULTILINE,
)


def _decoded_base64(text: str) -> list[str]:
    out = []
    for match in _BASE64.finditer(text):
        blob = match.group(0)
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if decoded.isprintable() and len(decoded.split()) >= 3:
            out.append(decoded)
    return out


_GREEK_OR_CYRILLIC = re.compile("[\u0370-\u03ff\u0400-\u04ff]")


def _mixed_script(text: str) -> bool:
    if _GREEK_OR_CYRILLIC.search(text) is None:
        return False
    for word in re.findall(r"\w{2,}", text):
        scripts = {unicodedata.name(ch, "?").split(" ")[0] for ch in word if ch.isalpha()}
        if "LATIN" in scripts and scripts & {"CYRILLIC", "GREEK"}:
            return True
    return False


def _views(text: str) -> tuple[list[tuple[str, str]], set[str]]:
    """(view name, text) pairs to match against, and the signals the decoding itself raised."""
    signals: set[str] = set()
    hidden = has_invisible(text)
    plain = strip_invisible(text) if hidden else text
    if not plain.isascii():
        plain = unicodedata.normalize("NFKC", plain)
    views = [("plain", plain)]
    if hidden:
        tags = decode_tags(text)
        if tags:
            signals.add("unicode-tags")
            views.append(("unicode-tags", tags))
        zero, bidi = invisible_controls(text)
        if len(zero) >= 3 or bidi:
            signals.add("invisible-controls")
    if not plain.isascii() and _mixed_script(plain):
        signals.add("homoglyph")
        views.append(("homoglyph", plain.translate(_HOMOGLYPHS)))
    if len(_LEET_WORD.findall(plain)) >= 2:
        views.append(("leetspeak", plain.translate(_LEET)))
    views.extend(("base64", decoded) for decoded in _decoded_base64(plain))
    return views, signals


def _quoted(text: str, start: int, end: int) -> bool:
    """A multi-word hit wrapped in quotation marks: the text mentions the phrase rather than using it."""
    if " " not in text[start:end].strip():
        return False
    before = text[max(0, start - 2) : start]
    after = text[end : end + 40]
    return any(q in before for q in _QUOTES) and any(q in after for q in _QUOTES)


_SIGNAL_WEIGHTS = {"unicode-tags": 0.5, "invisible-controls": 0.3, "homoglyph": 0.2, "instruction-density": 0.15}


def score(text: str, *, gated: bool = True) -> Score:
    """Injection likelihood of `text` in [0, 1] and the signals behind it (`override`, `override@base64`, ...).

    `gated=False` runs every pattern on every view (the reference the literal anchors are tested against)."""
    views, decoding = _views(text)
    weights: dict[str, float] = {name: _SIGNAL_WEIGHTS[name] for name in decoding}
    fired: list[str] = sorted(decoding)
    for view, body in views:
        for name, weight, pattern in _candidates(body, gated):
            match = pattern.search(body)
            if match is None or (
                name in _NEGATABLE and _NEGATED.search(body[max(0, match.start() - 12) : match.start()])
            ):
                continue
            label = name if view == "plain" else f"{name}@{view}"
            effective = weight * (0.3 if _quoted(body, match.start(), match.end()) else 1.0)
            if effective > weights.get(name, 0.0):
                weights[name] = effective
            if label not in fired:
                fired.append(label)
    plain = views[0][1]
    if len(_IMPERATIVE.findall(plain)) >= 2 and re.search(r"\byou(r)?\b", plain, _I):
        weights["instruction-density"] = _SIGNAL_WEIGHTS["instruction-density"]
        fired.append("instruction-density")
    remaining = 1.0
    for weight in weights.values():
        remaining *= 1.0 - weight
    return Score(value=round(1.0 - remaining, 4), signals=tuple(fired))
