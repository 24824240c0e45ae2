"""The train stage: LoRA fine-tuning of a causal LM on list-format examples.

    from cefrtune.train import train
    result = train(config, train_examples, eval_examples, out_dir)

`train` is setup -> fit -> finish, read top to bottom. `setup` tokenizes (refusing any example
longer than max_seq_length) and builds the LoRA model with the frozen base in bf16 and the adapter
in fp32; `fit` runs the epochs: shuffle with (seed, epoch), step through accumulation windows
(`_step`), evaluate, keep the best adapter, write a checkpoint, and stop once the eval loss has
not improved for `early_stopping_patience` epochs (`_end_epoch`); `finish` returns what the report
needs. Where training stands is a `TrainState`, which each checkpoint saves and a resume restores.
Freed heap memory goes back to the system after each step (`cefrtune.memory`). The loss is
token-weighted over the whole effective batch (every rank, every micro-batch), so one process and
N processes with the same global batch give the same result. It runs unchanged under
`accelerate launch` / `torchrun` (DDP; gloo on CPU, NCCL on GPU): the data is sharded per rank
and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from cefrtune import memory
from cefrtune.config import RunConfig, changed_fields, to_dict
from cefrtune.errors import CheckpointError
from cefrtune.examples import Example
from cefrtune.features import collate, tokenize_examples
from cefrtune.files import atomic_folder, recover_folder
from cefrtune.loss import IGNORE, CausalLMLoss
from cefrtune.prompts import PromptStyle

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass
class TrainResult:
    adapter_dir: Path
    steps_per_epoch: int
    total_steps: int
    train_runtime_s: float
    train_tokens: int
    train_tokens_per_s: float
    initial_train_loss: float
    final_train_loss: float
    best_eval_loss: float
    best_eval_epoch: int
    steps_run: int
    epochs_run: int
    stopped_early: bool
    world_size: int
    effective_batch: int
    history: list[dict] = field(default_factory=list)


@dataclass
class TrainState:
    """Where training stands: what each checkpoint saves (as trainer_state.json) and a resume restores."""

    epoch: int = 0
    """Epochs finished."""
    global_step: int = 0
    """Optimizer steps taken."""
    history: list[dict] = field(default_factory=list)
    """One record per step (loss, learning rate, grad norm, tokens/s) and per epoch (eval loss)."""
    best_eval_loss: float = math.inf
    best_eval_epoch: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
    stopped_early: bool = False
    world_size: int | None = None
    """Processes it was trained with (a resume must use as many)."""
    config: dict | None = None
    """The configuration it was trained with (a resume refuses another)."""

    @classmethod
    def from_json(cls, record: dict) -> TrainState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})


@dataclass
class Training:
    """Everything `setup` prepares and `fit` steps through: the model wrapped for the loss, its
    optimizer and schedule, the tokenized examples and the step plan."""

    accelerator: object
    model: object
    tokenizer: object
    style: PromptStyle
    loss_model: CausalLMLoss
    optimizer: torch.optim.Optimizer
    scheduler: object
    trainable: list[torch.nn.Parameter]
    train_features: list[dict]
    eval_features: list[dict]
    window: int
    """Examples per micro-step, all ranks together."""
    steps_per_epoch: int
    total_steps: int
    out_dir: Path

    @property
    def adapter_dir(self) -> Path:
        return self.out_dir / "adapter"

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints" / "last"


def train(
    config: RunConfig,
    train_examples: list[Example],
    eval_examples: list[Example],
    out_dir: str | Path,
    resume: bool = False,
    model=None,
    tokenizer=None,
) -> TrainResult:
    """Fine-tune `config.model` (or the given model/tokenizer) with LoRA; write the best adapter
    to `out_dir/adapter`, checkpoints to `out_dir/checkpoints`, TensorBoard events to
    `out_dir/tensorboard`. Returns what the report needs."""
    training = setup(config, train_examples, eval_examples, Path(out_dir), model, tokenizer)
    state = resume_state(training, config) if resume else TrainState()
    fit(training, state, config)
    return finish(training, state, config)


def setup(config: RunConfig, train_examples: list[Example], eval_examples: list[Example], out_dir: Path,
          model=None, tokenizer=None) -> Training:
    """Load the model (frozen base in bf16 or fp32), add the LoRA adapter (fp32), tokenize the
    examples, and build the loss, optimizer and learning-rate schedule."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import LoraConfig, get_peft_model

    from cefrtune import models

    if config.threads:
        torch.set_num_threads(config.threads)
    accelerator = Accelerator(cpu=models.pick_device(config.device).type == "cpu")
    world = accelerator.num_processes
    set_seed(config.seed)
    if config.backend == "unsloth":
        from cefrtune import unsloth_backend

        unsloth_backend.check_unsloth(world)
        model, tokenizer = unsloth_backend.load(config, str(models.resolve(config.model).path),
                                                DTYPES[config.train_dtype])
    else:
        if model is None:
            model, tokenizer, _ = models.load(config.model, dtype=DTYPES[config.train_dtype],
                                              device=accelerator.device)
        else:
            models.to_dtype(model, DTYPES[config.train_dtype])
        attention = config.attention or ("eager" if accelerator.device.type == "cpu" else None)
        if attention:
            model.set_attn_implementation(attention)
        for p in model.parameters():
            p.requires_grad_(False)
    style = PromptStyle.for_tokenizer(tokenizer, name_words=config.name_words)
    if config.backend == "torch":
        # The stop token's row trains with the adapter (see RunConfig.train_stop_token).
        trained_tokens = style.stop_token_ids(tokenizer) if config.train_stop_token else []
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=config.target_modules, bias="none", task_type="CAUSAL_LM",
                          trainable_token_indices=trainable_token_indices(model, trained_tokens))
        model = get_peft_model(model, lora, autocast_adapter_dtype=True)  # adapter weights in fp32
    train_features = tokenize_examples(train_examples, tokenizer, style, config.loss_on, config.max_seq_length)
    eval_features = tokenize_examples(eval_examples, tokenizer, style, config.loss_on, config.max_seq_length)

    if config.train_dtype == "bf16" and config.backend == "torch":
        _keep_lora_inputs_bf16(model)
    planned_tokens = sum(len(f["input_ids"]) for f in train_features) * config.num_train_epochs
    use_compile = config.backend == "torch" and _should_compile(config, accelerator.device, planned_tokens)
    loss_model = CausalLMLoss(model, config.loss_chunk_size, compiled=use_compile)
    if use_compile:
        compiled = _compile_layers(model)
        if accelerator.is_main_process:
            print(f"cefrtune: compiling {compiled} decoder layers (one graph, reused) and the loss's softmax; "
                  "the first step waits for it", flush=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)

    window = config.per_device_train_batch_size * world
    steps_per_epoch = math.ceil(len(train_features) / (window * config.gradient_accumulation_steps))
    total_steps = steps_per_epoch * config.num_train_epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    warmup = math.ceil(config.warmup_ratio * total_steps)
    scheduler = _scheduler(optimizer, config.lr_scheduler, warmup, total_steps)
    loss_model, optimizer = accelerator.prepare(loss_model, optimizer)
    return Training(accelerator, model, tokenizer, style, loss_model, optimizer, scheduler, trainable, train_features,
                    eval_features, window, steps_per_epoch, total_steps, out_dir)


def resume_state(training: Training, config: RunConfig) -> TrainState:
    """The state of the last checkpoint, loaded into the model, optimizer and schedule (after
    repairing what a crash during a folder swap left)."""
    accelerator, folder = training.accelerator, training.checkpoint_dir
    world = accelerator.num_processes
    if accelerator.is_main_process:
        recover_folder(folder)
        recover_folder(training.adapter_dir)
    accelerator.wait_for_everyone()
    state = TrainState.from_json(_load_checkpoint(folder, training.model, training.optimizer, training.scheduler,
                                                  config))
    if state.world_size is not None and state.world_size != world:
        raise RuntimeError(f"{folder}: written with {state.world_size} processes; resume with the same number "
                           f"(now {world})")
    if accelerator.is_main_process:
        print(f"cefrtune: resuming after epoch {state.epoch} (step {state.global_step})", flush=True)
    return state


def fit(training: Training, state: TrainState, config: RunConfig) -> None:
    """The epochs: shuffle with (seed, epoch), step through accumulation windows, then evaluate,
    keep the best adapter, write a checkpoint, and stop early once the eval loss stops improving."""
    from tqdm.auto import tqdm

    accelerator = training.accelerator
    main = accelerator.is_main_process
    writer = _tensorboard(training.out_dir / "tensorboard") if main else None
    bar = tqdm(total=training.total_steps, initial=state.global_step, desc=f"train {config.level}", unit="step",
               disable=not main)
    # The frozen base is bf16; autocast runs the fp32 LoRA matmuls in bf16 too (the adapter's
    # master weights and optimizer state stay fp32). Only the small LoRA weights are cast per step.
    autocast = torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=config.train_dtype == "bf16")
    span = training.window * config.gradient_accumulation_steps  # examples per optimizer step
    for epoch in range(state.epoch + 1, config.num_train_epochs + 1):
        if state.global_step >= training.total_steps or state.stopped_early:
            break
        training.model.train()
        shuffle = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        order = torch.randperm(len(training.train_features), generator=shuffle).tolist()
        windows = [order[i : i + span] for i in range(0, len(order), span)]
        for number, step_ids in enumerate(windows, start=1):
            if state.global_step >= training.total_steps:
                break
            record = _step(training, config, step_ids, autocast)
            state.global_step += 1
            state.train_tokens += record["tokens"]
            state.train_seconds += record["seconds"]
            record = {"step": state.global_step, "epoch": round(epoch - 1 + number / len(windows), 4), **record}
            state.history.append(record)
            if writer:
                for key in ("loss", "learning_rate", "grad_norm", "tokens_per_s"):
                    writer.add_scalar(f"train/{key}", record[key], record["step"])
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            bar.update(1)
        _end_epoch(training, state, config, epoch, autocast, writer, bar)
    bar.close()
    if writer:
        writer.close()


def _step(training: Training, config: RunConfig, step_ids: list[int], autocast) -> dict:
    """One optimizer step over the examples `step_ids` (all ranks): forward and backward in
    micro-batches, then clip and step. Returns the step's record (without step and epoch)."""
    accelerator, features = training.accelerator, training.train_features
    world, rank = accelerator.num_processes, accelerator.process_index
    started = time.perf_counter()
    window_tokens = sum(features[i]["n_labels"] for i in step_ids)
    # This rank's share of each micro-step, cut into micro-batches of similar lengths:
    # the loss is a token sum, so the split changes memory and padding, not the result.
    pieces = []
    for i in range(0, len(step_ids), training.window):
        mine = sorted(step_ids[i : i + training.window][rank::world], key=lambda j: len(features[j]["input_ids"]))
        size = config.micro_batch_size or len(mine) or 1
        pieces += [mine[k : k + size] for k in range(0, len(mine), size)] or [[]]
    loss_total = torch.zeros((), device=accelerator.device)
    tokens_seen = 0
    for m, piece in enumerate(pieces):
        batch = collate([features[i] for i in piece] or [_empty_like(features[0])], training.tokenizer.pad_token_id,
                        accelerator.device, config.pad_to_multiple_of)
        tokens_seen += int(batch["attention_mask"].sum())
        sync = m == len(pieces) - 1
        context = accelerator.no_sync(training.loss_model) if not sync and world > 1 else contextlib.nullcontext()
        with context, autocast:
            loss_sum, _ = training.loss_model(**batch)
            # DDP averages gradients over ranks; scale so the result is the global token mean.
            accelerator.backward(loss_sum * world / window_tokens)
        loss_total += loss_sum.detach()
        if config.heap_trim_above_gb:
            memory.trim_if_above(config.heap_trim_above_gb * 1024)
    grad_norm = accelerator.clip_grad_norm_(training.trainable, config.max_grad_norm)
    training.optimizer.step()
    training.scheduler.step()
    training.optimizer.zero_grad(set_to_none=True)
    memory.release()
    loss_total = accelerator.reduce(loss_total, "sum")
    tokens = int(accelerator.reduce(torch.tensor(tokens_seen, device=accelerator.device), "sum"))
    seconds = time.perf_counter() - started
    return {
        "loss": float(loss_total) / window_tokens,
        "learning_rate": training.scheduler.get_last_lr()[0],
        "grad_norm": float(grad_norm),
        "tokens_per_s": tokens / seconds,
        "tokens": tokens,
        "seconds": seconds,
    }


def _end_epoch(training: Training, state: TrainState, config: RunConfig, epoch: int, autocast, writer, bar) -> None:
    """Evaluate, keep the adapter if it is the best so far, decide on early stopping, write the checkpoint."""
    accelerator = training.accelerator
    main = accelerator.is_main_process
    with autocast:
        eval_loss = evaluate_features(training.loss_model, training.eval_features, config.per_device_eval_batch_size,
                                      training.tokenizer.pad_token_id, accelerator, config.pad_to_multiple_of)
    memory.release()
    state.history.append({"step": state.global_step, "epoch": epoch, "eval_loss": eval_loss})
    if writer:
        writer.add_scalar("eval/loss", eval_loss, state.global_step)
        writer.flush()
    unwrapped = accelerator.unwrap_model(training.loss_model).model
    if eval_loss < state.best_eval_loss:
        state.best_eval_loss, state.best_eval_epoch = eval_loss, epoch
        if main:
            _save_adapter(unwrapped, training.adapter_dir, training.style, training.tokenizer)
    state.epoch = epoch
    state.world_size = accelerator.num_processes
    state.config = to_dict(config)
    patience = config.early_stopping_patience
    state.stopped_early = bool(patience and epoch - state.best_eval_epoch >= patience
                               and epoch < config.num_train_epochs and state.global_step < training.total_steps)
    if main:
        bar.write(f"epoch {epoch}: eval loss {eval_loss:.4f} (best {state.best_eval_loss:.4f} at epoch "
                  f"{state.best_eval_epoch})"
                  + (f"; no better eval loss for {patience} epochs: stopping early" if state.stopped_early else ""))
        _save_checkpoint(training.checkpoint_dir, unwrapped, training.optimizer, training.scheduler, asdict(state))
    accelerator.wait_for_everyone()


def finish(training: Training, state: TrainState, config: RunConfig) -> TrainResult:
    """What the report needs from the training that ran."""
    train_losses = [h["loss"] for h in state.history if "loss" in h]
    world = training.accelerator.num_processes
    return TrainResult(
        adapter_dir=training.adapter_dir,
        steps_per_epoch=training.steps_per_epoch,
        total_steps=training.total_steps,
        train_runtime_s=state.train_seconds,
        train_tokens=state.train_tokens,
        train_tokens_per_s=state.train_tokens / max(state.train_seconds, 1e-9),
        initial_train_loss=train_losses[0] if train_losses else math.nan,
        final_train_loss=train_losses[-1] if train_losses else math.nan,
        best_eval_loss=state.best_eval_loss,
        best_eval_epoch=state.best_eval_epoch,
        steps_run=state.global_step,
        epochs_run=state.epoch,
        stopped_early=state.stopped_early,
        world_size=world,
        effective_batch=config.effective_batch(world),
        history=state.history,
    )


@torch.no_grad()
def evaluate_features(
    loss_model, features: list[dict], batch_size: int, pad_id: int, accelerator=None, multiple: int = 1
) -> float:
    """Token-weighted mean NLL over `features`, sharded over ranks when `accelerator` has several."""
    world = accelerator.num_processes if accelerator else 1
    rank = accelerator.process_index if accelerator else 0
    device = accelerator.device if accelerator else next(loss_model.parameters()).device
    was_training = loss_model.training
    loss_model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    # Sort by length so batches carry little padding.
    mine = sorted(features[rank::world], key=lambda f: len(f["input_ids"]))
    for start in range(0, len(mine), batch_size):
        loss_sum, n = loss_model(**collate(mine[start : start + batch_size], pad_id, device, multiple))
        total += loss_sum.double()
        count += n.double()
    if accelerator and world > 1:
        total, count = accelerator.reduce(total, "sum"), accelerator.reduce(count, "sum")
    loss_model.train(was_training)
    return float(total / count)


def _keep_lora_inputs_bf16(model) -> None:
    """PEFT casts each LoRA layer's input to the adapter's dtype (fp32) and autocast casts it back
    to bf16 for the matmul: two copies of every activation, for nothing. Under autocast the input
    can stay bf16 (measured: 1.26 s -> 0.75 s of copies a step, about 10 % of the step)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False


COMPILE_MIN_TOKENS = 100_000


def _should_compile(config: RunConfig, device: torch.device, planned_tokens: int) -> bool:
    """`compile: null` (the default) compiles on CPU when the run trains on at least
    COMPILE_MIN_TOKENS tokens: the compile (about 50 s cold, seconds from the cache) is then
    repaid many times over."""
    if config.compile is not None:
        return bool(config.compile)
    return device.type == "cpu" and planned_tokens >= COMPILE_MIN_TOKENS


def _compile_layers(model) -> int:
    """Compile each decoder layer in place (regional compilation): the layers share their code,
    so one graph serves all of them and the compile takes seconds, not minutes; elementwise work
    (norms, activations, rotary, LoRA scaling, residual adds) is fused between the matmuls."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(base.get_decoder(), "layers", None)
    if layers is None:
        return 0
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


def trainable_token_indices(model, token_ids: list[int]):
    """PEFT's `trainable_token_indices` for rows `token_ids`: a plain list for a tied embedding and
    head (PEFT trains the shared row in both), the embedding's and the head's module names
    otherwise (an untied head's row decides whether the token is ever predicted). None for none."""
    if not token_ids:
        return None
    if getattr(model.config, "tie_word_embeddings", False):
        return list(token_ids)
    names = {module: name.rsplit(".", 1)[-1] for name, module in model.named_modules()}
    return {names[model.get_input_embeddings()]: list(token_ids), names[model.get_output_embeddings()]: list(token_ids)}


def _empty_like(feature: dict) -> dict:
    """A feature with no counted label, for a rank that has no example in a micro-step."""
    return {"input_ids": feature["input_ids"][:2], "labels": [IGNORE, IGNORE], "n_labels": 0}


def _scheduler(optimizer, kind: str, warmup: int, total: int):
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    make = get_linear_schedule_with_warmup if kind == "linear" else get_cosine_schedule_with_warmup
    return make(optimizer, num_warmup_steps=warmup, num_training_steps=total)


def _tensorboard(folder: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder))


def _save_adapter(model, folder: Path, style: PromptStyle, tokenizer) -> None:
    with atomic_folder(folder) as tmp:
        model.save_pretrained(tmp)
        style.save(tmp)
        tokenizer.save_pretrained(tmp)
        style.save_chat_template(tmp)


def _save_checkpoint(folder: Path, model, optimizer, scheduler, state: dict) -> None:
    """Tensors only (loaded back with `weights_only=True`: no pickled code runs on resume) plus
    the trainer state, with the configuration it was trained with, as JSON."""
    trainable = {k: v.detach().cpu() for k, v in model.named_parameters() if v.requires_grad}
    with atomic_folder(folder) as tmp:
        torch.save({"model": trainable, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state()}, tmp / "state.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))


def _load_checkpoint(folder: Path, model, optimizer, scheduler, config: RunConfig | None = None) -> dict:
    """Restore a checkpoint written by `_save_checkpoint`, refusing one that holds anything but
    tensors and plain values, one written with another training configuration, and one whose
    adapter tensors do not fit the model."""
    import pickle

    if not (folder / "state.pt").exists() or not (folder / "trainer_state.json").exists():
        raise CheckpointError(f"{folder}: no checkpoint to resume from (train at least one epoch first)")
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{folder}/trainer_state.json: unreadable ({err}); "
                              "start a new run with another --output") from None
    if config is not None and isinstance(state.get("config"), dict):
        changed = changed_fields(state["config"], config)
        if changed:
            raise CheckpointError(f"{folder}: written with another configuration ({', '.join(changed)}); resume "
                                  "with the run's own config.yaml, or start a new run with another --output")
    try:
        saved = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{folder}/state.pt: refused, it is not a cefrtune checkpoint of plain tensors "
                              f"({first}); nothing in it was run. Start a new run with another --output") from None
    if not isinstance(saved, dict) or not {"model", "optimizer", "scheduler", "rng"} <= set(saved):
        raise CheckpointError(f"{folder}/state.pt: not a cefrtune checkpoint "
                              "(expected model, optimizer, scheduler and rng)")
    params = dict(model.named_parameters())
    wrong = [name for name, value in saved["model"].items()
             if name not in params or not isinstance(value, torch.Tensor) or value.shape != params[name].shape]
    missing = [name for name, p in params.items() if p.requires_grad and name not in saved["model"]]
    if wrong or missing:
        raise CheckpointError(f"{folder}/state.pt: its adapter does not fit this model ({len(wrong)} tensor(s) of "
                              f"another name or shape, {len(missing)} missing, e.g. {(wrong + missing)[0]}); resume "
                              "with the run's own config.yaml, or start a new run")
    for name, value in saved["model"].items():
        params[name].data.copy_(value)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    return state
