"""Generation defaults are written once (cefrtune.generation_settings.GENERATION) and every entry point reads them.

    pytest -q tests/test_generation_settings.py

The command line (`cefrtune generate`, `cefrtune serve`), the Python API (cefrtune.generation,
cefrtune.generate, cefrtune.decode, the server's scheduler), RunConfig and the server's loader
must agree with the settings object; a default typed anywhere else fails here.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from cefrtune import decode, generate, generation, scheduler, serve
from cefrtune.cli import build_parser
from cefrtune.config import RunConfig
from cefrtune.generation_settings import GENERATION, GenerationSettings

# keyword name in the API -> field of GenerationSettings
API_NAMES = {
    "batch_size": "batch_size",
    "max_new_tokens": "max_new_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "attempts": "attempts",
    "free_attempts": "free_attempts",
    "candidates": "candidates",
    "free_candidates": "free_candidates",
    "polish": "polish",
}


def test_the_settings_are_frozen_and_hold_what_runs_use():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GENERATION.batch_size = 1
    assert GENERATION == GenerationSettings()
    config = RunConfig()
    assert (config.generation_batch_size, config.checked_attempts, config.checked_candidates, config.generation_dtype) \
        == (GENERATION.batch_size, GENERATION.attempts, GENERATION.candidates, GENERATION.dtype)


def test_the_command_line_defaults_are_the_settings():
    parser = build_parser()
    args = parser.parse_args(["generate", "--model", "m", "--level", "A1", "--words", "ev"])
    assert (args.batch_size, args.max_new_tokens, args.temperature, args.top_p, args.seed) == \
        (GENERATION.batch_size, GENERATION.max_new_tokens, GENERATION.temperature, GENERATION.top_p, GENERATION.seed)
    assert (args.attempts, args.candidates, args.free_attempts, args.polish) == \
        (GENERATION.attempts, GENERATION.candidates, GENERATION.free_attempts, GENERATION.polish)
    assert args.sample is False
    assert parser.parse_args(["serve"]).attempts == GENERATION.attempts


@pytest.mark.parametrize("function", [
    generation.generate_lists, generation.generate_checked, generation.model_completer, generate.generate_into,
    generate.check_options, decode.decode_tokens, scheduler.DecodeScheduler.__init__,
    scheduler.DecodeScheduler.decode_tokens,
], ids=lambda f: f.__qualname__)
def test_the_python_api_defaults_are_the_settings(function):
    parameters = inspect.signature(function).parameters
    checked = [
        name for name in API_NAMES if name in parameters and parameters[name].default is not inspect.Parameter.empty
    ]
    assert checked, f"{function.__qualname__} takes none of the generation settings"
    for name in checked:
        assert parameters[name].default == getattr(GENERATION, API_NAMES[name]), f"{function.__qualname__}({name}=...)"


@pytest.mark.parametrize("function", [decode.decode_texts, scheduler.DecodeScheduler.decode_texts],
                         ids=lambda f: f.__qualname__)
def test_decode_texts_takes_decode_tokens_settings_unchanged(function):
    kinds = {p.kind for p in inspect.signature(function).parameters.values()}
    assert {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD} <= kinds
    assert not set(API_NAMES) & set(inspect.signature(function).parameters), "a setting of its own could drift"


def test_the_server_defaults_are_the_settings():
    for function in (serve.load, serve.serve):
        parameters = inspect.signature(function).parameters
        assert parameters["attempts"].default == GENERATION.attempts
    load = inspect.signature(serve.load).parameters
    assert load["batch_size"].default == GENERATION.batch_size
    assert load["max_new_tokens"].default == GENERATION.max_new_tokens
    generator_fields = {f.name: f.default for f in dataclasses.fields(serve.Generator)}
    assert generator_fields["max_new_tokens"] == GENERATION.max_new_tokens

