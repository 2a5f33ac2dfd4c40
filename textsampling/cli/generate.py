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
``pt``
    Parallel tempering over sentences: ``--num-replicas`` CGMH chains on :math:`\rho^{1/T_m}`, :math:`T_m`
    geometric from 1 to ``--max-temperature``, neighbours swapping sentences; the chain's sentence is the
    replica at :math:`T = 1` (:mod:`textsampling.torch.sentence_tempering`).
``ancestral``, ``topk``, ``topp``
    Left-to-right decoding baselines, one sentence per chain (``--temperature`` applies).
``greedy``, ``beam``
    Deterministic decoders: each returns **one** sentence (the argmax at every position; the best of
    ``--num-beams`` beams), so ``--num-chains`` must be 1 or left out.
``smc``
    Sequential Monte Carlo around ``--keywords``: the causal LM proposes, the keyword potential
    weights; ``--num-runs`` runs of ``--num-particles`` weighted particles and each run's estimate
    :math:`\log \hat Z` of :math:`\log P(\text{keywords})` (:mod:`textsampling.cli.particles`, which
    documents its files).

Every chain runs on the batched torch twins, on ``--device``; chain ``c`` at step ``t`` uses the
counter-based uniforms ``Philox(seed, c, t)``, so a step is reproducible from the state before it.
Each run writes to a fresh folder, ``runs/<sampler>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... when that
exists), printed at the start, unless ``--output`` names one. Samples are written as they are drawn to
``OUTPUT/samples.jsonl`` — one JSON line per chain per kept step (``--keep-every``), each step's lines
written together and flushed before the next step starts — next to ``OUTPUT/run.json`` (the settings).
After an interruption, ``--resume --output OUTPUT`` checks that every (step, chain) record is there
exactly once and in order (a damaged file is refused, naming its first bad line), repairs a last line
cut by the interruption, drops an incomplete step, and continues: the finished file is byte for byte the
one an uninterrupted run writes. At the end ``OUTPUT/metrics.json`` holds distinct-n, self-BLEU
(sacrebleu convention) and perplexity under the causal LM of the final sentences, also printed. After a
chain run, the mixing report (:mod:`textsampling.cli.mixing`), computed from ``samples.jsonl`` so that a
resumed run gets the whole run's: ``OUTPUT/mixing.json`` and ``OUTPUT/mixing.md`` (acceptance rate per
move type; split R-hat and bulk ESS across chains of the length and the energy / :math:`\log\rho` on the
second half of the kept steps) and ``OUTPUT/traces.png`` (every chain's energy / :math:`\log\rho` and
length over the steps); its summary is printed. ``textsampling show OUTPUT`` prints the samples as a
table. A decoded sentence that reached ``--max-length`` without END is marked ``"truncated": true`` and
printed with ``[truncated]``.

Several processes (:mod:`textsampling.cli.distributed`): ``torchrun --nproc_per_node=N -m textsampling.cli
generate ...`` splits the chains into N blocks of consecutive indices, one per process (gloo on the CPU;
NCCL with ``--device cuda``, process ``r`` of a node on ``cuda:LOCAL_RANK``). Each process writes its
block to ``OUTPUT/samples.chains-A-B.jsonl``; when all are done, process 0 merges the blocks into
``OUTPUT/samples.jsonl`` in the one-process order and writes everything else. Since a chain's uniforms
depend on (seed, chain, step) only, every file is byte for byte the one a single process writes, for
any N, provided the model scores a row the same whatever the rest of its batch (exactly so for the
bigram oracle; a Hugging Face model can differ in the last bits with the batch's shape, and a decision
within that of its threshold then differs: an equally valid run, not the same bytes). ``--resume``
reads ``samples.jsonl`` and the shard files of an interrupted run whatever N wrote them, keeps the
longest stretch of whole steps they hold together, and continues with any N.

Bad input is refused before any model loads: an option the sampler does not use, an unavailable
``--device``, an empty model path, a causal model where a masked one is needed (or the reverse), pickle
weights without ``--allow-pickle``, keywords the tokenizer cannot represent, more keyword tokens than
``--max-length`` allows, ``--max-length`` over the model's maximum, an output folder holding another run.
Ctrl-C ends the run without a traceback (exit status 130), keeping the samples already written.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from textsampling.cli import distributed, particles
from textsampling.cli.samplers import CHAIN_SAMPLERS

__all__ = [
    "SAMPLERS", "add_arguments", "build_parser", "run", "main", "execute", "load_models", "default_output",
    "DamagedSamplesError",
]

#: The Markov-chain samplers come from the registry (textsampling.cli.samplers), the decoders after them.
DECODING_SAMPLERS = ("ancestral", "topk", "topp", "greedy", "beam")
MCMC_SAMPLERS = tuple(CHAIN_SAMPLERS)
#: Weighted particle systems (textsampling.cli.particles): written once finished, never resumed.
PARTICLE_SAMPLERS = ("smc",)
SAMPLERS = MCMC_SAMPLERS + DECODING_SAMPLERS + PARTICLE_SAMPLERS
MASKED_SAMPLERS = tuple(name for name, sampler in CHAIN_SAMPLERS.items() if sampler.model == "masked")
KEYWORD_SAMPLERS = tuple(name for name, sampler in CHAIN_SAMPLERS.items() if sampler.keywords)
#: Every sampler that needs --keywords (the chains' CGMH options num_candidates, gamma are KEYWORD_SAMPLERS').
KEYWORD_USERS = KEYWORD_SAMPLERS + PARTICLE_SAMPLERS
#: Decoders that return one sentence whatever --num-chains says (deterministic given the model).
SINGLE_SENTENCE_SAMPLERS = ("greedy", "beam")
#: Where a run writes when --output is not given: runs/<sampler>-<YYYYmmdd-HHMMSS>.
DEFAULT_OUTPUT_ROOT = "runs"
#: Settings that define a run: a resumed run must use the same ones.
RUN_SETTINGS = (
    "sampler", "model", "num_chains", "num_steps", "keywords", "seed", "max_length", "min_length", "length",
    "scan", "temperature", "top_k", "top_p", "energy", "num_candidates", "gamma", "final_temperature",
    "num_beams", "keep_every", "num_replicas", "max_temperature",
)
RUN_SETTINGS += ("num_particles", "num_runs", "proposal", "ess_threshold")  # smc


# ----------------------------------------------------------------------------- command line
#: Default number of steps of the edit-move samplers (each step scores a whole candidate list).
EDIT_MOVE_NUM_STEPS = 100
#: option -> (default, samplers that use it). An option given to a sampler that does not use it is refused.
SAMPLER_OPTIONS = {
    "num_steps": (None, MCMC_SAMPLERS),  # 500, or EDIT_MOVE_NUM_STEPS for cgmh/anneal
    "keep_every": (1, MCMC_SAMPLERS),
    "min_length": (4, MASKED_SAMPLERS),
    "length": (None, MASKED_SAMPLERS),
    "scan": ("random", ("gibbs",)),
    "temperature": (1.0, ("gibbs", "ancestral", "topk", "topp")),
    "top_k": (None, ("gibbs", "topk")),  # topk decoding: 50
    "top_p": (0.9, ("topp",)),
    "energy": ("pll", ("mh",)),
    "num_candidates": (20, KEYWORD_SAMPLERS),
    "gamma": (1.0, KEYWORD_SAMPLERS),
    "final_temperature": (0.01, ("anneal",)),
    "num_beams": (4, ("beam",)),
    "num_replicas": (4, ("pt",)),
    "max_temperature": (10.0, ("pt",)),
}
SAMPLER_OPTIONS.update({  # smc (textsampling.cli.particles)
    "num_particles": (64, PARTICLE_SAMPLERS),
    "num_runs": (1, PARTICLE_SAMPLERS),
    "proposal": ("guided", PARTICLE_SAMPLERS),
    "ess_threshold": (0.5, PARTICLE_SAMPLERS),
})

#: The --help text: plain, no markup (the module docstring above is the API documentation).
HELP_DESCRIPTION = f"""\
Sentences from a language model by MCMC (parts 3-4 of the series) or a decoding baseline.

samplers (--sampler):
  gibbs      MLM Gibbs (Wang & Cho 2019): all-[MASK] start of a drawn length, random or systematic scan
  mh         MLM Metropolis-Hastings (Goyal et al. 2022), PLL or raw-logit energy
  cgmh       replace/insert/delete MH around --keywords (Miao et al. 2019), target p(x)^gamma
  anneal     the CGMH kernel on rho^(1/T), T from 1 down to --final-temperature (geometric)
  pt         parallel tempering: --num-replicas CGMH chains at T geometric from 1 to --max-temperature
             that swap sentences; each chain's sentence is the replica at T = 1
  ancestral  left-to-right sampling (--temperature)
  topk       top-k sampling (--top-k, default 50; --temperature)
  topp       nucleus sampling (--top-p; --temperature)
  greedy     the most probable next token each time: ONE sentence (--num-chains 1)
  beam       beam search: ONE sentence, the best of --num-beams beams (--num-chains 1)
  smc        sequential Monte Carlo around --keywords: the causal LM proposes, the keyword potential
             weights; --num-runs runs of --num-particles weighted particles, L + 1 steps for
             --max-length L; writes samples.jsonl (one line per particle: its weight, normalised
             weight, the keywords it holds) and smc.json (per run: log Z-hat, the estimate of
             log P(keywords), the ESS before each step, the resampling steps; across runs the pooled
             estimate and the variance of log Z-hat). textsampling show and evaluate read its texts
             and ignore the weights. Same --seed, same files; --resume is refused (nothing is
             written before every particle has finished).

output: each run writes to a fresh folder {DEFAULT_OUTPUT_ROOT}/<sampler>-<YYYYmmdd-HHMMSS> (suffix -2, -3...
if taken), printed at the start, unless --output names one: run.json (settings), samples.jsonl (one
line per chain per kept step, written as drawn), metrics.json; after gibbs/mh/cgmh/anneal the mixing
report: mixing.json, mixing.md (acceptance per move type, split R-hat and bulk ESS across chains) and
traces.png (energy or log rho and length of every chain). textsampling show FOLDER prints the samples
as a table. --resume --output FOLDER continues an
interrupted run and refuses a damaged samples.jsonl, naming its first bad line. Ctrl-C stops cleanly
(exit status 130) and keeps what was written. A decoded sentence that reached --max-length without
END is marked "truncated": true and printed with [truncated].

several processes: torchrun --nproc_per_node=N -m textsampling.cli generate ... splits the chains over N
processes (on GPUs: --device cuda, one GPU per process) and merges their files: samples.jsonl and the
report are byte for byte those of one process (when the model scores a sentence the same in any batch;
see the README). --resume continues such a run with any N.

Every option is checked before any model loads; an option the chosen sampler does not use is
refused. Weights are read from safetensors files only; pickle weights (pytorch_model.bin) need
--allow-pickle, and code shipped with a checkpoint is never run. Exit status: 0 done, 2 bad input,
130 interrupted.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``generate`` options to ``parser`` (used by :mod:`textsampling.cli`).

    Sampler-specific options default to None here and are resolved by the sampler (see
    :data:`SAMPLER_OPTIONS`), so that one given to a sampler that ignores it can be refused.
    """
    parser.add_argument("--sampler", required=True, choices=SAMPLERS, help="which sampler or decoder")
    parser.add_argument("--model", default="tiny-shakespeare",
                        help="'tiny-shakespeare' (built in), a checkpoint folder, or a hub name (default: "
                             "tiny-shakespeare)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load pickle weights (pytorch_model.bin) of a checkpoint without safetensors; "
                             "unpickling can run code: only for a folder you trust (default: refused)")
    parser.add_argument("--num-chains", type=int, default=None,
                        help="chains, or sentences for decoding (default: 8; greedy and beam return 1)")
    parser.add_argument("--num-steps", type=int, default=None,
                        help="MCMC steps per chain, sweeps for --scan systematic (default: 500 for gibbs/mh, "
                             f"{EDIT_MOVE_NUM_STEPS} for cgmh/anneal, whose steps each score --num-candidates "
                             "sentences)")
    parser.add_argument("--keywords", default="", help="comma-separated keywords for cgmh/anneal/smc, e.g. "
                                                       "king,crown (required there)")
    parser.add_argument("--seed", type=int, default=0, help="key of the counter-based generator (default: 0)")
    parser.add_argument("--output", default=None,
                        help=f"folder for run.json, samples.jsonl, metrics.json (default: a fresh "
                             f"{DEFAULT_OUTPUT_ROOT}/<sampler>-<YYYYmmdd-HHMMSS>)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run in --output "
                                                              "(required with it)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    parser.add_argument("--max-length", type=int, default=16, help="longest sentence, in tokens (default: 16)")
    parser.add_argument("--min-length", type=int, default=None, help="shortest drawn length, gibbs/mh (default: 4)")
    parser.add_argument("--length", type=int, default=None, help="fixed sentence length, gibbs/mh (default: "
                                                                 "drawn uniformly "
                                                                   "from --min-length..--max-length)")
    parser.add_argument("--scan", default=None, choices=("random", "systematic"), help="Gibbs site order "
                                                                                       "(default: random)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="gibbs/ancestral/topk/topp temperature; != 1 changes the target (default: 1)")
    parser.add_argument("--top-k", type=int, default=None, help="top-k truncation, gibbs and topk (default: "
                                                                "none for gibbs, 50 for topk)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus mass, topp (default: 0.9)")
    parser.add_argument("--energy", default=None, choices=("pll", "raw_logit"), help="MLM-MH energy, mh (default: pll)")
    parser.add_argument("--num-candidates", type=int, default=None,
                        help="CGMH top-K candidate set size, each costs one sentence score per step (default: 20)")
    parser.add_argument("--gamma", type=float, default=None, help="CGMH exponent of p(x), cgmh/anneal (default: 1)")
    parser.add_argument("--final-temperature", type=float, default=None, help="last temperature, anneal "
                                                                              "(default: 0.01)")
    parser.add_argument("--num-beams", type=int, default=None, help="beam width, beam (default: 4)")
    parser.add_argument("--num-replicas", type=int, default=None,
                        help="replicas (temperatures) per chain, pt; each costs one CGMH step (default: 4)")
    parser.add_argument("--max-temperature", type=float, default=None,
                        help="temperature of the hottest replica, pt; the coldest is at 1 (default: 10)")
    parser.add_argument("--keep-every", type=int, default=None, help="write every k-th step, MCMC samplers "
                                                                     "(default: 1)")
    parser.add_argument("--num-particles", type=int, default=None, help="particles per run, smc (default: 64)")
    parser.add_argument("--num-runs", type=int, default=None,
                        help="independent runs, smc: each gives its own estimate of log P(keywords) (default: 1)")
    parser.add_argument("--proposal", default=None, choices=("bootstrap", "guided"),
                        help="smc: draw each token from the LM (bootstrap) or from the LM restricted to tokens "
                             "after which the keywords still fit (guided) (default: guided)")
    parser.add_argument("--ess-threshold", type=float, default=None,
                        help="smc: resample a run before a step whose ESS is below this fraction of "
                             "--num-particles; 1 every step, 0 never (default: 0.5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textsampling generate", description=HELP_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(argv=None) -> int:
    """Entry point, as ``textsampling generate``: bad input is one line on stderr and exit status 2."""
    from textsampling import cli

    return cli.main(["generate", *(sys.argv[1:] if argv is None else argv)])


def run(args) -> int:
    """Check every argument, load the models named by ``args`` and :func:`execute` the run.

    Under torchrun (:mod:`textsampling.cli.distributed`) every process checks the same things, joins
    the process group before anything is written, and loads the models on its own device.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    processes = _processes(args)
    _check_settings(args)
    _check_output(args)
    _check_model_before_loading(args)
    with distributed.process_group(processes, args.device):
        folder = _claim_output(args, processes)
        sampling_started = False
        try:
            masked_lm, causal_lm = load_models(args)
            sampling_started = True
            return execute(args, masked_lm=masked_lm, causal_lm=causal_lm)
        finally:
            if not sampling_started:  # stopped while loading: leave no empty run behind
                _release_output(folder)


def load_models(args):
    """(masked LM or None, causal LM or None) for ``args.sampler``; the causal LM also scores perplexity."""
    from textsampling.lm.loading import load_causal_lm, load_masked_lm

    allow_pickle = bool(getattr(args, "allow_pickle", False))
    if args.sampler in MASKED_SAMPLERS:
        masked_lm = load_masked_lm(args.model, device=args.device, allow_pickle=allow_pickle)
        causal_lm = None
        if args.model == "tiny-shakespeare":  # its causal twin shares the tokenizer: perplexity
            causal_lm = load_causal_lm("tiny-shakespeare", device=args.device)
        return masked_lm, causal_lm
    return None, load_causal_lm(args.model, device=args.device, allow_pickle=allow_pickle)


# ----------------------------------------------------------------------------- checks before sampling
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _resolve_options(args) -> None:
    """Refuse options the sampler does not use; fill in the defaults of those it does (idempotent)."""
    sampler = args.sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    for name, (default, users) in SAMPLER_OPTIONS.items():
        value = getattr(args, name, None)
        if sampler not in users:
            if value is not None and value != default:
                raise ValueError(f"{_flag(name)} is used by --sampler {'/'.join(users)} only, not by --sampler "
                                 f"{sampler}")
        if value is None:
            value = default
            if name == "num_steps" and sampler in MCMC_SAMPLERS:
                value = EDIT_MOVE_NUM_STEPS if sampler in KEYWORD_SAMPLERS else 500
            if name == "top_k" and sampler == "topk":
                value = 50
        setattr(args, name, value)
    if sampler in SINGLE_SENTENCE_SAMPLERS:
        if args.num_chains not in (None, 1):
            what = "the best of --num-beams beams" if sampler == "beam" else "the most probable token at each position"
            raise ValueError(f"--sampler {sampler} returns one sentence ({what}, the same every time): "
                             f"--num-chains must be 1 or left out, got {args.num_chains}")
        args.num_chains = 1
    elif sampler in PARTICLE_SAMPLERS:
        if args.num_chains is not None:
            raise ValueError(f"--num-chains is not used by --sampler {sampler}: it runs --num-runs independent runs "
                             "of --num-particles particles")
    elif args.num_chains is None:
        args.num_chains = 8


def _check_device(text) -> None:
    """Refuse a device this torch cannot use, as one line (not a traceback after the model loads)."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"--device {text!r} is not a device: use cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {text}: this torch ({torch.__version__}) cannot use CUDA here "
                             "(no CUDA build or no GPU); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {text}: there are {torch.cuda.device_count()} CUDA devices (cuda:0.."
                             f"cuda:{torch.cuda.device_count() - 1})")
        return
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {text}: MPS is not available here; use --device cpu")
        return
    raise ValueError(f"--device {text}: only cpu, cuda (cuda:N) and mps are supported")


def _check_settings(args) -> None:
    """Every check that needs neither a model nor the disk: options, numbers, keywords' presence, device."""
    _resolve_options(args)
    integers = [("max_length", 1), ("seed", 0)]
    integers += [("num_particles", 1), ("num_runs", 1)] if args.sampler in PARTICLE_SAMPLERS else [("num_chains", 1)]
    if args.sampler in MCMC_SAMPLERS:
        integers += [("num_steps", 1), ("keep_every", 1)]
    integers += {
        "gibbs": [("min_length", 1)], "mh": [("min_length", 1)], "cgmh": [("num_candidates", 1)],
        "anneal": [("num_candidates", 1)], "beam": [("num_beams", 1)], "topk": [("top_k", 1)],
        "pt": [("num_candidates", 1), ("num_replicas", 2)],
    }.get(args.sampler, [])
    if args.sampler == "gibbs" and args.top_k is not None:
        integers.append(("top_k", 1))
    for name, minimum in integers:
        value = getattr(args, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{_flag(name)} must be an integer >= {minimum}, got {value!r}")
    if args.sampler in MASKED_SAMPLERS:
        if args.min_length > args.max_length:
            raise ValueError(f"--min-length ({args.min_length}) must not exceed --max-length ({args.max_length})")
        if args.length is not None and not 1 <= args.length <= args.max_length:
            raise ValueError(f"--length must lie in 1..--max-length ({args.max_length}), got {args.length}")
    for name in ("temperature", "gamma", "final_temperature"):
        value = getattr(args, name)
        if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
            raise ValueError(f"{_flag(name)} must be a finite number > 0, got {value!r}")
    if not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must lie in (0, 1], got {args.top_p}")
    if not (isinstance(args.max_temperature, (int, float)) and 1 < args.max_temperature < float("inf")):
        raise ValueError(f"--max-temperature must be a finite number > 1 (the coldest replica is at 1), got "
                         f"{args.max_temperature!r}")
    if args.sampler in PARTICLE_SAMPLERS:
        if not (isinstance(args.ess_threshold, (int, float)) and 0 <= args.ess_threshold <= 1):
            raise ValueError(f"--ess-threshold must lie in [0, 1] (1: resample before every step, 0: never), got "
                             f"{args.ess_threshold!r}")
        if getattr(args, "resume", False):
            raise ValueError(f"--resume: a --sampler {args.sampler} run cannot be resumed: every step reweights and "
                             "resamples the whole particle system, and nothing is written before every particle "
                             "has finished; run the command again")
    keywords = _keyword_list(args)
    if keywords and args.sampler not in KEYWORD_USERS:
        raise ValueError(f"--keywords is used by {'/'.join(KEYWORD_USERS)} only, not by --sampler {args.sampler}")
    if not keywords and args.sampler in KEYWORD_USERS:
        raise ValueError(f"--sampler {args.sampler} builds sentences around --keywords: give at least one, e.g. "
                         "king,crown")
    if getattr(args, "resume", False) and not getattr(args, "output", None):
        raise ValueError("--resume continues the run in --output FOLDER: name the folder, e.g. --output "
                         "runs/gibbs-20260101-120000")
    _check_device(args.device)


def _check_model_before_loading(args) -> None:
    """Model checks from the checkpoint's config and tokenizer only (no weights): kind, lengths, keywords."""
    from textsampling.lm.loading import inspect_model

    kind = "masked" if args.sampler in MASKED_SAMPLERS else "causal"
    info = inspect_model(args.model, kind, allow_pickle=bool(getattr(args, "allow_pickle", False)))
    if args.max_length > info.max_length:
        raise ValueError(f"--max-length {args.max_length} is over the model's maximum of {info.max_length} tokens")
    if kind == "masked" and info.tokenizer.mask_token_id is None:
        raise ValueError(f"--sampler {args.sampler} needs a masked LM with a [MASK] token")
    if args.sampler in KEYWORD_USERS:
        from textsampling.lm.loading import encode_keywords

        keyword_ids = [t for piece in encode_keywords(info.tokenizer, _keyword_list(args)) for t in piece]
        if len(keyword_ids) > args.max_length:
            raise ValueError(f"the keywords take {len(keyword_ids)} tokens, more than --max-length "
                             f"{args.max_length} allows")


def _keyword_list(args) -> list:
    return [word.strip() for word in (args.keywords or "").split(",") if word.strip()]


def _check_model(args, masked_lm, causal_lm) -> list:
    """Model-dependent checks (lengths, keywords); returns the keyword token ids."""
    model = masked_lm if args.sampler in MASKED_SAMPLERS else causal_lm
    if model is None:
        raise ValueError(f"--sampler {args.sampler} needs a "
                         f"{'masked' if args.sampler in MASKED_SAMPLERS else 'causal'} LM")
    if args.max_length > model.max_length:
        raise ValueError(f"--max-length {args.max_length} is over the model's maximum of {model.max_length} tokens")
    if args.sampler in MASKED_SAMPLERS and getattr(model, "mask_token_id", None) is None:
        raise ValueError(f"--sampler {args.sampler} needs a masked LM with a [MASK] token")
    from textsampling.lm.keywords import keyword_units

    # Each keyword is one unit of word pieces (CGMH never splits it).
    keyword_ids = keyword_units(model, _keyword_list(args)) if args.sampler in KEYWORD_USERS else []
    num_tokens = sum(len(unit) for unit in keyword_ids)
    if num_tokens > args.max_length:
        raise ValueError(
            f"the keywords take {num_tokens} tokens, more than --max-length {args.max_length} allows"
        )
    return keyword_ids


# ----------------------------------------------------------------------------- output files
class DamagedSamplesError(ValueError):
    """A samples file that ``--resume`` cannot continue without losing or duplicating a sample."""


def _settings(args) -> dict:
    return {name: getattr(args, name) for name in RUN_SETTINGS}


def default_output(sampler: str, now: datetime | None = None, root=DEFAULT_OUTPUT_ROOT) -> Path:
    """``root/<sampler>-<YYYYmmdd-HHMMSS>`` for the time ``now`` (default: the local time now)."""
    stamp = (now if now is not None else datetime.now()).strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{sampler}-{stamp}"


def _claim_fresh_folder(base: Path) -> Path:
    """Create ``base``, or ``base-2``, ``base-3``... the first that does not exist (atomic: ``mkdir``)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for number in itertools.count(1):
        folder = base if number == 1 else base.with_name(f"{base.name}-{number}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder


def _claim_output(args, processes=None):
    """Make ``args.output`` a folder this run may write to and say where; returns it if created here.

    Without ``--output``: a fresh folder (created now, so two runs started in the same second get two
    folders). The folder is printed before anything slow happens. Among several processes, process 0
    claims and prints it and the others learn its name from process 0.
    """
    processes = processes if processes is not None else distributed.Processes()
    created = None
    if processes.is_main:
        if not getattr(args, "output", None):
            created = _claim_fresh_folder(default_output(args.sampler))
            args.output = str(created)
        print(f"textsampling generate: {'resuming' if args.resume else 'writing to'} {args.output}", flush=True)
    args.output = distributed.broadcast(args.output, processes)
    return created


def _release_output(folder) -> None:
    """Remove a folder :func:`_claim_output` created, if the run stopped before writing anything."""
    if folder is not None and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _check_output(args) -> list:
    """Refuse an output folder holding another run, or (``--resume``) different settings or a damaged
    samples file; returns the records a resumed run keeps (:func:`_resumable_records`: those of
    ``samples.jsonl`` and of the shard files an interrupted several-process run left). Reads only:
    nothing is written here."""
    if not getattr(args, "output", None):
        return []
    folder = Path(args.output)
    samples, settings_file = folder / "samples.jsonl", folder / "run.json"
    if args.resume:
        if not settings_file.is_file():
            raise FileNotFoundError(f"--resume: {settings_file} not found: nothing to resume in --output {folder}")
        try:
            saved = json.loads(settings_file.read_text())
        except ValueError:
            raise DamagedSamplesError(f"--resume: {settings_file} is not valid JSON: the run cannot be "
                                      "identified") from None
        # A setting missing from run.json is an option added after the run was made: the run had its
        # default (every option added so far defaults to what came before it).
        saved = {k: saved.get(k, SAMPLER_OPTIONS.get(k, (None,))[0]) for k in RUN_SETTINGS}
        differences = {k: (saved[k], v) for k, v in _settings(args).items() if saved[k] != v}
        if differences:
            listed = ", ".join(f"{k}: {old!r} then, {new!r} now" for k, (old, new) in differences.items())
            raise ValueError(f"--resume: the settings differ from the run in {folder} ({listed})")
        return _resumable_records(folder, args)
    if samples.exists() or settings_file.exists() or distributed.find_shards(folder):
        raise FileExistsError(f"--output {folder} already holds a run: pass --resume to continue it, or choose "
                              "another folder")
    return []


def _prepare_output(args, records: list) -> Path:
    """Create the folder and its run.json (a fresh run), or leave ``samples.jsonl`` holding exactly the
    ``records`` a resumed run keeps, the shard files folded into it (:func:`_check_output` read them)."""
    folder = Path(args.output)
    if not args.resume:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "run.json").write_text(json.dumps(_settings(args), indent=2) + "\n")
    samples_path = folder / "samples.jsonl"
    shards = distributed.find_shards(folder)
    if records or samples_path.exists() or shards:
        _rewrite_samples(samples_path, records)
    for _, path in shards:  # their records are in samples.jsonl now (the rest is redrawn identically)
        path.unlink()
    return folder


def _kept_steps(args) -> list:
    """The steps whose records are written: every ``--keep-every``-th and the last (decoders: step 0)."""
    if args.sampler in DECODING_SAMPLERS:
        return [0]
    return [step for step in range(args.num_steps) if (step + 1) % args.keep_every == 0 or step == args.num_steps - 1]


def _expected_records(args, chains=None) -> list:
    """The ``(step, chain)`` of every record of the finished run, in the order of ``samples.jsonl``.

    Kept step by kept step, chains in index order within a step; with ``chains`` (a range), only those
    chains: the order of that shard's file.
    """
    chains = range(args.num_chains) if chains is None else chains
    return [(step, chain) for step in _kept_steps(args) for chain in chains]


#: fields a record of each sampler needs to be resumed from (beyond chain, step, tokens, text)
_RESUME_FIELDS = {"mh": ("energy",), "cgmh": ("protected", "log_prob"), "anneal": ("protected", "log_prob"),
                  "pt": ("protected", "log_prob", "replicas", "replica_log_probs", "replica_protected")}


def _check_record(record, args, where: str) -> None:
    if not isinstance(record, dict):
        raise DamagedSamplesError(f"{where}: not a JSON object")
    for name in ("chain", "step"):
        if not isinstance(record.get(name), int) or isinstance(record.get(name), bool):
            raise DamagedSamplesError(f"{where}: the record has no integer {name!r}")
    tokens = record.get("tokens")
    def is_token(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not isinstance(tokens, list) or not all(is_token(t) for t in tokens):
        raise DamagedSamplesError(f"{where}: the record has no 'tokens' (a list of token ids), got {tokens!r}")
    if len(tokens) > args.max_length:
        raise DamagedSamplesError(f"{where}: {len(tokens)} tokens, more than --max-length {args.max_length}")
    for name in ("text",) + _RESUME_FIELDS.get(args.sampler, ()):
        if name not in record:
            raise DamagedSamplesError(f"{where}: the record has no {name!r}")
    if "replicas" in _RESUME_FIELDS.get(args.sampler, ()):  # pt: every replica's sentence is resumed too
        replicas = record["replicas"]
        if not isinstance(replicas, list) or len(replicas) != args.num_replicas:
            raise DamagedSamplesError(f"{where}: 'replicas' must list --num-replicas ({args.num_replicas}) "
                                      f"sentences, got {replicas!r}")
        for replica in replicas:
            if not isinstance(replica, list) or not all(is_token(t) for t in replica):
                raise DamagedSamplesError(f"{where}: a replica is not a list of token ids: {replica!r}")
            if len(replica) > args.max_length:
                raise DamagedSamplesError(f"{where}: a replica of {len(replica)} tokens, more than --max-length "
                                          f"{args.max_length}")


def _read_records(path: Path, args, expected: list, start_anywhere: bool = False) -> list:
    """The records of ``path``, checked line by line against the ``(step, chain)`` order ``expected``.

    Every complete line must be the next expected record, from the first of ``expected`` (or, with
    ``start_anywhere``, from wherever the first line is in it: a shard file continues the records
    already merged). A last line without its newline (cut by the interruption) is dropped. Anything
    else raises :class:`DamagedSamplesError` naming the first bad line.
    """
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # written half when the run stopped: regenerated identically
    records = []
    hint = (f"--resume will not guess; move {path} away (or start a new run) to sample again")
    offset = 0
    for number, line in enumerate(lines, start=1):
        where = f"{path} line {number}"
        try:
            record = json.loads(line)
        except ValueError:
            raise DamagedSamplesError(f"{where} is not valid JSON: {line[:60].rstrip()!r}; {hint}") from None
        try:
            _check_record(record, args, where)
        except DamagedSamplesError as error:
            raise DamagedSamplesError(f"{error}; {hint}") from None
        found = (record["step"], record["chain"])
        if number == 1 and start_anywhere and found in expected:
            offset = expected.index(found)
        position = offset + number - 1
        if position >= len(expected):
            raise DamagedSamplesError(f"{where}: step {found[0]} chain {found[1]} comes after the last record "
                                      "of the run "
                                      f"(step {expected[-1][0]} chain {expected[-1][1]}); {hint}")
        want = expected[position]
        if found != want:
            if found in expected[offset:position]:
                problem = "a duplicate of an earlier record"
            elif found in expected:
                problem = "out of order: a record before it is missing"
            else:
                problem = "not a (step, chain) of this run"
            raise DamagedSamplesError(
                f"{where}: expected step {want[0]} chain {want[1]}, found step {found[0]} chain {found[1]} "
                f"({problem}); {hint}"
            )
        records.append(record)
    return records


def _validated_records(path: Path, args) -> list:
    """The records ``--resume`` continues from, after checking the whole file.

    Every complete line must be the next expected (step, chain): the kept steps in order, chains
    ``0..num_chains-1`` within each, each exactly once. A last line without its newline (cut by the
    interruption) is dropped, and so are the records of a step not every chain finished (MCMC; a
    decoder's sentences are independent, so each finished one is kept). Anything else — a record
    deleted, duplicated or out of order, a line that is not JSON, a record without its tokens — raises
    :class:`DamagedSamplesError` naming the first bad line.
    """
    records = _read_records(path, args, _expected_records(args))
    if args.sampler not in DECODING_SAMPLERS:
        records = records[: len(records) - len(records) % args.num_chains]  # an incomplete step is redone
    return records


def _resumable_records(folder: Path, args) -> list:
    """The records a resumed run keeps: ``samples.jsonl`` and the shard files of a several-process run.

    ``samples.jsonl`` holds the records merged so far (:func:`_validated_records`); each shard file
    ``samples.chains-A-B.jsonl`` holds what one process wrote since, for chains ``A..B-1``, in the order
    of :func:`_expected_records` restricted to them (checked line by line the same way). Whatever the
    number of processes that wrote them, the kept records are the longest run of ``(step, chain)``
    records, in the single-process order, that these files hold together, cut to whole steps (MCMC): a
    chain whose process got further than the slowest is run again from there, drawing the same
    sentences. A record found twice (a shard and the merged file) must be the same both times.
    """
    records = _validated_records(folder / "samples.jsonl", args)
    shards = distributed.find_shards(folder)
    if not shards:
        return records
    found = {(record["step"], record["chain"]): record for record in records}
    for chains, path in shards:
        if not (0 <= chains.start < chains.stop <= args.num_chains):
            raise DamagedSamplesError(f"{path}: chains {chains.start}..{chains.stop - 1} are not chains of this run "
                                      f"(0..{args.num_chains - 1}); move it away to resume")
        for number, record in enumerate(_read_records(path, args, _expected_records(args, chains),
                                                      start_anywhere=True), start=1):
            key = (record["step"], record["chain"])
            if key in found and found[key] != record:
                raise DamagedSamplesError(f"{path} line {number}: step {key[0]} chain {key[1]} differs from the same "
                                          "record written before; move the files away to sample again")
            found[key] = record
    kept = []
    for key in _expected_records(args):
        if key not in found:
            break
        kept.append(found[key])
    if args.sampler not in DECODING_SAMPLERS:
        kept = kept[: len(kept) - len(kept) % args.num_chains]  # an incomplete step is redone
    return kept


def _rewrite_samples(path: Path, records: list) -> None:
    """Rewrite the samples file with exactly ``records`` (drops a cut line or an incomplete step)."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.exists() and path.read_text() == text:
        return
    temporary = path.with_suffix(".jsonl.tmp")
    temporary.write_text(text)
    temporary.replace(path)  # the dropped records are regenerated, identically, by the resumed run


def _record_order(line: str) -> tuple:
    """``(step, chain)`` of one line of ``samples.jsonl``: the order of the file (read from its start)."""
    match = _RECORD_START.match(line)
    if match:
        return int(match.group(2)), int(match.group(1))
    record = json.loads(line)
    return record["step"], record["chain"]


#: every line starts so: json.dumps of a record whose first keys are chain and step
_RECORD_START = re.compile(r'\{"chain": (\d+), "step": (\d+)[,}]')


def _merge_shards(folder: Path, args) -> None:
    """Process 0, once every process has finished: ``samples.jsonl`` and the shards -> ``samples.jsonl``.

    The merged file holds every record of the run in the single-process order, the lines copied byte
    for byte (:func:`textsampling.cli.distributed.merge_sorted`); then the shard files are removed.
    """
    samples_path = folder / "samples.jsonl"
    shards = distributed.find_shards(folder)
    sources = ([samples_path] if samples_path.exists() else []) + [path for _, path in shards]
    count = distributed.merge_sorted(sources, samples_path, key=_record_order)
    expected = len(_expected_records(args))
    if count != expected:
        raise RuntimeError(f"bug: the merged {samples_path} holds {count} records, not the run's {expected} "
                           "(please report it); the shard files are kept")
    for _, path in shards:
        path.unlink()


# ----------------------------------------------------------------------------- the run
def execute(args, masked_lm=None, causal_lm=None, interrupt_after_step=None) -> int:
    """Run the sampler of ``args`` with the given models (the Python API behind the command).

    Without ``args.output`` the run gets a fresh folder (:func:`default_output`), printed.
    ``interrupt_after_step`` (tests) raises ``KeyboardInterrupt`` once that step is written.
    Returns 0 when done, 130 when interrupted (the samples written so far are kept).

    Called in every process of a ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set; see
    :mod:`textsampling.cli.distributed`), each process runs its block of the chains, on
    ``cuda:LOCAL_RANK`` when ``args.device`` is ``"cuda"`` (load the models there), and writes them to
    its shard file; process 0 then merges the shards into ``samples.jsonl`` and writes the report: the
    files one process writes, byte for byte. A process group the caller started is used as it is.
    """
    processes = _processes(args)
    _check_settings(args)
    records = _check_output(args)
    keyword_ids = _check_model(args, masked_lm, causal_lm)
    model = masked_lm if args.sampler in MASKED_SAMPLERS else causal_lm
    _check_vocabulary(records, model, args)
    with distributed.process_group(processes, args.device):
        if not getattr(args, "output", None):
            _claim_output(args, processes)
        distributed.barrier(processes)  # every process has read the folder before process 0 changes it
        if processes.is_main:
            _prepare_output(args, records)
        distributed.barrier(processes)  # the folder is ready for every process
        return _sample(args, processes, model, causal_lm, keyword_ids, records, interrupt_after_step)


def _processes(args) -> distributed.Processes:
    """This process's place in the run (torchrun's variables, or one process) and its device.

    Refuses, among several processes, a sampler whose chains interact (they cannot be split into
    blocks that run apart); such a registry entry sets ``independent_chains=False``.
    """
    processes = distributed.current()
    args.device = distributed.process_device(args.device, processes)
    if processes.is_distributed and getattr(args, "sampler", None) in PARTICLE_SAMPLERS:
        raise ValueError(f"--sampler {args.sampler}: its particles are resampled together and its runs are "
                         f"written at the end by one process, so it does not run under torchrun's "
                         f"{processes.world_size} processes; run it in one process (--num-runs batches the runs)")
    sampler = CHAIN_SAMPLERS.get(getattr(args, "sampler", None))
    if processes.is_distributed and sampler is not None and not getattr(sampler, "independent_chains", True):
        raise ValueError(f"--sampler {args.sampler}: its chains interact at every step, so they cannot be "
                         f"split over the {processes.world_size} processes of torchrun; run it in one process")
    return processes


def _check_vocabulary(records, model, args) -> None:
    """Refuse resumed records holding a token id the model does not have (written by another model)."""
    for number, record in enumerate(records, start=1):
        rows = [record["tokens"]] + list(record.get("replicas") or [])  # pt resumes every replica
        if any(token >= model.vocab_size for row in rows for token in row):
            raise DamagedSamplesError(f"{Path(args.output) / 'samples.jsonl'} record {number} (step "
                                      f"{record['step']} chain {record['chain']}): a token id is not below the "
                                      f"model's vocabulary size {model.vocab_size}: written by another model?")


def _sample(args, processes, model, causal_lm, keyword_ids, records, interrupt_after_step) -> int:
    """Run this process's chains into its file; then (process 0) merge the shards and report."""
    import torch

    folder = Path(args.output)
    device = torch.device(args.device)
    if args.sampler in PARTICLE_SAMPLERS:  # a weighted particle system, written once finished
        return particles.run_smc(args, model, folder, device, interrupt_after_step)
    samples_path = folder / "samples.jsonl"
    chains = distributed.shard(args.num_chains, processes)
    # One process appends to samples.jsonl itself; several write a shard file each, merged at the end.
    path = distributed.shard_path(folder, chains) if processes.is_distributed else samples_path
    statistics = _RunningStatistics(args.sampler)
    try:
        if len(chains):
            with path.open("a") as output:
                if args.sampler in DECODING_SAMPLERS:
                    _run_decoding(args, model, records, output, args.num_chains, device, chains=chains,
                                  show_progress=processes.is_main)
                else:
                    _run_chains(args, model, keyword_ids, records, output, device, interrupt_after_step, statistics,
                                chains=chains, show_progress=processes.is_main)
    except KeyboardInterrupt:
        if processes.is_main:
            summary = "" if processes.is_distributed else statistics.summary()
            where = (f"{samples_path} and the shard files samples.chains-*.jsonl beside it" if processes.is_distributed
                     else str(samples_path))
            print(f"\ninterrupted{'; ' + summary if summary else ''}; the samples so far are in {where}. "
                  f"Continue it: the same command with --resume --output {folder}", file=sys.stderr)
        return 130
    parts = distributed.gather(statistics.counts(), processes)  # also waits until every shard is written
    if not processes.is_main:
        return 0
    if processes.is_distributed:
        _merge_shards(folder, args)
        statistics = _RunningStatistics.combined(args.sampler, parts)
    _report(args, folder, model, causal_lm, statistics)
    return 0


class _RunningStatistics:
    """Acceptance rate (MH-type samplers), moves (Gibbs) and the mean log rho / energy, as the chains run."""

    def __init__(self, sampler: str):
        self.sampler = sampler
        registered = CHAIN_SAMPLERS.get(sampler)
        self.rate_name = registered.rate_name if registered is not None else "accept"
        self._score_name = registered.score_name if registered is not None else "log rho"
        self.chain_steps = 0
        self.accepted = 0
        self.mean_score = None  # mean over chains of log rho (cgmh, anneal) or the energy (mh), now
        self.num_scored = 0  # the chains that mean is over

    @property
    def score_name(self) -> str:
        return self._score_name

    def update(self, accepted, score=None) -> None:
        """``accepted``: ``(B,)`` bools (for Gibbs: did the sentence change); ``score``: ``(B,)`` or None."""
        self.chain_steps += int(accepted.numel())
        self.accepted += int(accepted.sum())
        if score is not None:
            self.mean_score = float(score.double().mean())
            self.num_scored = int(score.numel())

    def counts(self) -> tuple:
        """``(chain_steps, accepted, mean_score, num_scored)``: what :meth:`combined` adds up over processes."""
        return self.chain_steps, self.accepted, self.mean_score, self.num_scored

    @classmethod
    def combined(cls, sampler: str, parts) -> "_RunningStatistics":
        """The statistics of all chains from each process's :meth:`counts` (the mean weighted by chains)."""
        total = cls(sampler)
        total.chain_steps = sum(part[0] for part in parts)
        total.accepted = sum(part[1] for part in parts)
        scored = [(mean, count) for _, _, mean, count in parts if mean is not None and count]
        if scored:
            total.num_scored = sum(count for _, count in scored)
            total.mean_score = sum(mean * count for mean, count in scored) / total.num_scored
        return total

    def postfix(self) -> str:
        if not self.chain_steps:
            return ""
        text = f"{self.rate_name}={self.accepted / self.chain_steps:.3f}"
        if self.mean_score is not None:
            text += f" {self.score_name}={self.mean_score:.2f}"
        return text

    def summary(self) -> str:
        if not self.chain_steps:
            return ""
        rate = self.accepted / self.chain_steps
        if self.rate_name == "moved":
            text = f"sentences changed in {rate:.1%} of the {self.chain_steps} chain-steps run now"
        else:
            text = f"acceptance rate {rate:.3f} over the {self.chain_steps} chain-steps run now"
        if self.mean_score is not None:
            text += f"; mean {self.score_name} of the chains' last sentences {self.mean_score:.3f}"
        return text


class _StepWriter:
    """Writes the kept steps of a block of chains: one JSON line per chain, one ``write`` per step.

    A step's lines are all built first, then written and flushed together, so every step is on disk
    before the next starts and an interruption loses at most the step being written (``--resume``
    drops its part and draws it again). Decoding a sentence is a pure function of its tokens, so
    each chain's last (tokens, text) is kept and only the sentences that changed since the chain's
    previous kept step are decoded, in one batch where the model decodes batches (:func:`_texts`).

    With ``keywords``, every decoded sentence must hold each of them as a whole word: one that does not
    is a sampler bug, and stops the run before its step is written.

    Parameters
    ----------
    output : text file
        Where the lines go (``samples.jsonl``, or this process's shard file).
    model : language model
        Decodes the sentences (``model.decode``).
    keywords : sequence of str
        Words every sentence must hold (``--keywords`` of cgmh / anneal), or empty.
    chains : range or None
        The chain index of each row of the batch (a process's block); None: row ``i`` is chain ``i``.
    """

    def __init__(self, output, model, keywords=(), chains=None):
        self.output = output
        self.model = model
        self.keywords = tuple(keywords)
        self.chains = chains
        self._last = {}  # row -> (tokens, text) of its last written record

    def write_step(self, step: int, states, extra: dict) -> None:
        """The records of ``step``: ``states`` ``(B, L)`` token ids (PAD -1), ``extra`` the sampler's fields.

        Each value of ``extra``: a ``(B, ...)`` tensor or array, a list of ``B`` values, or one value
        shared by every chain.
        """
        from textsampling.lm.keywords import missing_keywords

        rows = [[token for token in row if token != -1] for row in states.detach().cpu().tolist()]
        chains = self.chains if self.chains is not None else range(len(rows))
        changed = [i for i, row in enumerate(rows) if i not in self._last or self._last[i][0] != row]
        texts = dict(zip(changed, _texts(self.model, [rows[i] for i in changed])))
        for i in changed:
            missing = missing_keywords(texts[i], self.keywords)
            if missing:
                raise RuntimeError(
                    f"bug: chain {chains[i]} at step {step} holds the sentence {texts[i]!r}, without the keyword(s) "
                    f"{missing} (please report it)"
                )
        columns = {name: _column(values, len(rows)) for name, values in extra.items()}
        lines = []
        for i, row in enumerate(rows):
            if i in texts:
                self._last[i] = (row, texts[i])
            record = {"chain": chains[i], "step": step, "tokens": row, "text": self._last[i][1]}
            for name, values in columns.items():
                record[name] = values[i]
            lines.append(json.dumps(record) + "\n")
        self.output.write("".join(lines))
        self.output.flush()


def _column(values, num_rows: int) -> list:
    """One record field for every row, as plain Python values (what ``json.dumps`` writes)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if np.ndim(values) == 0:
        value = values.tolist() if hasattr(values, "tolist") else values
        return [value] * num_rows
    if isinstance(values, np.ndarray):
        return values.tolist()
    return [value.tolist() if hasattr(value, "tolist") else value for value in values]


def _write_step(output, step, states, model, extra, keywords=()) -> None:
    """One line per chain for ``step``, then flush (:class:`_StepWriter` without its memory of texts)."""
    _StepWriter(output, model, keywords).write_step(step, states, extra)


def _text(model, row) -> str:
    if hasattr(model, "decode"):
        return model.decode(np.array(row, dtype=np.int64)) if row else ""
    return " ".join(str(t) for t in row)


def _texts(model, rows: list) -> list:
    """:func:`_text` of every row of token ids (PAD dropped), in one ``decode`` call where the model decodes
    batches (the HF adapters, with a ``tokenizer``: ``decode`` of an ``(N, L)`` array gives N texts,
    each the one of its row alone), else row by row."""
    nonempty = [row for row in rows if row]
    decoded = None
    if nonempty and hasattr(model, "decode") and getattr(model, "tokenizer", None) is not None:
        batch = np.full((len(nonempty), max(len(row) for row in nonempty)), -1, dtype=np.int64)  # (N, L) PAD
        for index, row in enumerate(nonempty):
            batch[index, : len(row)] = row
        decoded = model.decode(batch)
        if not (isinstance(decoded, list) and len(decoded) == len(nonempty)):
            decoded = None
    if decoded is None:
        decoded = [_text(model, row) for row in nonempty]
    texts = iter(decoded)
    return [next(texts) if row else "" for row in rows]


def _progress(args, initial: int, total: int, show: bool = True):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=args.no_progress or not show,
                desc=f"generate --sampler {args.sampler}", unit="step")


def _run_chains(args, model, keyword_ids, records, output, device, interrupt_after_step, statistics=None, *,
                chains=None, show_progress=True) -> None:
    """Run the registered chain sampler of ``args.sampler`` (:data:`textsampling.cli.samplers.CHAIN_SAMPLERS`).

    Chain ``c`` at step ``t`` uses the counter uniforms ``Philox(seed, c, t)``; each kept step is written
    (and flushed) before the next starts. With ``records`` (a resumed run) the chains continue from each
    chain's last record, with the score written there. ``chains`` (a range, default all): the block of
    chains this process runs; the sampler's callables see it as the whole batch (``num_chains`` is
    its size), so chain ``c`` draws the same whichever block it is in.
    """
    import torch

    from textsampling.torch.randomness import counter_uniforms

    sampler = CHAIN_SAMPLERS[args.sampler]
    module = sampler.module()
    chains = range(args.num_chains) if chains is None else chains
    block = argparse.Namespace(**{**vars(args), "num_chains": len(chains)})  # what the sampler's callables see
    width = args.max_length
    chain_index = torch.arange(chains.start, chains.stop, device=device)  # (B,)

    def uniforms(step, count):
        return counter_uniforms(args.seed, chain_index, step, count, dtype=torch.float64, device=device)  # (B, count)

    target = sampler.target(block, model, keyword_ids)
    last = {}
    for record in records:
        last[record["chain"]] = record  # records are in step order
    first_step = (max(r["step"] for r in records) + 1) if records else 0
    if records:  # the state after the last step on disk
        x0 = torch.full((len(chains), width), -1, dtype=torch.int64, device=device)  # (B, L) PAD
        for row, chain in enumerate(chains):
            tokens = last[chain]["tokens"]
            x0[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
        state = module.init(x0, *target, **sampler.init_params(block))
        state = sampler.from_records(state, [last[chain] for chain in chains])
    else:
        state = module.init(sampler.start(block, target, uniforms), *target, **sampler.init_params(block))
    count = module.num_uniforms(**sampler.uniform_params(block))
    writer = _StepWriter(output, model, _keyword_list(args) if sampler.keywords else (), chains)
    statistics = statistics if statistics is not None else _RunningStatistics(args.sampler)
    with _progress(args, first_step, args.num_steps, show_progress) as bar:
        for step in range(first_step, args.num_steps):
            before = state
            state, info = module.step(uniforms(step, count), state, *target, **sampler.step_params(block, step))
            statistics.update(sampler.moved(before, state, info).cpu(),
                              sampler.score(state).cpu() if sampler.score is not None else None)
            if (step + 1) % args.keep_every == 0 or step == args.num_steps - 1:
                writer.write_step(step, sampler.sentences(state), sampler.to_record(target, before, state, info))
            bar.set_postfix_str(statistics.postfix(), refresh=False)
            bar.update(1)
            if interrupt_after_step is not None and step == interrupt_after_step:
                raise KeyboardInterrupt


def _run_decoding(args, model, records, output, num_chains, device, *, chains=None, show_progress=True) -> None:
    """Decode the sentences of ``chains`` (default: all) not in ``records``, 64 at a time, into ``output``."""
    import torch

    from textsampling.torch import decoding
    from textsampling.torch.randomness import counter_uniforms

    chains = range(num_chains) if chains is None else chains
    done = {r["chain"] for r in records}
    if args.sampler in SINGLE_SENTENCE_SAMPLERS:
        if not done and 0 in chains:
            if args.sampler == "beam":
                result = decoding.beam_search(model, args.num_beams, args.max_length)
                tokens, ended, extra = torch.as_tensor(result.tokens), bool(result.ended), {"score": result.score}
            else:  # greedy: the uniforms only give the length; every choice is an argmax
                shape_only = torch.full((1, args.max_length), 0.5, dtype=torch.float64, device=device)
                result = decoding.decode(shape_only, model, greedy=True)
                tokens, ended, extra = result.tokens[0], bool(result.ended[0]), {}
            content = [int(t) for t in tokens.cpu().numpy() if t != -1]
            record = {"chain": 0, "step": 0, "tokens": content, "text": _text(model, content), **extra,
                      "ended": ended, "truncated": not ended}
            output.write(json.dumps(record) + "\n")
            output.flush()
        return
    top_k = args.top_k if args.sampler == "topk" else None
    top_p = args.top_p if args.sampler == "topp" else None
    batch = 64  # sentences written batch by batch, so a resumed run skips the finished ones
    with _progress(args, len(done.intersection(chains)), len(chains), show_progress) as bar:
        for start in range(chains.start, chains.stop, batch):
            todo = [c for c in range(start, min(start + batch, chains.stop)) if c not in done]
            if not todo:
                continue
            index = torch.tensor(todo, device=device)
            uniforms = counter_uniforms(args.seed, index, 0, args.max_length, dtype=torch.float64, device=device)
            result = decoding.decode(uniforms, model, args.temperature, top_k, top_p)
            rows = [[t for t in row if t != -1] for row in result.tokens.cpu().tolist()]
            ended_rows = result.ended.cpu().tolist()
            lines = []
            for row, chain, text, ended in zip(rows, todo, _texts(model, rows), ended_rows, strict=True):
                ended = bool(ended)
                record = {"chain": chain, "step": 0, "tokens": row, "text": text, "ended": ended,
                          "truncated": not ended}
                lines.append(json.dumps(record) + "\n")
            output.write("".join(lines))
            output.flush()
            bar.update(len(todo))


# ----------------------------------------------------------------------------- metrics
def _best_of_run(sampler: str) -> bool:
    return sampler in CHAIN_SAMPLERS and CHAIN_SAMPLERS[sampler].best_of_run


def _report(args, folder: Path, model, causal_lm, statistics=None) -> dict:
    """Metrics of each chain's final sentence (``anneal``: its best): distinct-1/2, self-BLEU, perplexity.

    Prints the sentences (a decoded one that reached ``--max-length`` without END ends in
    ``[truncated]``), the metrics, and the acceptance rate and mean log rho / energy of this run. After
    a chain run, also writes the mixing report of the whole ``samples.jsonl`` (:mod:`textsampling.cli.mixing`:
    ``mixing.json``, ``mixing.md``, ``traces.png``) and prints its summary.
    """
    from textsampling import metrics

    records = _validated_records(folder / "samples.jsonl", args)
    final = {}
    for record in records:
        if _best_of_run(args.sampler):  # a search: report each chain's best sentence, not its last
            best = final.get(record["chain"])
            if best is not None and best["log_prob"] >= record["log_prob"]:
                continue
        final[record["chain"]] = record
    texts = [final[c]["text"] for c in sorted(final)]
    token_rows = [final[c]["tokens"] for c in sorted(final)]
    truncated = [bool(final[c].get("truncated", False)) for c in sorted(final)]
    nonempty = [text for text in texts if text.strip()]
    report = {
        "sampler": args.sampler,
        "num_sentences": len(texts),
        "num_truncated": sum(truncated),
        "distinct_1": metrics.distinct_n(nonempty, 1),
        "distinct_2": metrics.distinct_n(nonempty, 2),
        # the sacrebleu convention (mean smoothed sentence BLEU): `textsampling evaluate` gives all three, named
        "self_bleu_sacrebleu": metrics.self_bleu(nonempty, convention="sacrebleu") if len(nonempty) > 1 else None,
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
    if args.sampler == "beam":
        print(f"beam search returns one sentence: the highest-scoring of --num-beams {args.num_beams} beams")
    elif args.sampler == "greedy":
        print("greedy decoding returns one sentence: the most probable token at each position")
    lines = (f"[{c}] {text}" + (" [truncated]" if cut else "") for c, (text, cut) in enumerate(zip(texts, truncated)))
    print("\n".join(lines))
    if any(truncated):
        print(f"[truncated]: {sum(truncated)} of {len(texts)} sentences reached --max-length {args.max_length} "
              "without END (a longer --max-length lets them finish)")
    print("metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in report.items()))
    summary = statistics.summary() if statistics is not None else ""
    if summary:
        print(summary)
    if args.sampler in MCMC_SAMPLERS:
        from textsampling.cli import mixing

        mixed = mixing.write_report(folder, records, args.sampler, args.num_steps, args.keep_every)
        print("\n".join(mixing.summary_lines(mixed)))
        print(f"mixing report: {folder / 'mixing.md'} (numbers: mixing.json; plot: {folder / 'traces.png'})")
    print(f"written to {folder}")
    return report


if __name__ == "__main__":
    sys.exit(main())
