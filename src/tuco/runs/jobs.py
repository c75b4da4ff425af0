"""The one pipeline from prompts to rows on disk: every run (``score_to``, ``generate_to``, every experiment)
writes through a ``Job``.

    tuco.score_to(pair, prompts, "runs/x/scores.jsonl", batch_size=16)            # one process
    tuco.score_to(pair, prompts, "runs/x", resume=True)                          # continue a killed run

A measurement (score, generate, choose) encodes its prompts (a prompt that cannot be used is skipped and
reported in the manifest), plans its batches from the prompts' lengths and the batch size alone
(``tuco.measures.batching.plan_batches``), records a digest of what it planned (a resumed run refuses other
prompts), and lets each rank take every ``world``-th batch, skipping batches already written. So a resumed
or data-parallel run forms the very same batches as one uninterrupted process and writes the same rows
(bfloat16 included). Each sampled response draws from its own generator, seeded by the one rule of
``tuco.measures.sampling`` (the run's seed, the measurement's tag, the prompt's id, the sample number),
never by what ran before. What is measured is a spec (``tuco.runs.specs``: ``ScoreSpec``, ``GenerateSpec``,
``ChooseSpec``), passed down whole to ``Job.measure``. Run ``torchrun ... your_script.py`` (or ``--processes N`` on the CLI) for several
ranks: the run reads RANK / WORLD_SIZE from the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from tuco import __version__
from tuco.engine.alpha import AlphaLike, alpha_text, check_distinct
from tuco.errors import ConfigError, PromptError
from tuco.measures.prompts import BadRow, Messages, Prompt, as_prompts
from tuco.measures.sampling import Sampling
from tuco.runs import RunHandle, mode_of, open_run, prompts_digest, require_unique, row_id
from tuco.runs.parallel import Ranks
from tuco.runs.parallel import ranks as env_ranks
from tuco.runs.schema import Row
from tuco.runs.specs import GenerateSpec, ScoreSpec, Spec

if TYPE_CHECKING:
    from tuco.measures.batching import Encoded
    from tuco.models.decomposable import Decomposable

Progress = Callable[[int, int], None]
# What a measurement takes: prompts (strings, chats, Prompt objects), or prompts the caller already encoded.
PromptsIn: TypeAlias = "Sequence[str | Messages | Prompt] | Sequence[Encoded]"
# What a caller adds to each row before it is written: (row, the encoded prompt, the spec's result for it).
Enrich = Callable[[Row, "Encoded", object], None]


@dataclass
class JobResult:
    """What a job left: the rows file, how many rows it holds, the prompts it skipped and why."""

    out: Path
    n_rows: int
    bad: list[BadRow] = field(default_factory=list)
    n_prompts: int = 0


def model_config(model: Decomposable) -> dict[str, Any]:
    """What of the model determines a run's rows: its checkpoints, dtype, device type, tuco's version."""
    param = next(model.tuned.parameters())
    return {
        "checkpoints": list(model.stage_names),
        "dtype": str(param.dtype).removeprefix("torch."),
        "device_type": model.device.type,
        "tuco": __version__,
        "full_path": bool(model.full_path),
    }


def prepare_prompts(
    model: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    *,
    chat: bool | None,
    system: str | None,
    extra: int = 0,
    responses: bool = False,
) -> tuple[list[Encoded], list[BadRow], bool]:
    """Prompts ready to run: ids unique (else RunError), encoded under the chat template when ``chat``
    (None: when the tokenizer has one), ``extra`` positions left for generation; ``responses``: a chat
    ending with the assistant's message carries that response's ids (scored teacher-forced). Returns
    (encoded, the prompts that could not be encoded, whether the template is used); PromptError when none
    is usable."""
    from tuco.measures.batching import encode_prompts
    from tuco.measures.prompts import has_chat_template

    items = as_prompts(prompts)
    require_unique([p.id for p in items])
    use_chat = has_chat_template(model.tokenizer) if chat is None else chat
    encoded, bad = encode_prompts(model, items, chat=use_chat, system=system, extra=extra, responses=responses)
    if not encoded:
        raise PromptError(
            "no usable prompts" + (f": {bad[0].reason}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "") if bad else "")
        )
    return encoded, bad, use_chat


class Job:
    """A model writing rows into an open run: plan, skip what is done, compute, write.

    ``progress(done, total)`` is told after every batch of this rank (prompts of the current
    measurement); ``on_measurement(tag, n_prompts)`` when a measurement starts.
    """

    def __init__(
        self,
        model: Decomposable,
        run: RunHandle,
        *,
        progress: Progress | None = None,
        on_measurement: Callable[[str, int], None] | None = None,
        on_backoff: Callable[[int], None] | None = None,
        expected: int | None = None,
    ) -> None:
        self.model = model
        self.expected = expected  # prompts this rank will measure over all measurements (None: per measurement)
        self._done = 0
        self.run = run
        self.progress = progress
        self.on_measurement = on_measurement
        self.on_backoff = on_backoff
        self.skipped: list[BadRow] = []
        self.n_prompts = 0
        self._measurements = 0  # measurements in call order: each records its plan under its number

    # ---- the pipeline ----

    def _prepare(
        self, prompts: PromptsIn, *, chat: bool | None, system: str | None, extra: int, responses: bool = False
    ) -> tuple[list[Encoded], bool]:
        from tuco.measures.batching import Encoded
        from tuco.measures.prompts import has_chat_template

        given = [p for p in prompts if isinstance(p, Encoded)]
        if prompts and len(given) == len(prompts):  # encoded by the caller (score_to, generate_to)
            require_unique([e.prompt.id for e in given])
            return given, has_chat_template(self.model.tokenizer) if chat is None else chat
        raw = [p for p in prompts if not isinstance(p, Encoded)]
        encoded, bad, use_chat = prepare_prompts(self.model, raw, chat=chat, system=system, extra=extra, responses=responses)
        self.skipped += bad
        self.n_prompts += len(encoded) + len(bad)
        self.run.note(**_prompts_info(self.n_prompts, self.skipped))
        return encoded, use_chat

    def _execute(
        self,
        tag: str,
        encoded: list[Encoded],
        batch_size: int,
        settings: dict[str, Any],
        keys: Callable[[Encoded], list[Any]],
        compute: Callable[[list[Encoded], int], list[dict[str, Any]]],
    ) -> None:
        """Plan ``encoded`` into batches, record the plan, and compute this rank's batches not yet written."""
        import json

        from tuco.measures.batching import plan_batches

        plan = plan_batches([len(e.fed) for e in encoded], batch_size)
        settings_text = json.dumps({**settings, "batch_size": batch_size}, sort_keys=True, default=str)
        planned = [(e.prompt.id, e.ids + ([-1, *e.response_ids] if e.response_ids else [])) for e in encoded]  # -1: where a response starts
        self.run.check_plan(f"{self._measurements}:{tag}", prompts_digest([*planned, (settings_text, [])]))
        self._measurements += 1
        self.run.expect(k for e in encoded for k in keys(e))
        mine = [(n, b) for n, b in enumerate(plan) if n % self.run.world == self.run.rank]
        if self.on_measurement is not None:
            self.on_measurement(tag, sum(len(b) for _, b in mine))
        if self.expected is None:
            self._done = 0
        total = self.expected if self.expected is not None else sum(len(b) for _, b in mine)
        if self.progress is not None and (self.expected is None or self._measurements == 1):
            self.progress(self._done, total)  # the run is open: work starts
        for number, batch in mine:
            items = [encoded[i] for i in batch]
            if not all(k in self.run.done for e in items for k in keys(e)):  # a batch cut short is redone whole
                self.run.write(compute(items, number))
            self._done += len(batch)
            if self.progress is not None:
                self.progress(self._done, total)

    # ---- the one measurement entry ----

    def measure(
        self,
        spec: Spec,
        prompts: PromptsIn,
        *,
        batch_size: int = 8,
        tag: str = "",
        key: Callable[[str], Any] | None = None,
        enrich: Enrich | None = None,
    ) -> None:
        """Measure ``prompts`` as ``spec`` says into the run: one schema row per prompt (``ScoreSpec``: a
        ``ScoreRow``; ``GenerateSpec``: a ``GenerationRow``; ``ChooseSpec``: a ``ChoiceRow``). ``tag`` names
        the measurement (its plan digest, and the key its samples are seeded by); ``key(id)``: the row key
        (default the id); ``enrich(row, encoded, result)``: what the caller adds to each row before it is
        written (an experiment's position, a judge's verdict), given the spec's result for that prompt."""
        encoded, use_chat = self._prepare(prompts, chat=spec.chat, system=spec.system, extra=spec.extra_tokens, responses=spec.responses)

        def compute(items: list[Encoded], number: int) -> list[dict[str, Any]]:
            out = []
            for row, e, result in spec.rows(self.model, items, chat=use_chat, tag=tag, on_backoff=self.on_backoff):
                if enrich is not None:
                    enrich(row, e, result)
                out.append(row.to_dict(_extra(e.prompt)))
            return out

        row_key = key or (lambda pid: pid)
        self._execute(tag, encoded, batch_size, spec.settings(), lambda e: [row_key(e.prompt.id)], compute)


def _extra(prompt: Prompt) -> dict[str, Any]:
    """A prompt's extra fields as a row carries them (``item`` and ``condition`` are the row's own)."""
    return {k: v for k, v in prompt.extra.items() if k not in ("item", "condition")}


def _prompts_info(n_prompts: int, skipped: Sequence[BadRow]) -> dict[str, Any]:
    """What the manifest records of a run's prompts: how many, how many were skipped, and why (the first 50)."""
    return {"n_prompts": n_prompts, "n_skipped": len(skipped), "skipped": [str(b) for b in skipped[:50]]}


def run_config(model: Decomposable, specs: Sequence[Spec], use_chat: bool | None, batch_size: int) -> dict[str, Any]:
    """A run's configuration: the model's, then what its specs record (one spec, or one per alpha of the same
    measurement: ``alphas``), the chat template actually used and the batch size."""
    first = specs[0]
    config: dict[str, Any] = {"verb": first.verb, **model_config(model)}
    config |= {**first.config(), "chat": use_chat, "batch_size": batch_size}
    config["full_path"] = config["full_path"] or first.full_path
    labels = [s.alpha.label for s in specs]
    if isinstance(first, ScoreSpec) and len(specs) == 1:
        config["alpha"] = labels[0]
    else:
        config["alphas"] = labels
    sampling = first.config()
    for k in ("max_new_tokens", "temperature", "top_p", "seed", "next_turn"):  # after the alphas, as the manifest has them
        if k in sampling:
            config[k] = config.pop(k)
    return config


def measure_to(
    model: Decomposable,
    specs: Sequence[Spec],
    prompts: Sequence[str | Messages | Prompt],
    out: str | Path,
    *,
    batch_size: int = 8,
    resume: bool = False,
    overwrite: bool = False,
    bad: Sequence[BadRow] = (),
    progress: Progress | None = None,
    on_backoff: Callable[[int], None] | None = None,
    ranks: Ranks | None = None,
) -> JobResult:
    """Measure every prompt as each spec says (one spec, or the same measurement at several alphas) into
    ``out`` (a .jsonl/.parquet file or a run directory): the one path of ``score_to`` and ``generate_to``.

    Every check happens before the run exists, so bad input leaves nothing behind: specs that differ in
    more than alpha, an alpha given twice or that does not fit the model, prompts that cannot be encoded.
    ``resume`` continues a killed run with the same configuration (refused otherwise, naming what differs);
    ``overwrite`` replaces an existing one (without either, an existing output is refused); the output is
    locked while the run is open. ``bad``: input rows the caller already rejected (recorded in the
    manifest). Data-parallel ranks (torchrun, ``--processes``) are read from the environment once.
    """
    from dataclasses import replace

    from tuco.measures.batching import plan_batches

    if not specs:
        raise ConfigError("nothing to measure: give at least one alpha")
    first = specs[0]
    if any(replace(s, alpha=first.alpha) != first for s in specs[1:]):
        raise ConfigError("the measurements of one run differ only in alpha")
    check_distinct([s.alpha for s in specs])
    for s in specs:
        s.alpha.check(model.n_stages, model.n_layers)
    encoded, skipped, use_chat = prepare_prompts(
        model, prompts, chat=first.chat, system=first.system, extra=first.extra_tokens, responses=first.responses
    )
    skipped = list(bad) + skipped
    config = run_config(model, specs, use_chat, batch_size)
    info = _prompts_info(len(encoded) + len(skipped), skipped)
    several = len(specs) > 1 or not isinstance(first, ScoreSpec)
    r = ranks or env_ranks()
    mine = sum(len(b) for n, b in enumerate(plan_batches([len(e.fed) for e in encoded], batch_size)) if n % r.world == r.rank)
    key = generation_key if several else row_id
    with open_run(out, config, mode=mode_of(resume, overwrite), key=key, ranks=r, info=info, device=str(model.device)) as run:
        job = Job(model, run, progress=progress, on_backoff=on_backoff, expected=mine * len(specs) if several else None)
        for s in specs:
            text = s.alpha.text
            job.measure(
                replace(s, chat=use_chat),
                encoded,
                batch_size=batch_size,
                key=(lambda pid, text=text: (text, pid)) if several else None,  # type: ignore[misc]
            )
    return JobResult(out=run.rows_file, n_rows=run.n_rows, bad=skipped, n_prompts=len(encoded) + len(skipped))


def score_to(
    model: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    out: str | Path,
    *,
    alpha: AlphaLike = 1.0,
    chat: bool | None = None,
    system: str | None = None,
    per_token: bool = False,
    batch_size: int = 8,
    full_path: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    bad: Sequence[BadRow] = (),
    progress: Progress | None = None,
    on_backoff: Callable[[int], None] | None = None,
    ranks: Ranks | None = None,
    next_turn: bool = False,
    alphas: Sequence[AlphaLike] | None = None,
) -> JobResult:
    """Score every prompt into ``out`` (a .jsonl/.parquet file or a run directory), one row per prompt.

    A chat ending with the assistant's message is scored teacher-forced over that response (``tuco.score``);
    ``next_turn`` scores the start of the next turn instead. ``alphas`` (several): one row per (alpha,
    prompt), keyed like ``generate_to``'s (``alpha`` is then unused). The rest: ``measure_to``.
    """
    spec = ScoreSpec(chat=chat, system=system, per_token=per_token, full_path=full_path, next_turn=next_turn)
    given = list(alphas) if alphas else [alpha]
    specs = [spec.with_alpha(a) for a in given]
    return measure_to(
        model,
        specs,
        prompts,
        out,
        batch_size=batch_size,
        resume=resume,
        overwrite=overwrite,
        bad=bad,
        progress=progress,
        on_backoff=on_backoff,
        ranks=ranks,
    )


def generation_key(row: dict[str, Any]) -> tuple[str, str]:
    """The identity of a row of a run measured at several alphas (every ``generate_to`` run): (alpha, prompt id)."""
    return (alpha_text(row["alpha"]), str(row["id"]))


def generate_to(
    model: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    out: str | Path,
    *,
    alphas: Sequence[AlphaLike] = (1.0,),
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float | None = None,
    seed: int | None = None,
    chat: bool | None = None,
    system: str | None = None,
    per_token: bool = False,
    batch_size: int = 8,
    full_path: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    bad: Sequence[BadRow] = (),
    progress: Progress | None = None,
    ranks: Ranks | None = None,
) -> JobResult:
    """Generate a response to every prompt at every alpha into ``out``; one row per (alpha, prompt).

    Sampling (``temperature`` > 0) with a ``seed``: each response draws from its own generator, seeded from
    (seed, its prompt's id), so resumed and data-parallel runs draw the same samples as one uninterrupted
    process, and the same prompt draws the same numbers at every alpha. The rest: ``measure_to``.
    """
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    spec = GenerateSpec(chat=chat, system=system, per_token=per_token, full_path=full_path, sampling=sampling)
    return measure_to(
        model,
        [spec.with_alpha(a) for a in alphas],
        prompts,
        out,
        batch_size=batch_size,
        resume=resume,
        overwrite=overwrite,
        bad=bad,
        progress=progress,
        ranks=ranks,
    )
