r"""``textsampling generate``: sentences from a language model by MCMC (parts 3–4) or a decoding baseline.

Samplers (``--sampler``):

``gibbs``
    MLM Gibbs (Wang & Cho 2019): all-[MASK] start with a drawn length, then random or systematic scan.
``mh``
    MLM Metropolis–Hastings (Goyal et al. 2022) with the PLL or raw-logit energy; starts from one
    Gibbs sweep over an all-[MASK] sentence.
``cgmh``
    Replace/insert/delete MH around ``--keywords`` (Miao et al. 2019), target :math:`p(x)^\gamma`.
``anneal``
    The CGMH kernel on :math:`\rho^{1/T}`, :math:`T` from 1 down to ``--final-temperature`` (geometric).
``ancestral``, ``topk``, ``topp``, ``beam``
    Left-to-right decoding baselines (``--temperature`` applies to the first three).

Every chain runs on the batched torch twins, on ``--device``; chain ``c`` at step ``t`` uses the
counter-based uniforms ``Philox(seed, c, t)``, so a step is reproducible from the state before it.
Samples are written as they are drawn to ``OUTPUT/samples.jsonl`` — one JSON line per chain per kept
step (``--keep-every``), flushed after every step — next to ``OUTPUT/run.json`` (the settings). After an
interruption, ``--resume`` reads the last step written for every chain, drops an incomplete step, and
continues: the finished file is byte for byte the one an uninterrupted run writes. At the end
``OUTPUT/metrics.json`` holds distinct-n, self-BLEU and perplexity under the causal LM of the final
sentences, also printed.

Bad input is refused before any sampling: an empty model path, a causal model where a masked one is
needed (or the reverse), keywords the tokenizer cannot represent, more keyword tokens than
``--max-length`` allows, ``--max-length`` over the model's maximum, an output folder holding another run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

__all__ = ["SAMPLERS", "add_arguments", "build_parser", "run", "main", "execute", "load_models"]

SAMPLERS = ("gibbs", "mh", "cgmh", "anneal", "ancestral", "topk", "topp", "beam")
MASKED_SAMPLERS = ("gibbs", "mh")
KEYWORD_SAMPLERS = ("cgmh", "anneal")
DECODING_SAMPLERS = ("ancestral", "topk", "topp", "beam")
#: Settings that define a run: a resumed run must use the same ones.
RUN_SETTINGS = (
    "sampler", "model", "num_chains", "num_steps", "keywords", "seed", "max_length", "min_length", "length",
    "scan", "temperature", "top_k", "top_p", "energy", "num_candidates", "gamma", "final_temperature",
    "num_beams", "keep_every",
)


# ----------------------------------------------------------------------------- command line
#: Default number of steps of the edit-move samplers (each step scores a whole candidate list).
EDIT_MOVE_NUM_STEPS = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``generate`` options to ``parser`` (used by :mod:`textsampling.cli`)."""
    parser.add_argument("--sampler", required=True, choices=SAMPLERS, help="which sampler or decoder")
    parser.add_argument("--model", default="tiny-shakespeare", help="'tiny-shakespeare' (built in), a checkpoint folder, or a hub name")
    parser.add_argument("--num-chains", type=int, default=8, help="chains (or sentences, for decoding)")
    parser.add_argument("--num-steps", type=int, default=None,
                        help="MCMC steps per chain (sweeps for --scan systematic); default 500, or "
                             f"{EDIT_MOVE_NUM_STEPS} for cgmh/anneal, whose steps each score --num-candidates sentences")
    parser.add_argument("--keywords", default="", help="comma-separated keywords for cgmh/anneal, e.g. king,crown")
    parser.add_argument("--seed", type=int, default=0, help="key of the counter-based generator")
    parser.add_argument("--output", default="generate-output", help="folder for run.json, samples.jsonl, metrics.json")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output after an interruption")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--max-length", type=int, default=16, help="longest sentence, in tokens")
    parser.add_argument("--min-length", type=int, default=4, help="shortest drawn length (gibbs, mh)")
    parser.add_argument("--length", type=int, default=None, help="fixed sentence length for gibbs/mh (default: drawn)")
    parser.add_argument("--scan", default="random", choices=("random", "systematic"), help="Gibbs site order")
    parser.add_argument("--temperature", type=float, default=1.0, help="gibbs/decoding temperature (!= 1 changes the target)")
    parser.add_argument("--top-k", type=int, default=None, help="top-k truncation (gibbs; topk decoding, default 50)")
    parser.add_argument("--top-p", type=float, default=0.9, help="nucleus mass for topp decoding")
    parser.add_argument("--energy", default="pll", choices=("pll", "raw_logit"), help="MLM-MH energy")
    parser.add_argument("--num-candidates", type=int, default=20, help="CGMH top-K candidate set size (each costs one sentence score per step)")
    parser.add_argument("--gamma", type=float, default=1.0, help="CGMH exponent of p(x)")
    parser.add_argument("--final-temperature", type=float, default=0.01, help="last temperature of anneal")
    parser.add_argument("--num-beams", type=int, default=4, help="beam width for beam decoding")
    parser.add_argument("--keep-every", type=int, default=1, help="write every k-th step (thinning)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textsampling generate", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def main(argv=None) -> int:
    """Entry point: parse ``argv`` and :func:`run`; bad input is one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, TypeError, OSError) as error:
        print(f"textsampling generate: error: {error}", file=sys.stderr)
        return 2


def run(args) -> int:
    """Load the models named by ``args`` and :func:`execute` the run."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _check_settings(args)
    masked_lm, causal_lm = load_models(args)
    return execute(args, masked_lm=masked_lm, causal_lm=causal_lm)


def load_models(args):
    """(masked LM or None, causal LM or None) for ``args.sampler``; the causal LM also scores perplexity."""
    from textsampling.lm.loading import load_causal_lm, load_masked_lm

    if args.sampler in MASKED_SAMPLERS:
        masked_lm = load_masked_lm(args.model, device=args.device)
        causal_lm = None
        if args.model == "tiny-shakespeare":  # its causal twin shares the tokenizer: perplexity
            causal_lm = load_causal_lm("tiny-shakespeare", device=args.device)
        return masked_lm, causal_lm
    return None, load_causal_lm(args.model, device=args.device)


# ----------------------------------------------------------------------------- checks before sampling
def _check_settings(args) -> None:
    if getattr(args, "num_steps", None) is None:
        args.num_steps = EDIT_MOVE_NUM_STEPS if args.sampler in ("cgmh", "anneal") else 500
    for name, minimum in (("num_chains", 1), ("num_steps", 1), ("max_length", 1), ("min_length", 1),
                          ("num_candidates", 1), ("num_beams", 1), ("keep_every", 1), ("seed", 0)):
        value = getattr(args, name)
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"--{name.replace('_', '-')} must be an integer >= {minimum}, got {value!r}")
    if args.min_length > args.max_length:
        raise ValueError(f"--min-length ({args.min_length}) must not exceed --max-length ({args.max_length})")
    if args.length is not None and not 1 <= args.length <= args.max_length:
        raise ValueError(f"--length must lie in 1..--max-length ({args.max_length}), got {args.length}")
    for name in ("temperature", "gamma", "final_temperature"):
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must lie in (0, 1], got {args.top_p}")
    keywords = _keyword_list(args)
    if keywords and args.sampler not in KEYWORD_SAMPLERS:
        raise ValueError(f"--keywords is used by {KEYWORD_SAMPLERS} only, not by --sampler {args.sampler}")
    if not keywords and args.sampler in KEYWORD_SAMPLERS:
        raise ValueError(f"--sampler {args.sampler} builds sentences around --keywords: give at least one, e.g. king,crown")


def _keyword_list(args) -> list:
    return [word.strip() for word in (args.keywords or "").split(",") if word.strip()]


def _check_model(args, masked_lm, causal_lm) -> list:
    """Model-dependent checks (lengths, keywords); returns the keyword token ids."""
    model = masked_lm if args.sampler in MASKED_SAMPLERS else causal_lm
    if model is None:
        raise ValueError(f"--sampler {args.sampler} needs a {'masked' if args.sampler in MASKED_SAMPLERS else 'causal'} LM")
    if args.max_length > model.max_length:
        raise ValueError(f"--max-length {args.max_length} is over the model's maximum of {model.max_length} tokens")
    if args.sampler in MASKED_SAMPLERS and getattr(model, "mask_token_id", None) is None:
        raise ValueError(f"--sampler {args.sampler} needs a masked LM with a [MASK] token")
    from textsampling.lm.keywords import keyword_units

    # Each keyword is one unit of word pieces (CGMH never splits it).
    keyword_ids = keyword_units(model, _keyword_list(args)) if args.sampler in KEYWORD_SAMPLERS else []
    num_tokens = sum(len(unit) for unit in keyword_ids)
    if num_tokens > args.max_length:
        raise ValueError(
            f"the keywords take {num_tokens} tokens, more than --max-length {args.max_length} allows"
        )
    return keyword_ids


# ----------------------------------------------------------------------------- output files
def _settings(args) -> dict:
    return {name: getattr(args, name) for name in RUN_SETTINGS}


def _prepare_output(args):
    """Create the folder or check it for --resume; returns (folder, lines already written)."""
    folder = Path(args.output)
    samples, settings_file = folder / "samples.jsonl", folder / "run.json"
    if args.resume:
        if not settings_file.is_file():
            raise FileNotFoundError(f"--resume: {settings_file} not found: nothing to resume in --output {folder}")
        saved = json.loads(settings_file.read_text())
        differences = {k: (saved.get(k), v) for k, v in _settings(args).items() if saved.get(k) != v}
        if differences:
            listed = ", ".join(f"{k}: {old!r} then, {new!r} now" for k, (old, new) in differences.items())
            raise ValueError(f"--resume: the settings differ from the run in {folder} ({listed})")
        return folder, _read_complete_lines(samples)
    if samples.exists() or settings_file.exists():
        raise FileExistsError(f"--output {folder} already holds a run: pass --resume to continue it, or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps(_settings(args), indent=2) + "\n")
    return folder, []


def _read_complete_lines(path: Path) -> list:
    """Records of every complete line (a last line cut by the interruption is dropped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # written half when the run stopped
        records.append(json.loads(line))
    return records


def _keep_complete_steps(path: Path, records: list, num_chains: int) -> list:
    """Keep the records of steps every chain finished; rewrite the file with exactly those lines."""
    chains_per_step: dict = {}
    for record in records:
        chains_per_step.setdefault(record["step"], set()).add(record["chain"])
    complete = {step for step, chains in chains_per_step.items() if len(chains) == num_chains}
    kept = [r for r in records if r["step"] in complete]
    temporary = path.with_suffix(".jsonl.tmp")
    temporary.write_text("".join(json.dumps(r) + "\n" for r in kept))
    temporary.replace(path)  # the incomplete step is regenerated, identically, by the resumed run
    return kept


# ----------------------------------------------------------------------------- the run
def execute(args, masked_lm=None, causal_lm=None, interrupt_after_step=None) -> int:
    """Run the sampler of ``args`` with the given models (the Python API behind the command).

    ``interrupt_after_step`` (tests) raises ``KeyboardInterrupt`` once that step is written.
    """
    import torch

    _check_settings(args)
    keyword_ids = _check_model(args, masked_lm, causal_lm)
    folder, records = _prepare_output(args)
    samples_path = folder / "samples.jsonl"
    num_chains = 1 if args.sampler == "beam" else args.num_chains
    records = _keep_complete_steps(samples_path, records, num_chains) if records else records
    device = torch.device(args.device)
    model = masked_lm if args.sampler in MASKED_SAMPLERS else causal_lm
    try:
        with samples_path.open("a") as output:
            if args.sampler in DECODING_SAMPLERS:
                _run_decoding(args, model, records, output, num_chains, device)
            else:
                _run_chains(args, model, keyword_ids, records, output, device, interrupt_after_step)
    except KeyboardInterrupt:
        print(f"\ninterrupted; samples so far are in {samples_path}. Continue with --resume.", file=sys.stderr)
        return 130
    _report(args, folder, model, causal_lm)
    return 0


def _write_step(output, step, states, model, extra, keywords=()) -> None:
    """One line per chain for ``step``, then flush (a step is on disk before the next starts).

    With ``keywords``, every decoded sentence must hold each of them as a whole word: one that does not
    is a sampler bug, and stops the run before it is written.
    """
    from textsampling.lm.keywords import missing_keywords

    tokens = states.detach().cpu().numpy()
    for chain in range(tokens.shape[0]):
        row = [int(t) for t in tokens[chain] if t != -1]
        record = {"chain": chain, "step": step, "tokens": row, "text": _text(model, row)}
        missing = missing_keywords(record["text"], keywords)
        if missing:
            raise RuntimeError(
                f"bug: chain {chain} at step {step} holds the sentence {record['text']!r}, without the keyword(s) "
                f"{missing} (please report it)"
            )
        for name, values in extra.items():
            value = values[chain]
            record[name] = value.tolist() if hasattr(value, "tolist") else value
        output.write(json.dumps(record) + "\n")
    output.flush()


def _text(model, row) -> str:
    if hasattr(model, "decode"):
        return model.decode(np.array(row, dtype=np.int64)) if row else ""
    return " ".join(str(t) for t in row)


def _progress(args, initial: int, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=args.no_progress, desc=f"generate --sampler {args.sampler}", unit="step")


def _run_chains(args, model, keyword_ids, records, output, device, interrupt_after_step) -> None:
    import torch

    from textsampling.reference import cgmh as cgmh_reference
    from textsampling.reference import mlm_gibbs as gibbs_reference
    from textsampling.reference.annealing import geometric_schedule
    from textsampling.torch import cgmh, mlm_gibbs, sentence_annealing
    from textsampling.torch import mlm_metropolis_hastings as mlm_mh
    from textsampling.torch.randomness import counter_uniforms

    num_chains, width = args.num_chains, args.max_length
    chains = torch.arange(num_chains, device=device)

    def uniforms(step, count):
        return counter_uniforms(args.seed, chains, step, count, dtype=torch.float64, device=device)  # (B, count)

    last = {}
    for record in records:
        last[record["chain"]] = record  # records are in step order
    first_step = (max(r["step"] for r in records) + 1) if records else 0

    def restored_tokens():
        x = torch.full((num_chains, width), -1, dtype=torch.int64, device=device)
        for chain, record in last.items():
            x[chain, : len(record["tokens"])] = torch.tensor(record["tokens"], dtype=torch.int64)
        return x

    # --- initial state (or the state after the last step on disk)
    if args.sampler in ("gibbs", "mh"):
        length_log_probs = torch.full((width,), -torch.inf, dtype=torch.float64, device=device)
        if args.length is not None:
            length_log_probs[args.length - 1] = 0.0
        else:
            length_log_probs[args.min_length - 1 :] = 0.0
        if records:
            x = restored_tokens()
        else:
            init_uniforms = uniforms(gibbs_reference.INIT_STEP, 1 + width)
            x = mlm_gibbs.init_all_mask(init_uniforms[:, :1], model, width, length_log_probs).x
            if args.sampler == "mh":  # a sentence to start from: one Gibbs sweep over the [MASK]s
                x = mlm_gibbs.step(init_uniforms[:, 1:], mlm_gibbs.MLMGibbsState(x), model, "systematic")[0].x
        if args.sampler == "gibbs":
            state = mlm_gibbs.MLMGibbsState(x)
        else:
            state = mlm_mh.init(x, model, args.energy)
            if records:  # the energies on disk, in the model's dtype: bit for bit those of the first run
                saved = torch.tensor([last[c]["energy"] for c in range(num_chains)], dtype=torch.float64, device=device)
                state = mlm_mh.MLMMHState(x, saved.to(state.energy.dtype))
    else:
        from textsampling.lm.keywords import continuation_token_ids

        config = cgmh_reference.make_config(
            model, keyword_ids, num_candidates=args.num_candidates, max_length=width, gamma=args.gamma,
            continuation_tokens=continuation_token_ids(model),
        )
        if records:
            x = restored_tokens()
            state = cgmh.init(x, config)
            # log rho on disk, in the model's dtype: bit for bit what the first run held (not a rescoring)
            saved = torch.tensor([last[c]["log_prob"] for c in range(num_chains)], dtype=torch.float64, device=device)
            state = cgmh.CGMHState(x, state.protected, saved.to(state.log_prob.dtype))
        else:
            start = [t for unit in keyword_ids for t in unit]  # the keywords, in the order given
            x = torch.full((num_chains, width), -1, dtype=torch.int64, device=device)
            x[:, : len(start)] = torch.tensor(start, dtype=torch.int64, device=device)
            state = cgmh.init(x, config)
        temperatures = geometric_schedule(1.0, args.final_temperature, args.num_steps) if args.sampler == "anneal" else None

    # --- the chains
    flag_changes_target = gibbs_reference.changes_target(args.temperature, args.top_k)
    with _progress(args, first_step, args.num_steps) as bar:
        for step in range(first_step, args.num_steps):
            if args.sampler == "gibbs":
                count = gibbs_reference.num_uniforms(args.scan, width)
                state, _ = mlm_gibbs.step(uniforms(step, count), state, model, args.scan, args.temperature, args.top_k)
                extra = {"changes_target": [flag_changes_target] * num_chains}
            elif args.sampler == "mh":
                state, info = mlm_mh.step(uniforms(step, mlm_mh.NUM_UNIFORMS), state, model, args.energy)
                extra = {"energy": state.energy.double().cpu().numpy(), "accepted": info.accepted.cpu().numpy()}
            else:
                step_uniforms = uniforms(step, cgmh.NUM_UNIFORMS)
                if args.sampler == "anneal":
                    state, info = sentence_annealing.step(step_uniforms, state, config, float(temperatures[step]))
                else:
                    state, info = cgmh.step(step_uniforms, state, config)
                extra = {"protected": state.protected.cpu().numpy(), "log_prob": state.log_prob.double().cpu().numpy(),
                         "accepted": info.accepted.cpu().numpy()}
                if temperatures is not None:
                    extra["temperature"] = [float(temperatures[step])] * num_chains
            if (step + 1) % args.keep_every == 0 or step == args.num_steps - 1:
                _write_step(output, step, state.x, model, extra, _keyword_list(args) if args.sampler in KEYWORD_SAMPLERS else ())
            bar.update(1)
            if interrupt_after_step is not None and step == interrupt_after_step:
                raise KeyboardInterrupt


def _run_decoding(args, model, records, output, num_chains, device) -> None:
    import torch

    from textsampling.torch import decoding
    from textsampling.torch.randomness import counter_uniforms

    done = {r["chain"] for r in records}
    if args.sampler == "beam":
        if not done:
            result = decoding.beam_search(model, args.num_beams, args.max_length)
            _write_step(output, 0, torch.as_tensor(result.tokens)[None], model,
                        {"score": [result.score], "ended": [result.ended]})
        return
    top_k = (args.top_k or 50) if args.sampler == "topk" else None
    top_p = args.top_p if args.sampler == "topp" else None
    batch = 64  # sentences written batch by batch, so a resumed run skips the finished ones
    with _progress(args, len(done), num_chains) as bar:
        for start in range(0, num_chains, batch):
            chains = [c for c in range(start, min(start + batch, num_chains)) if c not in done]
            if not chains:
                continue
            index = torch.tensor(chains, device=device)
            uniforms = counter_uniforms(args.seed, index, 0, args.max_length, dtype=torch.float64, device=device)
            result = decoding.decode(uniforms, model, args.temperature, top_k, top_p)
            tokens = result.tokens.cpu().numpy()
            for row, chain in enumerate(chains):
                content = [int(t) for t in tokens[row] if t != -1]
                record = {"chain": chain, "step": 0, "tokens": content, "text": _text(model, content),
                          "ended": bool(result.ended[row])}
                output.write(json.dumps(record) + "\n")
            output.flush()
            bar.update(len(chains))


# ----------------------------------------------------------------------------- metrics
def _report(args, folder: Path, model, causal_lm) -> dict:
    """Metrics of each chain's final sentence (``anneal``: its best): distinct-1/2, self-BLEU, perplexity."""
    from textsampling import metrics

    records = _read_complete_lines(folder / "samples.jsonl")
    final = {}
    for record in records:
        if args.sampler == "anneal":  # a search: report each chain's best sentence, not its last
            best = final.get(record["chain"])
            if best is not None and best["log_prob"] >= record["log_prob"]:
                continue
        final[record["chain"]] = record
    texts = [final[c]["text"] for c in sorted(final)]
    token_rows = [final[c]["tokens"] for c in sorted(final)]
    nonempty = [text for text in texts if text.strip()]
    report = {
        "sampler": args.sampler,
        "num_sentences": len(texts),
        "distinct_1": metrics.distinct_n(nonempty, 1),
        "distinct_2": metrics.distinct_n(nonempty, 2),
        "self_bleu": metrics.self_bleu(nonempty) if len(nonempty) > 1 else None,
        "perplexity": None,
    }
    # Perplexity of complete sentences only: none empty, no [MASK] left by a random scan.
    special = set(getattr(causal_lm, "special_token_ids", ()))
    scorable = token_rows and all(row and not special.intersection(row) for row in token_rows)
    if causal_lm is not None and scorable:
        width = max(len(row) for row in token_rows)
        ids = np.full((len(token_rows), width), -1, dtype=np.int64)
        for i, row in enumerate(token_rows):
            ids[i, : len(row)] = row
        report["perplexity"] = metrics.perplexity(causal_lm, ids)
    (folder / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n".join(f"[{c}] {text}" for c, text in enumerate(texts)))
    print("metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in report.items()))
    return report


if __name__ == "__main__":
    sys.exit(main())
