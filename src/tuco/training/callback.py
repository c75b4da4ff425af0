"""TuCo while you train: ``TucoCallback`` measures, on fixed probe sets, how much the fine-tune contributes
as training goes, against the model's starting point.

Every ``every`` optimizer steps (and at the start and the end) it scores each probe group on the model being
trained (``tuco.score``: TuCo at the last prompt token, and over a given response), in eval mode without
gradients, then puts back every module's training flag and every random number generator, so training goes
on exactly as without it. The per-group means go through the Trainer's ``log`` (so TensorBoard, W&B, trackio
and the console get them), the rows go to a run directory with the step as the checkpoint coordinate, and
watch rules can warn and stop training.

The starting point: for a PEFT model (LoRA ...) whose base weights are frozen, the same blocks with the
adapter switched off (no second copy of any weight); otherwise a frozen copy of the decoder blocks' starting
weights (``model_state.frozen_copy``: only the trainable ones are copied), on ``base_device``, or a
checkpoint given as ``base``.

Under ``Trainer`` (and TRL's trainers, which subclass it) it is a ``TrainerCallback``; any other training
loop drives the same object: ``begin(model)``, ``step_end(model, step)`` after each optimizer step (a
``Measurement`` when one was due; its ``stop`` says a watch rule wants training stopped), ``end()``.
"""

from __future__ import annotations

import copy
import logging
import os
import statistics
import time
import weakref
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn
from transformers import TrainerCallback

from tuco.errors import ConfigError, TrainingError
from tuco.training import model_state
from tuco.training.probes import ProbeInput, ProbeSet, probe_set, response_of
from tuco.training.watch import Watch, as_watches

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Trainer, TrainerControl, TrainerState, TrainingArguments

log = logging.getLogger("tuco.training")

METRICS = ("tuco", "tuco_response")
RUN_DIR = "tuco"  # the run's directory inside the Trainer's output_dir (when ``out`` is not given)


@dataclass
class Measurement:
    """One measurement at a training step: per group, mean TuCo and (groups with given responses) mean
    response TuCo; the rows written; the watch warnings; whether a watch rule asks to stop; its seconds."""

    step: int
    epoch: float | None
    means: dict[str, dict[str, float]]
    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    stop: bool = False
    seconds: float = 0.0

    def logs(self) -> dict[str, float]:
        """What goes through the Trainer's ``log``: ``tuco/GROUP`` and ``tuco_response/GROUP``."""
        return {f"{metric}/{group}": value for group, values in self.means.items() for metric, value in values.items()}


def group_means(rows: Sequence[dict[str, Any]]) -> dict[int, dict[str, dict[str, float]]]:
    """Per step, per group (the rows' ``condition``), the mean of ``tuco`` and of ``tuco_response`` over the
    rows that have it."""
    values: dict[int, dict[str, dict[str, list[float]]]] = {}
    for r in rows:
        step = r.get("step")
        if not isinstance(step, int):
            continue
        for metric in METRICS:
            v = r.get(metric)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values.setdefault(step, {}).setdefault(str(r.get("condition")), {}).setdefault(metric, []).append(float(v))
    return {
        s: {g: {m: statistics.fmean(v) for m, v in by_metric.items()} for g, by_metric in groups.items()} for s, groups in values.items()
    }


@dataclass
class _Session:
    """One training run being measured: the pair, the run, the history the watch rules read."""

    model: nn.Module
    pair: Any
    rank: int
    world: int
    stack: ExitStack
    run: Any = None
    shared: list[nn.Parameter] = field(default_factory=list)
    measured: set[int] = field(default_factory=set)
    history: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: float = 0.0
    seconds_before: float = 0.0  # measuring time of the run's earlier sessions (resumed)
    start: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class TucoCallback(TrainerCallback):
    """Measure TuCo on fixed probe sets while a model trains, against its starting point.

        trainer = Trainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        tuco.TucoCallback({"harmful": harmful_chats, "benign": benign_prompts}, every=50).attach(trainer)
        trainer.train()     # logs tuco/harmful, tuco_response/harmful, tuco/benign; rows in OUTPUT_DIR/tuco

    Args:
        probes: group name -> prompts (strings), chats (a chat ending with the assistant's message is scored
            over that response, teacher-forced: ``tuco_response``), ``tuco.Prompt``s, or a data source string
            (``"builtin:harmful-broad"``, a prompt file).
        every: measure every N optimizer steps (and at the start and at the end of training).
        out: the run directory (default: ``OUTPUT_DIR/tuco`` under a Trainer; None in a custom loop: no run).
        tokenizer: default the Trainer's ``processing_class`` (a copy is used: the training one is untouched).
        base: the starting point of a full fine-tune as a model or a checkpoint directory (default: a frozen
            copy of the decoder blocks' weights taken when training begins). Needed to resume a full fine-tune.
        base_device: where that copy lives (default: the training device; ``"cpu"`` offloads it).
        chat: apply the chat template (None: when the tokenizer has one), for all groups or per group
            (``{"web": False}``: web text is scored raw).
        system: system prompt for the chat template.
        limit: keep this many prompts per group (spread evenly).
        batch_size: probes per forward pass.
        fast: take the engine's fast path (the pre-trained blocks at the last token only): cheaper, and TuCo
            within ~1e-6 of the exact value, but an unchanged model then gives ~1e-7 instead of exactly 0.
        watch: rules (``tuco.Watch`` or text such as ``"harmful:tuco_response:drop=0.05:stop"``).
        trainer: the Trainer whose ``log`` the metrics go through (or call ``attach(trainer)``).
        overwrite: replace an existing run in ``out`` (a fresh training refuses one otherwise; a Trainer resumed
            from a checkpoint resumes it).
    """

    def __init__(
        self,
        probes: Mapping[str, ProbeInput],
        *,
        every: int = 50,
        out: str | os.PathLike[str] | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        base: nn.Module | str | os.PathLike[str] | None = None,
        base_device: str | Any = None,
        chat: bool | None | Mapping[str, bool | None] = None,
        system: str | None = None,
        limit: int | None = None,
        batch_size: int = 8,
        fast: bool = False,
        watch: Sequence[Watch | str] | Watch | str | None = None,
        trainer: Trainer | None = None,
        overwrite: bool = False,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"every={every!r}: measure every N >= 1 optimizer steps (e.g. every=50)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}: give a whole number >= 1")
        if base is not None and not isinstance(base, (nn.Module, str, os.PathLike)):
            raise ConfigError(f"base={type(base).__name__}: give the starting model or its checkpoint directory (or None)")
        if isinstance(base, (str, os.PathLike)) and not Path(base).expanduser().is_dir():
            raise ConfigError(f"base={os.fspath(base)!r} is not a directory: give the checkpoint training started from")
        self.probes: ProbeSet = probe_set(probes, chat=chat, limit=limit)
        self.watches: list[Watch] = as_watches(watch)
        for w in self.watches:
            if w.group not in self.probes.names:
                raise ConfigError(f"watch rule {w.text()!r} names group {w.group!r}; the probe groups are {', '.join(self.probes.names)}")
            if w.metric == "tuco_response" and not self.probes.group(w.group).has_responses:
                raise ConfigError(
                    f"watch rule {w.text()!r}: group {w.group!r} has no chat ending with the assistant's message, so no "
                    "response TuCo; watch its 'tuco', or give chats that end with a response"
                )
        self.every = every
        self.out = None if out is None else Path(out).expanduser()
        self.tokenizer = tokenizer
        self.base = base
        self.base_device = model_state.check_device(base_device)
        self.system = system
        self.batch_size = batch_size
        self.fast = bool(fast)
        self.overwrite = bool(overwrite)
        self._trainer_ref: Any = None
        self._warned_unattached = False
        self._state: Any = None  # the TrainerState under a Trainer (for logging when not attached)
        self._session: _Session | None = None
        self.measurements: list[Measurement] = []  # this process's (the main one's), in order
        if trainer is not None:
            self.attach(trainer)

    # ---- wiring ----

    def attach(self, trainer: Trainer) -> TucoCallback:
        """Add this callback to ``trainer`` and log through its ``log`` (so every reporting integration gets
        the metrics); returns the callback."""
        self._trainer_ref = weakref.ref(trainer)
        if self not in getattr(getattr(trainer, "callback_handler", None), "callbacks", [self]):
            trainer.add_callback(self)
        return self

    @property
    def trainer(self) -> Any:
        """The attached Trainer (None when not attached)."""
        return self._trainer_ref() if self._trainer_ref is not None else None

    @property
    def seconds(self) -> float:
        """Seconds spent measuring in this process so far (the main process; 0 elsewhere)."""
        return self._session.seconds if self._session is not None else sum(m.seconds for m in self.measurements)

    # ---- any training loop ----

    def begin(
        self,
        model: nn.Module,
        *,
        step: int = 0,
        epoch: float | None = None,
        out: str | os.PathLike[str] | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        rank: int = 0,
        world: int = 1,
        resume: bool | None = None,
    ) -> Measurement | None:
        """Start measuring ``model`` (its starting point is taken now), open the run, and measure at ``step``
        (unless the run, resumed, already holds that step). ``resume``: continue the run in ``out`` (default:
        when ``step`` > 0). Returns the measurement on the main process (``rank`` 0), else None."""
        if self._session is not None:  # a training that ended without on_train_end (an exception): its run was interrupted
            self._close(interrupted=True)
        trainer = self.trainer
        model_state.check_not_sharded(model, trainer)
        inner = model_state.unwrap(model, trainer)
        resumed = step > 0 if resume is None else resume
        stack = ExitStack()
        session = _Session(model=inner, pair=None, rank=rank, world=world, stack=stack)
        try:
            if rank == 0:
                session.pair, session.shared, session.start, info = self._pair(inner, tokenizer, step, resumed)
            else:
                info = {}
            target = self.out if self.out is not None else (Path(out).expanduser() if out is not None else None)
            if target is not None:
                before: dict[str, Any] = {}
                if resumed:  # what the run's earlier sessions noted (opening it rewrites the manifest)
                    from tuco.runs import read_manifest

                    before = read_manifest(target)
                    session.seconds_before = float(before.get("measure_seconds") or 0.0)
                info = {**info, "watch_events": list(before.get("watch_events") or [])}
                session.run = self._open_run(stack, target, inner, rank, world, resumed, info, session)
        except BaseException:
            stack.close()
            raise
        self._session = session
        if session.run is not None and resumed:
            session.history = {s: v for s, v in group_means(session.run.rows()).items() if s <= step}
            done = {r["id"] for r in session.run.rows() if r.get("step") == step}
            if len(done) == len(self.probes):
                session.measured.add(step)
                return None
        return self.measure(model, step, epoch)

    def due(self, step: int, *, last: bool = False) -> bool:
        """True when ``step`` is one to measure at (every ``every`` steps, and the last) and not yet measured."""
        measured = self._session.measured if self._session is not None else set()
        return step not in measured and (step % self.every == 0 or last)

    def step_end(self, model: nn.Module, step: int, *, epoch: float | None = None, last: bool = False) -> Measurement | None:
        """After optimizer step ``step`` (steps done so far): measure when due (every ``every`` steps, and when
        ``last``). Returns the measurement (its ``stop``: a watch rule says stop), None when none was due (or
        off the main process)."""
        if not self.due(step, last=last):
            return None
        return self.measure(model, step, epoch)

    def measure(self, model: nn.Module, step: int, epoch: float | None = None) -> Measurement | None:
        """Measure now, at ``step``: rows written, means logged, watch rules checked (None off the main process)."""
        session = self._session
        if session is None:
            return self.begin(model, step=step, epoch=epoch, resume=False)
        session.measured.add(step)
        if not session.is_main:
            return None
        inner = model_state.unwrap(model, self.trainer)
        if inner is not session.model:  # the trainer re-wrapped or replaced it: measure the new object
            session.model = inner
            session.pair.tuned = inner
        model_state.check_shared(session.shared)
        t0 = time.perf_counter()
        scores = self._score(session, inner)
        seconds = time.perf_counter() - t0
        rows = self._rows(scores, step, epoch)
        means = group_means(rows)[step]
        session.history[step] = means
        warnings, stop = self._watch(session.history)
        m = Measurement(step, epoch, means, rows, warnings, stop, seconds)
        session.seconds += seconds
        self.measurements.append(m)
        if session.run is not None:
            session.run.write(rows)
            session.run.note(
                measurements=len(session.history),  # steps measured in the run (a resumed run: every session's)
                measure_seconds=round(session.seconds_before + session.seconds, 3),
                watch_events=[*session.run.info.get("watch_events", []), *({"step": step, "warning": w} for w in warnings)],
            )
            session.run.write_manifest("running")
        self._log(m)
        return m

    def end(self) -> None:
        """Close the run: rows merged in order, manifest ``finished`` (every rank of a distributed run calls it)."""
        self._close(interrupted=False)

    def _close(self, *, interrupted: bool) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        if interrupted:  # the run keeps its rows, says "interrupted" and can be resumed
            session.stack.__exit__(KeyboardInterrupt, KeyboardInterrupt("training ended without on_train_end"), None)
        else:
            session.stack.close()

    # ---- Trainer hooks ----

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> TrainerControl:
        self._state = state
        model = kwargs.get("model")
        if model is None:  # pragma: no cover - every Trainer passes it
            raise TrainingError("TucoCallback got no model from the Trainer")
        tokenizer = self.tokenizer or kwargs.get("processing_class") or kwargs.get("tokenizer")
        self.begin(
            model,
            step=state.global_step,
            epoch=state.epoch,
            out=Path(args.output_dir) / RUN_DIR if args.output_dir else None,
            tokenizer=tokenizer,
            rank=args.process_index,
            world=args.world_size,
        )
        return control

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> TrainerControl:
        self._state = state
        step = state.global_step
        last = 0 < state.max_steps <= step
        if self.due(step, last=last):
            m = self.measure(kwargs["model"], step, state.epoch)
            if self._agree(m is not None and m.stop, args):
                control.should_training_stop = True
        return control

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> TrainerControl:
        self._state = state
        # training ends here (stopped, or every step done): measure before the Trainer may load its best model
        if (control.should_training_stop or 0 < state.max_steps <= state.global_step) and self.due(state.global_step, last=True):
            self.measure(kwargs["model"], state.global_step, state.epoch)
        return control

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> TrainerControl:
        self._state = state
        # the end was not measured yet (a loop that ended without on_epoch_end): the model is still the last
        # step's unless the Trainer loaded its best checkpoint
        if not getattr(args, "load_best_model_at_end", False) and self.due(state.global_step, last=True):
            self.measure(kwargs["model"], state.global_step, state.epoch)
        self.end()
        return control

    # ---- internals ----

    def _tokenizer(self, tokenizer: PreTrainedTokenizerBase | None) -> PreTrainedTokenizerBase:
        tok = tokenizer or self.tokenizer
        trainer = self.trainer
        if tok is None and trainer is not None:
            tok = getattr(trainer, "processing_class", None) or getattr(trainer, "tokenizer", None)
        tok = getattr(tok, "tokenizer", tok)  # a processor: its tokenizer
        if tok is None or not callable(getattr(tok, "convert_ids_to_tokens", None)):
            raise ConfigError(
                "TucoCallback needs the model's tokenizer: pass tokenizer=..., or give the Trainer processing_class=tokenizer"
            )
        return copy.deepcopy(tok)  # the pair sets left padding and a pad token: never on the one training uses

    def _pair(
        self, inner: nn.Module, tokenizer: PreTrainedTokenizerBase | None, step: int, resumed: bool
    ) -> tuple[Any, list[nn.Parameter], str, dict[str, Any]]:
        """(the pair measured, the parameters its starting copy shares, what the starting point is, manifest info)."""
        from tuco.models.pair import ModelPair

        tok = self._tokenizer(tokenizer)
        name = str(getattr(getattr(inner, "config", None), "name_or_path", "") or "model") or "model"
        shared: list[nn.Parameter] = []
        info: dict[str, Any] = {}
        base: nn.Module | None
        if self.base is not None:
            base = self._given_base(inner)
            start, info["start"] = (
                "starting weights",
                f"given: {self.base if not isinstance(self.base, nn.Module) else type(self.base).__name__}",
            )
        elif self._start_kind(inner) == "adapter off":
            base, start, info["start"] = None, "adapter off", "the same blocks with every adapter switched off (no copy)"
        else:
            if resumed:
                raise TrainingError(
                    f"training resumes at step {step}, so the model no longer holds its starting weights: pass base= (the "
                    "checkpoint training started from) to measure against them"
                )
            try:
                base, shared = model_state.frozen_copy(inner, self.base_device)
            except Exception as err:  # noqa: BLE001 - deepcopy of a model with objects that cannot be copied
                raise TrainingError(
                    f"cannot copy the model's starting weights ({type(err).__name__}: {err}); pass base= the starting checkpoint"
                ) from err
            where = self.base_device or next(inner.parameters()).device
            size = model_state.copy_bytes(base, shared)
            start = "starting weights"
            info["start"] = f"a frozen copy of the decoder blocks at step {step} on {where} ({size / 2**20:.1f} MiB)"
            info["start_copy_bytes"] = size
        pair = ModelPair(
            tuned=inner,
            base=base,
            tokenizer=tok,
            base_name=start,
            tuned_name=name,
            check=base is not None,
            full_path=not self.fast,
            freeze=False,
        )
        return pair, shared, start, info

    def _start_kind(self, inner: nn.Module) -> str:
        """``adapter off`` (a PEFT model whose other weights are frozen, no base given) or ``starting weights``."""
        if self.base is None and model_state.is_peft(inner) and not model_state.trainable_outside_adapters(inner):
            return "adapter off"
        return "starting weights"

    def _given_base(self, inner: nn.Module) -> nn.Module:
        base = self.base
        if not isinstance(base, nn.Module):
            from transformers import AutoModelForCausalLM

            dtype = next(inner.parameters()).dtype
            try:
                base = AutoModelForCausalLM.from_pretrained(os.fspath(base), dtype=dtype)  # type: ignore[arg-type]
            except (OSError, ValueError) as err:
                raise TrainingError(f"cannot load base={os.fspath(base)!r}: {err}") from err  # type: ignore[arg-type]
        device = self.base_device or next(inner.parameters()).device
        base.to(device)
        base.eval()
        base.requires_grad_(False)
        return base

    def _open_run(
        self, stack: ExitStack, out: Path, inner: nn.Module, rank: int, world: int, resumed: bool, info: dict[str, Any], session: _Session
    ) -> Any:
        from tuco import __version__
        from tuco.runs import Mode, open_run
        from tuco.runs.parallel import Ranks

        dtype = str(next(inner.parameters()).dtype).removeprefix("torch.")
        config = {
            "measurement": "training probes (TucoCallback)",
            "probes": {g.name: len(g.prompts) for g in self.probes.groups},
            "probes_digest": self.probes.digest(),
            "chat": {g.name: g.chat for g in self.probes.groups},
            "system": self.system,
            "every": self.every,
            "batch_size": self.batch_size,
            "full_path": not self.fast,
            "start": self._start_kind(inner),
            "model": str(getattr(getattr(inner, "config", None), "name_or_path", "") or ""),
            "dtype": dtype,
            "tuco": __version__,
        }
        mode: Mode = "resume" if resumed else "overwrite" if self.overwrite else "new"
        notes = {**info, "watch": [w.text() for w in self.watches], "groups": self.probes.names}
        return stack.enter_context(open_run(out, config, mode=mode, ranks=Ranks(rank, world), info=notes))

    def _score(self, session: _Session, inner: nn.Module) -> list[Any]:
        """Every probe scored with ``tuco.score`` (one call per chat setting, groups in order), in probe order."""
        from tuco.measures.scoring import score

        base = session.pair.base
        scores: list[Any] = [None] * len(self.probes)
        with model_state.measuring(inner, base):
            settings = list(dict.fromkeys(g.chat for g in self.probes.groups))
            for chat in settings:
                idx: list[int] = []
                prompts: list[Any] = []
                start = 0
                for g in self.probes.groups:
                    if g.chat == chat:
                        idx += range(start, start + len(g.prompts))
                        prompts += g.prompts
                    start += len(g.prompts)
                for i, s in zip(idx, score(session.pair, prompts, chat=chat, system=self.system, batch_size=self.batch_size)):
                    scores[i] = s
        return scores

    def _rows(self, scores: list[Any], step: int, epoch: float | None) -> list[dict[str, Any]]:
        from tuco.measures.prompts import has_chat_template
        from tuco.runs.schema import ScoreRow

        keep = {f.name for f in fields(ScoreRow)}
        tok = self._session.pair.tokenizer if self._session is not None else None
        rows = []
        k = 0
        for g in self.probes.groups:
            use_chat = (tok is not None and has_chat_template(tok)) if g.chat is None else g.chat
            for p in g.prompts:
                s = scores[k]
                k += 1
                values = {key: v for key, v in asdict(s).items() if key in keep and key not in ("tokens", "token_tuco", "token_stage")}
                response = response_of(p)
                prompt = p.display if response is None else "\n".join(f"{m['role']}: {m['content']}" for m in (p.messages or [])[:-1])
                row = ScoreRow(
                    id=f"{p.id}@{step}",
                    item=p.id,
                    prompt=prompt,
                    condition=g.name,
                    chat=use_chat,
                    step=step,
                    epoch=None if epoch is None else round(float(epoch), 6),
                    response=response,
                    **values,
                )
                rows.append(row.to_dict(p.extra))
        return rows

    def _watch(self, history: dict[int, dict[str, dict[str, float]]]) -> tuple[list[str], bool]:
        warnings, stop = [], False
        for w in self.watches:
            series = [(s, v[w.group][w.metric]) for s, v in sorted(history.items()) if w.metric in v.get(w.group, {})]
            message = w.check(series)
            if message is not None:
                warnings.append(message)
                stop = stop or w.stop
        return warnings, stop

    def _log(self, m: Measurement) -> None:
        for w in m.warnings:
            log.warning(w)
        trainer = self.trainer
        logs = m.logs()
        if trainer is not None and getattr(trainer, "state", None) is not None:
            control = getattr(trainer, "control", None)
            due = getattr(control, "should_log", False)
            trainer.log(dict(logs))
            if control is not None:  # the handler's on_log clears should_log: the Trainer's own log of this step still happens
                trainer.control.should_log = due
            return
        log.info("tuco at step %d: %s", m.step, ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
        state = self._state
        if state is not None:  # under a Trainer that was not attached: its history (trainer_state.json) only
            state.log_history.append({**logs, **({"epoch": state.epoch} if state.epoch is not None else {}), "step": m.step})
            if not self._warned_unattached:
                self._warned_unattached = True
                log.warning(
                    "TucoCallback is not attached to its Trainer, so its metrics reach trainer.state.log_history and this log "
                    "only, not TensorBoard/W&B/the console: use TucoCallback(..., trainer=trainer) or callback.attach(trainer)"
                )

    def _agree(self, stop: bool, args: TrainingArguments | None) -> bool:
        """Every rank's decision to stop is the main process's (the others measure nothing)."""
        if args is None or not any(w.stop for w in self.watches) or getattr(args, "world_size", 1) <= 1:
            return stop
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return stop
        flag = torch.tensor([1 if stop else 0], device=args.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())
