"""The reader: our own model that reads a question together with one candidate sentence and says
how likely that sentence answers it.

It is the bundled multilingual-e5-small (as ``rag.embedders.convert`` materializes it) with a LoRA adapter
(``peft``) on every attention and feed-forward projection, mean pooling over the question and the
sentence read as one input (as e5 was trained to pool), and a linear head. Only the adapter and the
head ship, in ``rag/reader/`` (a few MB, checksummed in ``reader.json``); ``bench/train_reader.py``
rebuilds them. At load time the adapter is merged into the weights, so a question costs one forward
of e5 per candidate sentence and nothing more.

Beside it ships its question adapter (``rag/reader/question/``, ``bench/train_question_adapter.py``):
a small LoRA on e5's question side only, trained so that a question's vector lies nearest the stored
vector of the sentence that answers it. The answer step ranks the retrieved passages' sentences by it
(what the reader reads, and the meaning score blended into the reader's order); the stored vectors
stay as they are. It shares the reader's embeddings (three quarters of e5's weights).

Loading takes torch, transformers and peft (a few seconds); the app does it in the background.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UserError
from .embedders import MODEL_LOCK, cpu_count
from .embedders.convert import materialize, model_text, sha256_file

log = logging.getLogger(__name__)

READER_DIR = Path(__file__).parent / "reader"
ADAPTER_FILE = "adapter_model.safetensors"
MANIFEST = "reader.json"
QUESTION_PROMPT = "query: "
SENTENCE_PROMPT = "passage: "
MAX_TOKENS = 160      # question + title + sentence; longer sentences are cut at the end
MAX_QUESTION_TOKENS = 128
MAX_TITLE_CHARS = 120
# LoRA on every projection of every layer: what the adapter holds (bench/train_reader.py).
TARGET_MODULES = r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"
# The question adapter (bench/train_question_adapter.py): LoRA on the question side only, so the
# stored sentence vectors stay valid; the answer step ranks candidate sentences by it.
QUESTION_DIR = READER_DIR / "question"
QUESTION_MANIFEST = "question.json"
# A pattern, not a list: peft keeps a list as a set, so its adapter_config.json would list them in
# an order that changes from process to process (and the checksum with it).
QUESTION_TARGETS = r".*encoder\.layer\.\d+\.attention\.self\.(query|value)"


class ReaderError(UserError):
    pass


def pair_text(question: str, title: str, sentence: str) -> tuple[str, str]:
    """The two texts the reader reads as one input, as the model reads them (``model_text``): the
    question, and the sentence after its article's title (a sentence often names its topic only by
    a pronoun)."""
    title = (title or "").strip()
    if len(title) > MAX_TITLE_CHARS:
        title = title[:MAX_TITLE_CHARS]
    return (model_text(QUESTION_PROMPT + question),
            model_text(SENTENCE_PROMPT + (f"{title}: {sentence}" if title else sentence)))


def encode(tokenizer, pairs: Sequence[tuple[str, str]], offsets: bool = False):
    """A batch of ``pair_text`` pairs as the model takes them (the sentence is cut, not the question)."""
    return tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation="only_second",
                     max_length=MAX_TOKENS, return_tensors="pt", return_token_type_ids=False,
                     return_offsets_mapping=offsets)


def question_inputs(tokenizer, questions: Sequence[str]):
    """Questions as e5 reads a query (``query: `` prompt, the model's text map), padded."""
    return tokenizer([model_text(QUESTION_PROMPT + q) for q in questions], padding=True, truncation=True,
                     max_length=MAX_QUESTION_TOKENS, return_tensors="pt", return_token_type_ids=False)


def mean_pool(states, mask):
    """The mean of ``states`` over the tokens ``mask`` keeps, as e5 pools (a torch batch)."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp(min=1.0)


def build_model(encoder):
    """The reader's shape around an e5 encoder (a transformers ``BertModel``): mean pooling of the
    last hidden states over the input's tokens, then one logit."""
    import torch
    from torch import nn

    class ReaderModel(nn.Module):
        def __init__(self, encoder) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(encoder.config.hidden_size, 1)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, with_states: bool = False):
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            logits = self.head(mean_pool(states, attention_mask)).squeeze(-1)
            # the token states too, for training's answer-span objective (bench/train_reader.py)
            return (logits, states) if with_states else logits

    return ReaderModel(encoder)


def check_files(folder: Path = READER_DIR, manifest: str = MANIFEST) -> dict:
    """The manifest of the shipped reader (or of its question adapter), after checking every file it
    lists against its checksum; a ``ReaderError`` that names the file otherwise."""
    manifest_path = folder / manifest
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReaderError(f"the reader's manifest {manifest_path} is missing or unreadable ({exc}); "
                          f"rebuild it with: python bench/train_reader.py") from None
    for name, digest in manifest.get("sha256", {}).items():
        path = folder / name
        if not path.is_file():
            raise ReaderError(f"the reader file {path} is missing; rebuild it with: python bench/train_reader.py")
        if sha256_file(path) != digest:
            raise ReaderError(f"the reader file {path} does not match its checksum in {manifest_path}; "
                              f"restore it (git checkout) or rebuild it with: python bench/train_reader.py")
    return manifest


class Reader:
    """The trained reader, loaded once per process; ``score`` is thread-safe (calls serialized)."""

    def __init__(self, folder: Path | str = READER_DIR, threads: int | None = None) -> None:
        t0 = time.perf_counter()
        folder = Path(folder)
        self.manifest = check_files(folder)
        question_dir = folder / QUESTION_DIR.name
        with_questions = (question_dir / QUESTION_MANIFEST).exists()
        if with_questions:
            check_files(question_dir, QUESTION_MANIFEST)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from peft import PeftModel
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(threads or cpu_count())
        base = materialize()
        bar = hf_logging.is_progress_bar_enabled()
        verbosity = hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()  # not the load report of the pooler we leave out
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                encoder = AutoModel.from_pretrained(str(base), local_files_only=True, add_pooling_layer=False)
                self.tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
                self.question_model = None
                if with_questions:
                    # its own layers, the reader's embeddings (3/4 of the weights; no adapter touches them)
                    questions = copy.deepcopy(encoder, memo={id(encoder.embeddings): encoder.embeddings})
                    self.question_model = PeftModel.from_pretrained(
                        questions, str(question_dir), is_trainable=False).merge_and_unload().eval()
                model = PeftModel.from_pretrained(build_model(encoder), str(folder), is_trainable=False)
                self.model = model.merge_and_unload().eval()
        except Exception as exc:
            raise ReaderError(f"cannot load the reader from {folder} over {base}: {exc}") from None
        finally:
            hf_logging.set_verbosity(verbosity)
            if bar:
                hf_logging.enable_progress_bar()
        self._lock = MODEL_LOCK
        self.load_seconds = time.perf_counter() - t0

    def logits(self, question: str, items: Sequence[tuple[str, ...]], batch: int = 4) -> np.ndarray:
        """One logit per ``(title, sentence, ...)`` (further values, such as the answer step's
        sentence before, are not read): above 0, more likely than not to answer ``question``
        (before calibration; thresholds are in ``rag.config``)."""
        import torch

        if not items:
            return np.zeros(0, dtype=np.float32)
        pairs = [pair_text(question, it[0], it[1]) for it in items]
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]))
        out = np.zeros(len(pairs), dtype=np.float32)
        with self._lock, torch.inference_mode():
            for a in range(0, len(order), batch):
                idx = order[a:a + batch]
                enc = encode(self.tokenizer, [pairs[i] for i in idx])
                out[idx] = self.model(enc["input_ids"], enc["attention_mask"]).float().numpy()
        return out

    def question_vectors(self, questions: Sequence[str]) -> np.ndarray | None:
        """The questions' vectors through the question adapter (normalized, mean-pooled as e5
        pools), comparable with the stored sentence vectors; None without the adapter."""
        import torch

        if self.question_model is None:
            return None
        if not questions:
            return np.zeros((0, self.question_model.config.hidden_size), dtype=np.float32)
        enc = question_inputs(self.tokenizer, questions)
        with self._lock, torch.inference_mode():
            h = self.question_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            v = mean_pool(h, enc["attention_mask"]).float().numpy()
        return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


_READER: Reader | None = None
_READER_LOCK = threading.Lock()


def load_reader() -> Reader:
    """The process's reader (loaded on first use)."""
    global _READER
    with _READER_LOCK:
        if _READER is None:
            _READER = Reader()
            log.info("reader loaded in %.1f s", _READER.load_seconds)
        return _READER
