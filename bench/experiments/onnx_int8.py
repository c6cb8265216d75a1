"""Would ONNX Runtime's int8 beat torch's as the opt-in int8 mode? (It did not; see embed.md.)

    pip install onnxruntime onnx      # not project dependencies: only this experiment needs them
    python bench/experiments/onnx_int8.py [--n 300] [--threads 1] [--work DIR] [--eval ../shared/eval/xquad_dev]

Builds, from the materialized e5-small directory (``rag.embedders.convert.materialize``), an ONNX graph
(torch.onnx, eager attention so that ORT's BERT optimizer fuses Attention, LayerNorm and GELU)
and its dynamic int8 version (per-channel weights, MatMul and Attention quantized, the FFN output
projection kept fp32 as in ``rag.embedders.torch_e5.quantize_int8``). Then, on the same passages as
bench/embed.py and in one process: tokens/s and cosine to torch fp32 of torch fp32, torch int8,
ORT fp32 and ORT int8. ``--eval DIR`` also runs ``rag eval DIR --retrieval-only`` with ORT int8
vectors (a temporary embedder name, its own cached index) to compare with the committed numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def build_onnx(work: Path) -> tuple[Path, Path]:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from transformers import AutoModel

    from rag.embedders.convert import materialize

    work.mkdir(parents=True, exist_ok=True)
    raw, fp32, int8 = work / "e5-small.onnx", work / "e5-small-opt.onnx", work / "e5-small-int8.onnx"
    if int8.exists():
        return fp32, int8
    model = AutoModel.from_pretrained(str(materialize()), attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask):
            return self.m(input_ids=ids, attention_mask=mask).last_hidden_state

    ids = torch.ones(2, 16, dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(Hidden(model), (ids, ids.clone()), str(raw), input_names=["ids", "mask"],
                      output_names=["hidden"], dynamic_axes={"ids": axes, "mask": axes, "hidden": axes},
                      opset_version=17, dynamo=False)
    opt = optimizer.optimize_model(str(raw), model_type="bert", num_heads=12, hidden_size=384, opt_level=1)
    print("fused:", {k: v for k, v in opt.get_fused_operator_statistics().items() if v})
    opt.save_model_to_file(str(fp32))
    graph = onnx.load(str(fp32), load_external_data=False).graph
    ffn_out = [n.name for n in graph.node if re.search(r"layer\.\d+/output/dense/MatMul$", n.name)]
    quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8,
                     nodes_to_exclude=ffn_out, op_types_to_quantize=["MatMul", "Attention"],
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return fp32, int8


class OrtE5:
    """rag.embedders.torch_e5.TorchE5Embedder's tokens, windows and batches, with ONNX Runtime for the forward."""

    def __init__(self, model_file: Path, threads: int, name: str = "e5-small-ort-int8") -> None:
        import onnxruntime as ort

        from rag.embedders.torch_e5 import TorchE5Embedder

        self._fe = TorchE5Embedder(threads=threads)  # tokenizer and batching settings
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self._sess = ort.InferenceSession(str(model_file), so, providers=["CPUExecutionProvider"])
        self.name, self.dim = name, self._fe.dim
        self.count_tokens = self._fe.count_tokens

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hidden = self._sess.run(None, {"ids": ids, "mask": mask})[0]
        return pool(hidden, mask)

    def embed_passages(self, texts):
        from rag.embedders.convert import PASSAGE_PROMPT
        return self._fe._encode(texts, PASSAGE_PROMPT, self.forward)

    def embed_queries(self, texts):
        from rag.embedders.convert import QUERY_PROMPT
        return self._fe._encode(texts, QUERY_PROMPT, self.forward)


def pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    v = (hidden * m).sum(1) / m.sum(1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="passages (bench/embed.py's builder)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/rag-onnx-int8"), help="where the .onnx files go")
    ap.add_argument("--eval", type=Path, help="an eval set: retrieval with ORT int8 vectors")
    args = ap.parse_args()

    import torch

    from embed import build_passages
    from rag.embedders.convert import PASSAGE_PROMPT
    from rag.embedders.torch_e5 import TorchE5Embedder, quantize_int8

    torch.set_num_threads(args.threads)
    fp32_file, int8_file = build_onnx(args.work)
    passages = build_passages(args.n)
    fe = TorchE5Embedder(threads=args.threads)
    tokens = sum(len(s) + 2 for s in fe.token_ids(passages))

    def timed(forward):
        fe._encode(passages[:16], PASSAGE_PROMPT, forward)  # warm-up
        t = time.perf_counter()
        v = fe._encode(passages, PASSAGE_PROMPT, forward)
        return tokens / (time.perf_counter() - t), v

    rows = []
    tps, ref = timed(fe._forward)
    rows.append(("torch fp32", tps, ref))
    for label, f in (("ORT fp32 (fused)", fp32_file), ("ORT int8", int8_file)):
        rows.append((label, *timed(OrtE5(f, args.threads).forward)))
    quantize_int8(fe._st[0].auto_model)
    rows.append(("torch int8 (rag.embedders.torch_e5.quantize_int8)", *timed(fe._forward)))
    print(f"{len(passages)} passages, {tokens:,} tokens, {args.threads} thread(s)\n")
    print("| engine | tokens/s | × torch fp32 | cosine to torch fp32 median / min |\n|---|---|---|---|")
    for label, tps, v in rows:
        cos = (v * ref).sum(1)
        print(f"| {label} | {tps:,.0f} | {tps / rows[0][1]:.2f} | {np.median(cos):.5f} / {cos.min():.5f} |")

    if args.eval:
        import rag.embedders as E
        from rag.eval import evaluate

        emb = OrtE5(int8_file, args.threads)
        E.BUNDLED = (*E.BUNDLED, emb.name)  # an index of its own, searchable like the bundled ones
        E.register(emb.name, lambda device: emb)
        r = evaluate(args.eval, model=emb.name, with_answers=False)
        print(json.dumps({lang: {k: r["by_lang"][lang][k] for k in ("R@1", "R@5", "R@10", "MRR@10")}
                          for lang in r["by_lang"]}))


if __name__ == "__main__":
    main()
