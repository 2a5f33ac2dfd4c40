"""Benchmark: the LM samplers' speed on our own code path, with model FLOP utilisation (issue 5, deliverable 6).

Prints ONE table and, with ``$OUT`` set, writes ``$OUT/bench_lm.json``. A row that runs out of GPU
memory says so in its place; a row that fails otherwise does too (its traceback on stderr) and, once every
other row has been measured and written, the script exits with status 1. Rows:

* ``MLM Gibbs / ours`` — chain-steps/s of random-scan MLM Gibbs as the package runs it:
  :func:`textsampling.torch.mlm_gibbs.step` over :class:`textsampling.lm.hf_masked.HFMaskedLM` (encoder on
  the whole batch, LM head only at each chain's masked position, float32 log-softmax), fed float64
  per-chain counter uniforms (:class:`textsampling.torch.randomness.CounterGenerator`, as
  ``textsampling generate`` does); uniforms, input checks and sampling are all inside the timing.
* ``causal scoring / ours`` — sentences/s of :meth:`textsampling.lm.hf_causal.HFCausalLM.sequence_log_probs_torch`
  (``log p(x, END)`` of each candidate; head in chunks, no float32 log-softmax over the whole batch).
* ``... / minimal`` — for comparison on the same machine, models and token counts, the minimal loops of
  ``shared/bench/baseline_gpu.py`` (batched Gibbs with the head only where masked, ``torch.multinomial``;
  scoring by a full float32 ``log_softmax`` + gather). Skip them with ``--no-minimal``.

Models are random-init (timing needs no trained weights): a bert-base-sized ``BertForMaskedLM`` (vocab
30,522) and a gpt2-small-sized ``GPT2LMHeadModel`` (vocab 50,257), sentences of ``--length`` 40 content
tokens, bf16 on CUDA and float32 on the CPU. ``--small`` (the default on the CPU) uses hidden 64, 2
layers, vocab 3,000. The tokenizer is a word-level one built in memory with exactly the model's
vocabulary (5 special tokens), as tests/test_lm_hf.py builds its adapters: the built-in tiny-shakespeare
tokenizer has only 3,000 ids, so a bert-base-sized head over it would either shrink the head 10x or mark
27,000 padded ids as never-sampled specials, neither of which a real checkpoint does.

Model FLOPs (matmul weights; attention scores, ~1% at this length, are left out)::

    MLM Gibbs, per chain-step:  2 * encoder_params * (L + 2) + 2 * head_params     ([CLS] x [SEP]; head at 1 position)
    causal scoring, per sentence: 2 * (block_params + head_params) * (L + 1)        ([BOS] x; head at every position)

MFU = achieved FLOP/s / peak; the peak is the dense bf16 tensor-core figure of the GPU, recognised from
``torch.cuda.get_device_name()`` (H100/H200 SXM: 989 TFLOP/s; override with ``--peak-tflops``); "-" on
the CPU. The issue's targets (on an H100/H200): MLM Gibbs >= 60,000 chain-steps/s, causal scoring >=
30,000 sentences/s. Run::

    .venv/bin/python benchmarks/bench_lm.py                 # CPU: --small, tiny batches (~10 s)
    .venv/bin/python benchmarks/bench_lm.py --device cuda   # GPU: full sizes, batches 64, 512, 2048
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch
import transformers  # noqa: F401 (imported here so that the machine description names its version)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.machine import machine_description  # noqa: E402
from textsampling.lm.hf_causal import HFCausalLM  # noqa: E402
from textsampling.lm.hf_masked import HFMaskedLM  # noqa: E402
from textsampling.lm.loading import bert_style_tokenizer  # noqa: E402
from textsampling.torch import mlm_gibbs  # noqa: E402
from textsampling.torch.randomness import CounterGenerator  # noqa: E402

SEED = 2021
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TARGETS = {"mlm_gibbs": 60_000.0, "causal_scoring": 30_000.0}  # issue 5, deliverable 6, on an H100/H200
UNITS = {"mlm_gibbs": "chain-steps/s", "causal_scoring": "sentences/s"}
#: dense bf16 tensor-core peaks, FLOP/s, by a substring of torch.cuda.get_device_name() (first match wins)
BF16_PEAKS = [
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("GH200", 989e12),
    ("A100", 312e12),
]




def peak_flops(device: torch.device, dtype: torch.dtype, override_tflops=None):
    """Peak FLOP/s for MFU, or None where unknown (the CPU, a dtype other than bf16, an unlisted GPU)."""
    if override_tflops is not None:
        return float(override_tflops) * 1e12
    if device.type != "cuda" or dtype != torch.bfloat16:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAKS if key in name), None)


def make_tokenizer(vocab_size: int, max_length: int):
    """A word-level tokenizer with exactly ``vocab_size`` ids: the 5 BERT specials, then ``w5`` .. (offline)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(SPECIALS)}
    vocab.update({f"w{i}": i for i in range(len(SPECIALS), vocab_size)})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return bert_style_tokenizer(tokenizer, max_length)


def build_masked(small: bool, device, dtype):
    from transformers import BertConfig, BertForMaskedLM

    if small:
        config = BertConfig(
            vocab_size=3000,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=64,
            pad_token_id=0,
        )
    else:
        config = BertConfig()  # bert-base: 12 x 768, vocab 30,522, 512 positions
    torch.manual_seed(0)  # weights only
    with torch.device(device):
        model = BertForMaskedLM(config)
    model = model.to(dtype).eval()
    lm = HFMaskedLM(model, make_tokenizer(config.vocab_size, config.max_position_embeddings))
    encoder = sum(p.numel() for p in model.bert.encoder.parameters())
    head = sum(p.numel() for p in model.cls.parameters())  # transform + decoder (tied embedding counted once)
    return lm, {"encoder_params": encoder, "head_params": head, "config": "small" if small else "bert-base"}


def build_causal(small: bool, device, dtype):
    from transformers import GPT2Config, GPT2LMHeadModel

    ends = {"bos_token_id": SPECIALS.index("[CLS]"), "eos_token_id": SPECIALS.index("[SEP]")}  # our tokenizer's
    if small:
        config = GPT2Config(vocab_size=3000, n_embd=64, n_layer=2, n_head=2, n_positions=64, **ends)
    else:
        config = GPT2Config(**ends)  # gpt2-small: 12 x 768, vocab 50,257, 1,024 positions
    torch.manual_seed(1)
    with torch.device(device):
        model = GPT2LMHeadModel(config)
    model = model.to(dtype).eval()
    lm = HFCausalLM(model, make_tokenizer(config.vocab_size, config.n_positions))
    blocks = sum(p.numel() for p in model.transformer.h.parameters())
    head = model.lm_head.weight.numel()
    return lm, {"block_params": blocks, "head_params": head, "config": "small" if small else "gpt2-small"}


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, fn, num_calls: int, warmup: int = 2) -> float:
    """Seconds per call of ``fn(call_index)`` over ``num_calls`` calls, after ``warmup`` untimed ones."""
    for index in range(warmup):
        fn(index)
    synchronize(device)
    start = time.perf_counter()
    for index in range(warmup, warmup + num_calls):
        fn(index)
    synchronize(device)
    return (time.perf_counter() - start) / num_calls


def random_content(lm, batch: int, length: int, device) -> torch.Tensor:
    """``(batch, length)`` ids drawn among the non-special ones (ids 5 ..)."""
    generator = torch.Generator(device="cpu").manual_seed(SEED)
    x = torch.randint(len(SPECIALS), len(lm.tokenizer), (batch, length), generator=generator)
    return x.to(device)


def mlm_gibbs_ours(lm, batch, length, device, num_steps):
    """Seconds per random-scan step of the package's MLM Gibbs twin for ``batch`` chains."""
    generator = CounterGenerator(SEED, torch.arange(batch, device=device))
    state = [mlm_gibbs.MLMGibbsState(random_content(lm, batch, length, device))]

    def one_step(step):
        uniforms = generator.uniforms(step, 2, dtype=torch.float64)  # (B, 2): position, token
        state[0], _ = mlm_gibbs.step(uniforms, state[0], lm, scan="random")

    seconds = timed(device, one_step, num_steps)
    x = state[0].x
    if bool((x < len(SPECIALS)).any()):  # every sampled token must be a non-special id
        raise AssertionError("MLM Gibbs sampled a special token")
    return seconds


def mlm_gibbs_minimal(lm, batch, length, device, num_steps):
    """The minimal batched loop of baseline_gpu.py, with [CLS] x [SEP] as ours sees (same FLOPs)."""
    model = lm.model
    x = torch.cat(
        [
            torch.full((batch, 1), lm.cls_token_id, device=device),
            random_content(lm, batch, length, device),
            torch.full((batch, 1), lm.sep_token_id, device=device),
        ],
        dim=1,
    )
    generator = torch.Generator(device=device).manual_seed(SEED)
    rows = torch.arange(batch, device=device)

    @torch.no_grad()
    def one_step(_):
        i = torch.randint(1, length + 1, (batch,), generator=generator, device=device)
        y = x.clone()
        y[rows, i] = lm.mask_token_id
        h = model.bert(input_ids=y).last_hidden_state[rows, i]  # (B, H)
        logits = model.cls(h).float()  # head only where masked
        x[rows, i] = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]

    return timed(device, one_step, num_steps)


def causal_scoring_ours(lm, batch, length, device, num_calls):
    x = random_content(lm, batch, length, device)
    out = []

    def one_call(_):
        out[:] = [lm.sequence_log_probs_torch(x)]

    seconds = timed(device, one_call, num_calls, warmup=1)
    if not bool(torch.isfinite(out[0]).all()):
        raise AssertionError("a sentence log-probability is not finite")
    return seconds


def causal_scoring_minimal(lm, batch, length, device, num_calls):
    """baseline_gpu.py's loop: full logits, float32 log_softmax over (B, L, V), gather; [BOS] x as ours."""
    model = lm.model
    bos = torch.full((batch, 1), lm.bos_token_id, device=device)
    x = torch.cat([bos, random_content(lm, batch, length, device)], 1)

    @torch.no_grad()
    def one_call(_):
        log_probs = torch.log_softmax(model(input_ids=x).logits[:, :-1].float(), -1)
        return log_probs.gather(-1, x[:, 1:, None]).sum((1, 2))

    return timed(device, one_call, num_calls, warmup=1)


def measure(rows, workload, implementation, fn, lm, batch, length, device, num_calls, flops_per_item, peak):
    row = {
        "workload": workload,
        "implementation": implementation,
        "batch_size": batch,
        "unit": UNITS[workload],
        "flops_per_item": flops_per_item,
        "peak_flops": peak,
    }
    try:
        seconds = fn(lm, batch, length, device, num_calls)
    except torch.cuda.OutOfMemoryError as error:  # keep the other rows of a one-shot GPU run
        row.update(error=f"out of memory: {str(error).splitlines()[0]}")
        torch.cuda.empty_cache()
    except Exception as error:  # reported in its row, not hidden; the other rows still run
        row.update(error=f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:300]}", failed=True)
        print(f"# {workload}, {implementation}, batch {batch}: {row['error']}", file=sys.stderr)
        traceback.print_exc()
    else:
        rate = batch / seconds
        row.update(
            seconds_per_call=seconds,
            rate=rate,
            flops_per_second=rate * flops_per_item,
            mfu=rate * flops_per_item / peak if peak else None,
            compute_limit=peak / flops_per_item if peak else None,
        )
    rows.append(row)
    print_row(row)
    return row


HEADER = (
    f"{'workload':<15} {'impl':<8} {'batch':>6} {'rate':>12} {'unit':<14} {'ms/call':>9} {'TFLOP/s':>8} "
    f"{'MFU':>6} {'limit@peak':>11} {'target':>8}"
)


def print_row(row):
    if "error" in row:
        print(f"{row['workload']:<15} {row['implementation']:<8} {row['batch_size']:>6}  {row['error']}", flush=True)
        return
    mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "-"
    limit = f"{row['compute_limit']:,.0f}" if row["compute_limit"] is not None else "-"
    target = f"{TARGETS[row['workload']]:,.0f}" if row["implementation"] == "ours" else ""
    print(
        f"{row['workload']:<15} {row['implementation']:<8} {row['batch_size']:>6} {row['rate']:>12,.0f} "
        f"{row['unit']:<14} {1e3 * row['seconds_per_call']:>9.2f} {row['flops_per_second'] / 1e12:>8.3f} "
        f"{mfu:>6} {limit:>11} {target:>8}",
        flush=True,
    )


def parse_sizes(text: str):
    return [int(float(s)) for s in text.split(",") if s.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--small", action="store_true", default=None, help="tiny models: hidden 64, 2 layers (CPU default)"
    )
    size.add_argument("--full", dest="small", action="store_false", help="bert-base / gpt2-small sizes (GPU default)")
    parser.add_argument(
        "--batch-sizes", default=None, help="MLM Gibbs chains, comma-separated (GPU: 64,512,2048; CPU: 4,16)"
    )
    parser.add_argument("--score-batch-sizes", default=None, help="sentences scored per call (GPU: 2048; CPU: 16)")
    parser.add_argument(
        "--num-steps", type=int, default=None, help="timed Gibbs steps / scoring calls per cell (GPU: 30; CPU: 5)"
    )
    parser.add_argument("--length", type=int, default=40, help="content tokens per sentence")
    parser.add_argument(
        "--dtype", default=None, choices=["bfloat16", "float16", "float32"],
        help="default: bfloat16 on GPU, float32 on CPU",
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak for MFU when the GPU is not recognised")
    parser.add_argument("--no-minimal", action="store_true", help="skip the minimal-loop comparison rows")
    parser.add_argument("--workloads", default="mlm_gibbs,causal_scoring")
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_gpu = device.type == "cuda"
    small = (not on_gpu) if args.small is None else args.small
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if on_gpu else torch.float32)
    batch_sizes = parse_sizes(args.batch_sizes or ("64,512,2048" if on_gpu else "4,16"))
    score_batch_sizes = parse_sizes(args.score_batch_sizes or ("2048" if on_gpu else "16"))
    num_steps = args.num_steps or (30 if on_gpu else 5)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    length = args.length
    peak = peak_flops(device, dtype, args.peak_tflops)

    machine = machine_description(device)
    where = f"GPU {machine['gpu']}" if on_gpu else f"CPU {machine['cpu']}"
    where += f" ({machine['cpu_count']} CPU cores, {machine['torch_threads']} torch threads)"
    print(f"machine: {where} | torch {machine['torch']} | transformers {machine['transformers']}")
    peak_text = (
        f"{peak / 1e12:,.0f} TFLOP/s ({str(dtype).split('.')[-1]} dense)" if peak else "unknown (MFU shown as -)"
    )
    sized = "small (hidden 64, 2 layers)" if small else "bert-base / gpt2-small sized"
    print(f"dtype: {str(dtype).split('.')[-1]} | models: {sized}, random init | length {length} | peak: {peak_text}")

    rows, models = [], {}
    lines = []
    if "mlm_gibbs" in workloads:
        lm, sizes = build_masked(small, device, dtype)
        flops = 2 * sizes["encoder_params"] * (length + 2) + 2 * sizes["head_params"]
        models["mlm"] = dict(sizes, vocab_size=lm.vocab_size, tokens_per_call=length + 2, flops_per_chain_step=flops)
        lines.append(
            f"MLM: encoder {sizes['encoder_params'] / 1e6:.1f}M + head {sizes['head_params'] / 1e6:.1f}M params, "
            f"vocab {lm.vocab_size:,}, "
            f"{length + 2} tokens/chain-step: {flops / 1e9:.3f} GFLOP per chain-step"
        )
    if "causal_scoring" in workloads:
        clm, csizes = build_causal(small, device, dtype)
        cflops = 2 * (csizes["block_params"] + csizes["head_params"]) * (length + 1)
        models["causal"] = dict(
            csizes, vocab_size=clm.vocab_size, tokens_per_sentence=length + 1, flops_per_sentence=cflops
        )
        lines.append(
            f"causal: blocks {csizes['block_params'] / 1e6:.1f}M + head {csizes['head_params'] / 1e6:.1f}M params, "
            f"vocab {clm.vocab_size:,}, "
            f"{length + 1} tokens/sentence: {cflops / 1e9:.3f} GFLOP per sentence"
        )
    for line in lines:
        print(line)
    print(HEADER)
    print("-" * len(HEADER))
    if "mlm_gibbs" in workloads:
        for batch in batch_sizes:
            measure(rows, "mlm_gibbs", "ours", mlm_gibbs_ours, lm, batch, length, device, num_steps, flops, peak)
            if not args.no_minimal:
                measure(rows, "mlm_gibbs", "minimal", mlm_gibbs_minimal, lm, batch, length, device, num_steps, flops,
                        peak)
        del lm
    if "causal_scoring" in workloads:
        if on_gpu:
            torch.cuda.empty_cache()
        for batch in score_batch_sizes:
            common = (clm, batch, length, device, num_steps, cflops, peak)
            measure(rows, "causal_scoring", "ours", causal_scoring_ours, *common)
            if not args.no_minimal:
                measure(rows, "causal_scoring", "minimal", causal_scoring_minimal, *common)
        del clm

    targets = {}
    print()
    print("targets (issue 5, on an H100/H200 with bert-base / gpt2-small sizes, bf16):")
    for workload, target in TARGETS.items():
        ours = [r for r in rows if r["workload"] == workload and r["implementation"] == "ours" and "rate" in r]
        if not ours:
            continue
        best = max(ours, key=lambda r: r["rate"])
        hopper = any(k in (machine["gpu"] or "") for k in ("H100", "H200"))
        comparable = on_gpu and not small and dtype == torch.bfloat16 and length == 40 and hopper
        verdict = ("met" if best["rate"] >= target else "NOT met") if comparable else "n/a on this machine/config"
        targets[workload] = {
            "target": target, "best": best["rate"], "batch_size": best["batch_size"], "verdict": verdict
        }
        print(
            f"  {workload:<15} >= {target:>9,.0f} {UNITS[workload]:<14} best ours {best['rate']:>12,.0f} "
            f"(batch {best['batch_size']}): {verdict}"
        )

    result = {
        "machine": machine,
        "config": {
            "device": str(device),
            "dtype": str(dtype).split(".")[-1],
            "small": small,
            "length": length,
            "num_steps": num_steps,
            "peak_flops": peak,
            "models": models,
        },
        "results": rows,
        "targets": targets,
    }
    out_dir = os.environ.get("OUT")
    if out_dir:
        path = Path(out_dir) / "bench_lm.json"
        path.write_text(json.dumps(result, indent=1))
        print(f"wrote {path}")
    return result


if __name__ == "__main__":
    # A row that failed (not out of memory) fails the run, after every other row was measured and written.
    sys.exit(1 if any(row.get("failed") for row in main()["results"]) else 0)
