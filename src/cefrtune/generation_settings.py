"""The generation defaults, written once: what `cefrtune generate`, the Python API, runs and the server use.

    from cefrtune.generation_settings import GENERATION
    generate_checked(model, tokenizer, style, requests)  # attempts=GENERATION.attempts, ...

`GENERATION` is a frozen `GenerationSettings`; the argparse defaults of `cefrtune generate` and
`cefrtune serve`, the keyword defaults of cefrtune.generation and cefrtune.generate, the
generation fields of `RunConfig` and the server's loader all read it, so a default changed here
changes everywhere (tests/test_generation_settings.py checks that they agree). It imports nothing
from cefrtune, so the configuration can read it without loading a model library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationSettings:
    batch_size: int = 32
    """Word lists decoded together. Decoding is memory-bound on a CPU (every step reads all
    weights), so large batches cost little more per step than small ones."""
    max_new_tokens: int = 384
    """Tokens a generated list may have where no data says more (`cefrtune generate`, the server);
    a run gives 1.5 x the longest reference answer of its data instead (`RunConfig.max_new_tokens`)."""
    dtype: str = "bf16"
    """Weights dtype while generating ("bf16" halves the memory traffic of each decoding step, or "fp32")."""
    temperature: float = 0.9
    top_p: float = 0.95
    """The sampler: of checked generation's regeneration rounds, and of raw generation when it samples
    (greedy is the default there)."""
    seed: int = 0
    """Seed of the sampler (a run seeds its generation with `RunConfig.seed` instead)."""
    attempts: int = 6
    """Checked generation: regeneration rounds for failing sentences (0 turns checking off)."""
    free_attempts: int | None = 1
    """Unsteered regeneration rounds before steering starts (None: never steer); measured in
    benchmarks/checked_generation.py."""
    candidates: int = 4
    """Sentences sampled for each failing sentence in a steered round (the passing one the model
    finds most probable on its own is kept)."""
    free_candidates: int = 1
    """... and in each unsteered round. Measured in benchmarks/checked_generation.py with the default
    run's model: one candidate a round passes 94.4 %; 4 a round 99.4 %; 1 in the free round, then 4
    steered: 100 %, and the fastest of the three with several candidates."""
    polish: int = 0
    """Checked generation's last round: sentences sampled for every sentence that passes; the one the model
    finds most probable on its own, the sentence itself included, is kept (0: no such round). Off: with 4,
    the default model's greedy sentence stayed the most probable for 183 of 195, and blind-rated
    teacher-usable did not move (docs/rating.md)."""


GENERATION = GenerationSettings()
