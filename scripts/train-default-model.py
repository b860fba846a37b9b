#!/usr/bin/python3
"""Train qinfer's default model: a small llama-architecture transformer on the King James Bible.

    nice -n 5 /usr/bin/python3 scripts/train-default-model.py [--out DIR] [--minutes M] ...

Needs Debian's python3-torch and bible-kjv (+ bible-kjv-text, the compressed text, read with the
`bible` program). scripts/train-default-model.sh installs them, runs this script and exports the
result to GGUF with qinfer's own writer (scripts/export-default-model.cpp).

What it does, all deterministic for a given machine and torch build (fixed seeds):
  1. corpus: `bible -l100000 gen1:1-rev22:21` gives the whole text, one verse per line with its
     number, and a "Book N" line before each chapter. Verse numbers are dropped; the chapter
     lines are kept. The last ~2 % (cut at a chapter boundary) is held out as evaluation text.
  2. tokenizer: a SentencePiece-style BPE vocabulary trained here in pure Python:
     <unk>, <s>, </s>, the 256 byte-fallback tokens <0xXX>, the characters of the corpus, then
     the merged pieces in merge order, with score = -rank, so llama.cpp's SPM tokenizer (highest
     score first, leftmost on ties) reproduces the merges. Spaces are "▁" (U+2581) and the text
     gets a leading space (llama.cpp's add_space_prefix). "\n" is not a piece: it is byte <0x0A>.
     The training text is tokenized with the same algorithm llama.cpp uses (spm_encode below).
  3. model: llama architecture — RMSNorm (eps 1e-5), rotary embeddings with llama.cpp's rope
     type NORM for arch "llama" (adjacent pairs (2i, 2i+1) rotated by theta = pos * 10000^(-2i/d)),
     so the Q/K weights are exported as they are, with no permutation; causal attention; SwiGLU
     FFN; no biases; untied output matrix.
  4. writes DIR/model.bin (a simple intermediate format read by export-default-model.cpp),
     DIR/train.txt, DIR/eval.txt and DIR/train-log.txt.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import time
from collections import Counter, defaultdict

SPACE = "\u2581"


# ---------------------------------------------------------------------------------------------
# corpus

def read_corpus(bible_cmd="bible"):
    raw = subprocess.run([bible_cmd, "-l100000", "gen1:1-rev22:21"], check=True,
                         capture_output=True, text=True).stdout
    chapters = []  # list of (heading, [verses])
    for line in raw.split("\n"):
        if not line.strip():
            continue
        if line.startswith(" "):
            num, _, verse = line.strip().partition(" ")
            assert num.isdigit(), line
            chapters[-1][1].append(verse.strip())
        else:
            chapters.append((line.strip(), []))
    texts = [h + "\n" + "".join(v + "\n" for v in vs) for h, vs in chapters]
    total = sum(len(t) for t in texts)
    # hold out the last ~2 % of the characters, whole chapters
    held, n_eval = 0, 0
    while held < 0.02 * total:
        n_eval += 1
        held += len(texts[-n_eval])
    train = "\n".join(texts[:-n_eval])
    evalt = "\n".join(texts[-n_eval:])
    return train, evalt, texts[-n_eval].split("\n")[0] if n_eval else ""


# ---------------------------------------------------------------------------------------------
# tokenizer

def chunks_of(text):
    """Split SPM-normalized text into the pieces merges can never cross: each starts at a "▁"
    or after a "\n" (no vocabulary piece contains "\n", and "▁" only at its start)."""
    out, cur = [], []
    for ch in text:
        if ch == "\n":
            if cur:
                out.append("".join(cur))
            out.append("\n")
            cur = []
        elif ch == SPACE:
            if cur:
                out.append("".join(cur))
            cur = [ch]
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def normalize(text):
    return SPACE + text.replace(" ", SPACE)


def train_bpe(text, vocab_size):
    freq = Counter(c for c in chunks_of(normalize(text)) if c != "\n")
    chars = sorted({ch for w in freq for ch in w})
    n_merges = vocab_size - 3 - 256 - len(chars)
    words = [list(w) for w in freq]
    counts = [freq[w] for w in freq]
    pair_count = Counter()
    where = defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += counts[i]
            where[(a, b)].add(i)
    merges, seen = [], set(chars)
    while len(merges) < n_merges and pair_count:
        # most frequent pair; ties broken by the pair's text so the result is reproducible
        best = max(pair_count.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if pair_count[best] < 2:
            break
        new = best[0] + best[1]
        for i in list(where[best]):
            w, c = words[i], counts[i]
            for a, b in zip(w, w[1:]):
                pair_count[(a, b)] -= c
                if pair_count[(a, b)] <= 0:
                    del pair_count[(a, b)]
                where[(a, b)].discard(i)
            j, nw = 0, []
            while j < len(w):
                if j + 1 < len(w) and w[j] == best[0] and w[j + 1] == best[1]:
                    nw.append(new)
                    j += 2
                else:
                    nw.append(w[j])
                    j += 1
            words[i] = nw
            for a, b in zip(nw, nw[1:]):
                pair_count[(a, b)] += c
                where[(a, b)].add(i)
        if new not in seen:
            seen.add(new)
            merges.append(new)
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + chars + merges
    scores = [0.0] * (3 + 256 + len(chars)) + [-float(r) for r in range(len(merges))]
    types = [2, 3, 3] + [6] * 256 + [1] * (len(chars) + len(merges))
    return tokens, scores, types


class SPM:
    """llama.cpp's llm_tokenizer_spm: repeatedly merge the adjacent pair whose concatenation is
    a piece with the highest score (leftmost on ties); pieces not in the vocabulary become
    their UTF-8 bytes."""

    def __init__(self, tokens, scores):
        self.id = {t: i for i, t in enumerate(tokens)}
        self.score = scores
        self.cache = {}

    def encode_chunk(self, chunk):
        got = self.cache.get(chunk)
        if got is not None:
            return got
        sym = list(chunk)
        while len(sym) > 1:
            best, best_i = None, -1
            for i in range(len(sym) - 1):
                t = self.id.get(sym[i] + sym[i + 1])
                if t is not None and (best is None or self.score[t] > best):
                    best, best_i = self.score[t], i
            if best_i < 0:
                break
            sym[best_i:best_i + 2] = [sym[best_i] + sym[best_i + 1]]
        ids = []
        for s in sym:
            t = self.id.get(s)
            if t is not None:
                ids.append(t)
            else:
                ids.extend(self.id["<0x%02X>" % b] for b in s.encode("utf-8"))
        self.cache[chunk] = ids
        return ids

    def encode(self, text):
        out = []
        for c in chunks_of(normalize(text)):
            out.extend(self.encode_chunk(c))
        return out


# ---------------------------------------------------------------------------------------------
# model

def build_model(torch, cfg):
    nn, F = torch.nn, torch.nn.functional

    class RMSNorm(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight

    def rope(x, cos, sin):
        # x: (B, H, T, hd); llama.cpp rope NORM: rotate adjacent pairs (x[2i], x[2i+1])
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            d, ff = cfg["dim"], cfg["ff"]
            self.attn_norm = RMSNorm(d)
            self.wq = nn.Linear(d, d, bias=False)
            self.wk = nn.Linear(d, d, bias=False)
            self.wv = nn.Linear(d, d, bias=False)
            self.wo = nn.Linear(d, d, bias=False)
            self.ffn_norm = RMSNorm(d)
            self.w_gate = nn.Linear(d, ff, bias=False)
            self.w_up = nn.Linear(d, ff, bias=False)
            self.w_down = nn.Linear(ff, d, bias=False)

        def forward(self, x, cos, sin, mask):
            B, T, D = x.shape
            H = cfg["heads"]
            hd = D // H
            h = self.attn_norm(x)
            q = self.wq(h).view(B, T, H, hd).transpose(1, 2)
            k = self.wk(h).view(B, T, H, hd).transpose(1, 2)
            v = self.wv(h).view(B, T, H, hd).transpose(1, 2)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)) + mask
            y = F.softmax(att, dim=-1) @ v
            x = x + self.wo(y.transpose(1, 2).reshape(B, T, D))
            h = self.ffn_norm(x)
            return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg["dim"]
            self.tok = nn.Embedding(cfg["vocab"], d)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg["layers"]))
            self.norm = RMSNorm(d)
            self.out = nn.Linear(d, cfg["vocab"], bias=False)
            hd = d // cfg["heads"]
            inv = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
            ang = torch.arange(cfg["ctx"], dtype=torch.float64)[:, None] * inv[None, :]
            self.register_buffer("cos", ang.cos().float(), persistent=False)
            self.register_buffer("sin", ang.sin().float(), persistent=False)
            self.register_buffer("mask", torch.full((cfg["ctx"], cfg["ctx"]), float("-inf")).triu(1),
                                 persistent=False)
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    std = 0.02
                    if name.endswith("wo.weight") or name.endswith("w_down.weight"):
                        std = 0.02 / math.sqrt(2 * cfg["layers"])
                    nn.init.normal_(p, 0.0, std)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.tok(idx)
            cos, sin, mask = self.cos[:T], self.sin[:T], self.mask[:T, :T]
            for b in self.blocks:
                x = b(x, cos, sin, mask)
            return self.out(self.norm(x))

    return Model()


# ---------------------------------------------------------------------------------------------
# intermediate file, read by scripts/export-default-model.cpp; all little-endian:
#   "QINFDM01"
#   u32 vocab, dim, layers, heads, ff, ctx; f32 rope_base, rms_eps
#   u32 n_tokens, then per token: u32 length, UTF-8 bytes, f32 score, i32 token type
#   u32 n_strings, then per string: u32 length, key, u32 length, value   (GGUF general.* keys)
#   u32 n_tensors, then per tensor: u32 length, GGUF name, u32 n_dims, u64 dims (torch order,
#   outermost first), float32 data (row-major, so torch's [out][in] is GGUF's ne = {in, out})

def save(path, cfg, tokens, scores, types, tensors, strings):
    def u32(v):
        return struct.pack("<I", v)

    def blob(b):
        return u32(len(b)) + b

    with open(path, "wb") as f:
        f.write(b"QINFDM01")
        f.write(struct.pack("<6I2f", cfg["vocab"], cfg["dim"], cfg["layers"], cfg["heads"], cfg["ff"], cfg["ctx"],
                            cfg["rope_base"], cfg["rms_eps"]))
        f.write(u32(len(tokens)))
        for t, s, ty in zip(tokens, scores, types):
            f.write(blob(t.encode("utf-8")) + struct.pack("<fi", s, ty))
        f.write(u32(len(strings)))
        for k, v in strings.items():
            f.write(blob(k.encode("utf-8")) + blob(v.encode("utf-8")))
        f.write(u32(len(tensors)))
        for name, t in tensors:
            f.write(blob(name.encode("utf-8")) + u32(t.dim()) + struct.pack("<%dQ" % t.dim(), *t.shape))
            f.write(t.detach().contiguous().float().numpy().astype("<f4").tobytes())


def package_version(pkg):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="build/default-model")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=512)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1611)
    ap.add_argument("--bench", type=int, default=0, help="time N steps and exit")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    log_file = open(os.path.join(args.out, "train-log.txt"), "w")

    def log(msg):
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    t0 = time.time()
    train_text, eval_text, eval_from = read_corpus()
    with open(os.path.join(args.out, "train.txt"), "w") as f:
        f.write(train_text)
    with open(os.path.join(args.out, "eval.txt"), "w") as f:
        f.write(eval_text)
    log(f"corpus: {len(train_text)} chars train, {len(eval_text)} chars eval (from {eval_from!r})")

    tokens, scores, types = train_bpe(train_text, args.vocab)
    spm = SPM(tokens, scores)
    train_ids = spm.encode(train_text)
    eval_ids = spm.encode(eval_text)
    log(f"tokenizer: {len(tokens)} tokens, {len(train_ids)} train tokens, {len(eval_ids)} eval tokens "
        f"({len(train_text) / len(train_ids):.2f} chars/token), {time.time() - t0:.0f} s")

    import torch
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cfg = {"vocab": len(tokens), "dim": args.dim, "layers": args.layers, "heads": args.heads,
           "ff": args.ff, "ctx": args.ctx, "rope_base": 10000.0, "rms_eps": 1e-5}
    model = build_model(torch, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {json.dumps(cfg)}, {n_params} parameters")

    data = torch.tensor(train_ids, dtype=torch.long)
    edata = torch.tensor(eval_ids, dtype=torch.long)
    bos = 1
    gen = torch.Generator().manual_seed(args.seed)

    def batch(src, B, g):
        # windows of ctx+1 tokens from random offsets, the first replaced by BOS (as
        # llama-perplexity scores chunks)
        ix = torch.randint(0, len(src) - args.ctx - 1, (B,), generator=g)
        x = torch.stack([src[i:i + args.ctx + 1] for i in ix.tolist()])
        x[:, 0] = bos
        return x[:, :-1], x[:, 1:]

    def evaluate():
        model.eval()
        g = torch.Generator().manual_seed(7)
        losses = []
        with torch.no_grad():
            for _ in range(4):
                x, y = batch(edata, 16, g)
                logits = model(x)
                # score the second half, as llama-perplexity does
                h = args.ctx // 2
                losses.append(torch.nn.functional.cross_entropy(
                    logits[:, h:].reshape(-1, cfg["vocab"]), y[:, h:].reshape(-1)).item())
        model.train()
        return sum(losses) / len(losses)

    decay = [p for p in model.parameters() if p.dim() == 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    steps = args.bench or args.steps
    warm = min(100, steps // 10)

    def lr_at(s):
        if s < warm:
            return args.lr * (s + 1) / warm
        p = (s - warm) / max(1, steps - warm)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

    tok_per_step = args.batch * args.ctx
    t_train = time.time()
    ema = None
    for step in range(steps):
        for g_ in opt.param_groups:
            g_["lr"] = lr_at(step)
        x, y = batch(data, args.batch, gen)
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, cfg["vocab"]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if (step + 1) % 25 == 0 or step == 0 or step + 1 == steps:
            el = time.time() - t_train
            rate = (step + 1) * tok_per_step / el
            eta = el / (step + 1) * (steps - step - 1)
            msg = (f"step {step + 1}/{steps} loss {loss.item():.4f} (avg {ema:.4f}) lr {lr_at(step):.2e} "
                   f"{rate:.0f} tok/s elapsed {el / 60:.1f} min ETA {eta / 60:.1f} min "
                   f"epoch {(step + 1) * tok_per_step / len(train_ids):.2f}")
            if (step + 1) % 500 == 0 or step + 1 == steps:
                msg += f" eval {evaluate():.4f}"
            log(msg)
    train_min = (time.time() - t_train) / 60
    if args.bench:
        return
    final_eval = evaluate()
    log(f"done: {steps} steps in {train_min:.1f} min; final train loss (EMA) {ema:.4f}, eval loss {final_eval:.4f}")

    m = model
    tensors = [("token_embd.weight", m.tok.weight), ("output_norm.weight", m.norm.weight),
               ("output.weight", m.out.weight)]
    for i, b in enumerate(m.blocks):
        p = f"blk.{i}."
        tensors += [(p + "attn_norm.weight", b.attn_norm.weight), (p + "attn_q.weight", b.wq.weight),
                    (p + "attn_k.weight", b.wk.weight), (p + "attn_v.weight", b.wv.weight),
                    (p + "attn_output.weight", b.wo.weight), (p + "ffn_norm.weight", b.ffn_norm.weight),
                    (p + "ffn_gate.weight", b.w_gate.weight), (p + "ffn_up.weight", b.w_up.weight),
                    (p + "ffn_down.weight", b.w_down.weight)]
    meta = {"steps": steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
            "train_minutes": round(train_min, 1), "train_loss": round(ema, 4), "eval_loss": round(final_eval, 4),
            "train_tokens": len(train_ids), "eval_tokens": len(eval_ids), "params": n_params,
            "torch": torch.__version__, "corpus_package_version": package_version("bible-kjv-text"),
            "eval_from": eval_from}
    strings = {
        "general.name": "qinfer-kjv-3m",
        "general.description": (
            f"Small llama-architecture model trained by qinfer's scripts/train-default-model.py on the "
            f"King James Bible text of Debian's bible-kjv-text {meta['corpus_package_version']} (eval text from "
            f"{eval_from} on held out). {n_params} parameters, {steps} steps of {args.batch}x{args.ctx} tokens in "
            f"{train_min:.1f} min on 2 CPU threads; train loss {ema:.3f}, eval loss {final_eval:.3f}."),
        "general.license": "MIT",
        "general.source.url": "https://packages.debian.org/bookworm/bible-kjv-text",
        "general.organization": "qinfer",
    }
    save(os.path.join(args.out, "model.bin"), cfg, tokens, scores, types, tensors, strings)
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    log(f"wrote {os.path.join(args.out, 'model.bin')}")


if __name__ == "__main__":
    main()
