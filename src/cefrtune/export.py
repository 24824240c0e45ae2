"""The export stage: a run's merged model -> one GGUF file for llama.cpp, and an Ollama Modelfile.

    cefrtune export runs/a1-... --gguf                      # q8_0, written to runs/a1-.../gguf/
    cefrtune export runs/a1-... --gguf --quant q4_k_m --ollama
    from cefrtune.export import export; export("runs/a1-...", quant="f16", ollama=True)

The GGUF is written with the `gguf` package (the one llama.cpp's own converter uses), not with
llama.cpp's `convert_hf_to_gguf.py`: that script (shipped in the llama-cpp-python source package,
not in its wheel) reads Gemma's vocabulary from a SentencePiece `tokenizer.model`, which a model
cefrtune converted from the embedded GGUF does not have, and otherwise refuses a tokenizer.json
whose pre-tokenizer hash it does not know. The embedded base *is* a GGUF, so its vocabulary
(tokens, scores, types, special ids) is copied from there byte for byte; the hyperparameters come
from the merged model's config, the tensors from its safetensors (Gemma's norm weights + 1, as
llama.cpp stores them), quantized to f16 or q8_0 by `gguf`. q4_k_m goes through llama.cpp's own
quantizer (`llama_model_quantize` in llama-cpp-python) from an f16 file. The file carries the chat
template that renders the training prompt (`tokenizer.chat_template`) and the end-of-turn token
as `eot_token_id`, so llama.cpp stops there by itself. With `ollama`, a `Modelfile` beside it
(FROM, TEMPLATE, PARAMETER stop / num_predict / temperature) lets `ollama create NAME -f Modelfile`
import it. Supported: models on the embedded Gemma-3 base (the default); others are refused with
what to do instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from cefrtune.errors import UserError
from cefrtune.files import write_text_atomic
from cefrtune.prompts import PromptStyle

QUANTS = ("q8_0", "f16", "q4_k_m")
DEFAULT_QUANT = "q8_0"
ARCHITECTURES = {"Gemma3ForCausalLM": "gemma3"}
# Tensors llama.cpp stores as (1 + w) where transformers keeps w (Gemma's RMSNorm scales by 1 + w).
NORM_SHIFT = {"gemma3": 1.0}


class ExportError(UserError):
    """A model that cannot be exported, with what to do instead (the CLI prints it without a traceback)."""


def export(
    run_dir: str | Path, quant: str = DEFAULT_QUANT, ollama: bool = False, out_dir: str | Path | None = None
) -> dict:
    """Write `<out_dir>/cefrtune-<level>-<quant>.gguf` (default out_dir: RUN/gguf) and, with
    `ollama`, a `Modelfile` beside it; returns {"gguf", "bytes", "modelfile"}. `run_dir` is a run
    folder or a merged model folder."""
    if quant not in QUANTS:
        raise ExportError(f"--quant {quant}: not one of {', '.join(QUANTS)}")
    run_dir = Path(run_dir)
    model_dir = run_dir / "merged" if (run_dir / "merged").is_dir() else run_dir
    if not (model_dir / "config.json").exists():
        raise ExportError(
            f"{run_dir}: neither a run folder with merged/ nor a model folder (no config.json); "
            "pass the folder `cefrtune run` wrote"
        )
    style = PromptStyle.load(model_dir)
    info = _read_json(model_dir / "cefrtune_model.json")
    out_dir = Path(out_dir) if out_dir else run_dir / "gguf"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"cefrtune-{info.get('level', 'model').lower()}-{quant}.gguf"
    partial = target.with_name(target.name + ".partial")  # renamed once complete: never a half-written file
    if quant == "q4_k_m":
        f16 = target.with_name(target.name + ".f16.partial")
        write_gguf(model_dir, f16, "f16", style)
        quantize(f16, partial, "q4_k_m")
        f16.unlink()
    else:
        write_gguf(model_dir, partial, quant, style)
    partial.replace(target)
    result = {"gguf": str(target), "bytes": target.stat().st_size, "modelfile": None}
    if ollama:
        generation = _read_json(model_dir / "generation_config.json")
        path = out_dir / "Modelfile"
        write_text_atomic(path, modelfile(target.name, style, generation.get("max_new_tokens")))
        result["modelfile"] = str(path)
    return result


def write_gguf(model_dir: str | Path, path: str | Path, quant: str, style: PromptStyle) -> Path:
    """The merged model at `model_dir` as one GGUF file in `quant` ("f16", "q8_0" or "f32")."""
    import gguf
    from safetensors import safe_open

    model_dir, path = Path(model_dir), Path(path)
    config = _read_json(model_dir / "config.json")
    info = _read_json(model_dir / "cefrtune_model.json")
    arch = ARCHITECTURES.get((config.get("architectures") or ["?"])[0])
    reader = gguf.GGUFReader(_base_gguf(info.get("base_model"), arch, config))
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(f"cefrtune {info.get('level', '')} ({reader.fields['general.name'].contents()})")
    writer.add_file_type(
        {
            "f32": gguf.LlamaFileType.ALL_F32,
            "f16": gguf.LlamaFileType.MOSTLY_F16,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        }[quant]
    )
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _hyperparameters(writer, config)
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            writer.add_key_value(
                key, field.contents(), field.types[0], field.types[-1] if len(field.types) > 1 else None
            )
    writer.add_chat_template(style.chat_template())
    stops = [i for i in _stop_ids(model_dir, style) if i != config.get("eos_token_id")]
    if stops:
        writer.add_eot_token_id(stops[0])
    names = gguf.TensorNameMap(gguf.MODEL_ARCH[arch.upper()], config["num_hidden_layers"])
    shift = NORM_SHIFT.get(arch, 0.0)
    files = sorted(model_dir.glob("*.safetensors"))
    for file in files:
        with safe_open(file, "pt") as tensors:
            for key in tensors.keys():
                if key == "lm_head.weight" and config.get("tie_word_embeddings", True):
                    continue
                name = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise ExportError(f"{file}: tensor {key} has no GGUF name for {arch}")
                data = tensors.get_tensor(key).float().numpy()
                if key.endswith("norm.weight"):
                    data = data + shift
                writer.add_tensor(name, *_encode(data, quant))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def quantize(source: str | Path, target: str | Path, quant: str = "q4_k_m") -> Path:
    """llama.cpp's own quantizer (as `llama-quantize` does) through llama-cpp-python."""
    try:
        import llama_cpp
    except ImportError as err:
        raise ExportError(
            "q4_k_m needs llama.cpp's quantizer: install llama-cpp-python (`bash scripts/setup.sh` "
            "builds it once, CPU only), or export --quant q8_0 / f16, which need only the gguf package"
        ) from err
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}[quant]
    if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params) != 0:
        raise ExportError(f"llama.cpp could not quantize {source} to {quant}")
    return Path(target)


def modelfile(gguf_name: str, style: PromptStyle, num_predict: int | None) -> str:
    """An Ollama Modelfile: the GGUF, the prompt as a Go template (what `ollama_prompt` renders),
    the stop strings, greedy decoding and the token limit."""
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{ollama_template(style)}"""']
    lines += [f'PARAMETER stop "{stop}"' for stop in style.stop_strings if stop]
    lines += ["PARAMETER temperature 0"]
    if num_predict:
        lines.append(f"PARAMETER num_predict {num_predict}")
    return "\n".join(lines) + "\n"


def ollama_template(style: PromptStyle) -> str:
    """The prompt as Ollama's Go template: `.Prompt` is the user message; Ollama renders the last
    turn up to `.Response` and adds BOS itself (the GGUF says add_bos_token)."""
    if style.kind == "chat_template":
        raise ExportError(
            "an Ollama TEMPLATE is written for cefrtune's own prompt layouts; "
            "this model uses its base's chat template (write the Modelfile's TEMPLATE by hand)"
        )
    for text in (style.user_prefix, style.assistant_prefix, style.assistant_suffix):
        if "{{" in text or '"""' in text:
            raise ExportError(f"prompt text {text!r} cannot go into a Go template literally")
    return style.user_prefix + "{{ .Prompt }}" + style.assistant_prefix + "{{ .Response }}" + style.assistant_suffix


def ollama_prompt(template: str, message: str) -> str:
    """What Ollama renders for one user message: `.Prompt` filled in, everything from `.Response`
    on cut (its rule for the turn being generated)."""
    return template.split("{{ .Response }}")[0].replace("{{ .Prompt }}", message)


def _encode(data, quant: str):
    """(array, raw_shape, raw_dtype) for GGUFWriter.add_tensor: 1-D tensors (norms) stay f32."""
    import gguf
    import numpy as np

    if data.ndim == 1 or quant == "f32":
        return data.astype(np.float32), None, None
    if quant == "f16":
        return data.astype(np.float16), None, None
    kind = gguf.GGMLQuantizationType.Q8_0
    return gguf.quants.quantize(data, kind), None, kind  # uint8 blocks: the writer derives the shape


def _hyperparameters(writer, config: dict) -> None:
    """Gemma-3's hyperparameters under llama.cpp's keys (what convert_hf_to_gguf writes)."""
    rope = config.get("rope_parameters") or {}
    theta = rope.get("full_attention", rope).get("rope_theta", config.get("rope_theta", 1_000_000.0))
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_key_length(config["head_dim"])
    writer.add_value_length(config["head_dim"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(theta)
    writer.add_sliding_window(config["sliding_window"])
    if config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(config["final_logit_softcapping"])


def _base_gguf(base_model: str | None, arch: str | None, config: dict) -> Path:
    """The embedded base GGUF (assembled from its PyPI package), whose vocabulary the export copies."""
    from cefrtune import models

    if arch is None or base_model != models.EMBEDDED:
        raise ExportError(
            f"GGUF export supports models tuned from the embedded {models.EMBEDDED} (this one: "
            f"{base_model}, {(config.get('architectures') or ['?'])[0]}); for others run llama.cpp's "
            "convert_hf_to_gguf.py on the merged folder"
        )
    if config.get("vocab_size") != 262144:
        raise ExportError(f"vocab_size {config.get('vocab_size')}: the embedded tokenizer has 262144 tokens")
    return models.embedded_gguf()


def _stop_ids(model_dir: Path, style: PromptStyle) -> list[int]:
    from transformers import AutoTokenizer

    return style.stop_token_ids(AutoTokenizer.from_pretrained(model_dir))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
