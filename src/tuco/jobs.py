"""The one pipeline from prompts to rows on disk: every run (``score_to``, ``generate_to``, every experiment)
writes through a ``Job``.

    tuco.score_to(pair, prompts, "runs/x/scores.jsonl", batch_size=16)            # one process
    tuco.score_to(pair, prompts, "runs/x", resume=True)                          # continue a killed run

A measurement (score, generate, choose) encodes its prompts (a prompt that cannot be used is skipped and
reported in the manifest), plans its batches from the prompts' lengths and the batch size alone
(``tuco.batching.plan_batches``), records a digest of what it planned (a resumed run refuses other
prompts), and lets each rank take every ``world``-th batch, skipping batches already written. So a resumed
or data-parallel run forms the very same batches as one uninterrupted process and writes the same rows
(bfloat16 included). Sampling is seeded per batch from (seed, alpha, measurement, batch number), never
from what ran before. Run ``torchrun ... your_script.py`` (or ``--processes N`` on the CLI) for several
ranks: the run reads RANK / WORLD_SIZE from the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from tuco import __version__
from tuco.errors import PromptError
from tuco.parallel import Ranks
from tuco.parallel import ranks as env_ranks
from tuco.prompts import BadRow, Messages, Prompt, as_prompts
from tuco.runs import RunHandle, mode_of, open_run, prompts_digest, require_unique, row_id
from tuco.schema import GenerationRow, ScoreRow
from tuco.steering import alpha_label, alpha_text, check_alpha, check_distinct

if TYPE_CHECKING:
    from tuco.batching import Encoded
    from tuco.judges import Judge
    from tuco.model import Decomposable

Progress = Callable[[int, int], None]
# What a measurement takes: prompts (strings, chats, Prompt objects), or prompts the caller already encoded.
PromptsIn: TypeAlias = "Sequence[str | Messages | Prompt] | Sequence[Encoded]"


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
    from tuco.batching import encode_prompts
    from tuco.prompts import has_chat_template

    items = as_prompts(prompts)
    require_unique([p.id for p in items])
    use_chat = has_chat_template(model.tokenizer) if chat is None else chat
    encoded, bad = encode_prompts(model, items, chat=use_chat, system=system, extra=extra, responses=responses)
    if not encoded:
        raise PromptError(
            "no usable prompts" + (f": {bad[0].reason}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "") if bad else "")
        )
    return encoded, bad, use_chat


def _fields(prompt: Prompt) -> tuple[str, str | None, dict[str, Any]]:
    """(item, condition, the other extra fields) of a prompt: ``item`` pairs a request across conditions
    (default: the prompt's id)."""
    extra = dict(prompt.extra)
    item, condition = extra.pop("item", prompt.id), extra.pop("condition", None)
    return str(item), None if condition is None else str(condition), extra


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
        from tuco.batching import Encoded
        from tuco.prompts import has_chat_template

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

        from tuco.batching import plan_batches

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

    # ---- measurements ----

    def score(
        self,
        prompts: PromptsIn,
        *,
        chat: bool | None = None,
        system: str | None = None,
        alpha: Any = 1.0,
        per_token: bool = False,
        batch_size: int = 8,
        full_path: bool = False,
        position: str | None = None,
        baselines: bool = False,
        tag: str = "",
        next_turn: bool = False,
        key: Callable[[str], Any] | None = None,
    ) -> None:
        """TuCo of each prompt at its last token: one ``ScoreRow`` per prompt; a chat ending with the
        assistant's message is scored teacher-forced over that response (``response_*``, ``tuco_response``)
        unless ``next_turn``. ``position`` (experiments): also ``tuco_last``, and with "request-mean"
        ``tuco_request``/``tuco_context`` (``tuco`` is then the request mean); ``baselines`` adds
        ``output_co`` and ``kl_ft_pt``."""
        from tuco.positions import request_split
        from tuco.scoring import score_encoded

        check_alpha(alpha, self.model)
        encoded, use_chat = self._prepare(prompts, chat=chat, system=system, extra=0, responses=not next_turn)
        label = alpha_label(alpha)
        per_token = per_token or position == "request-mean"

        def compute(items: list[Encoded], number: int) -> list[dict[str, Any]]:
            scores = score_encoded(
                self.model, items, alpha=alpha, per_token=per_token, full_path=full_path, batch_size=len(items), on_backoff=self.on_backoff
            )
            more = self._baselines(items, use_chat, system, baselines)
            rows = []
            for e, s, b in zip(items, scores, more):
                item, condition, extra = _fields(e.prompt)
                values = {k: v for k, v in asdict(s).items() if k in SCORE_FIELDS}
                row = ScoreRow(
                    id=e.prompt.id, item=item, prompt=e.prompt.display, alpha=label, condition=condition, chat=use_chat, **values
                )
                row.output_co, row.kl_ft_pt = b
                if e.response is not None:
                    row.response = e.response
                if position is not None:
                    row.tuco_last = s.tuco
                    if position == "request-mean":
                        row.tuco_request, row.tuco_context = request_split(self.model.tokenizer, e.prompt, s.token_tuco, use_chat)
                        row.tuco = row.tuco_request
                rows.append(row.to_dict(extra))
            return rows

        row_key = key or (lambda pid: pid)
        self._execute(tag, encoded, batch_size, {"score": label}, lambda e: [row_key(e.prompt.id)], compute)

    def generate(
        self,
        prompts: PromptsIn,
        *,
        alpha: Any = 1.0,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float | None = None,
        seed: int | None = None,
        samples: int = 1,
        chat: bool | None = None,
        system: str | None = None,
        per_token: bool = False,
        batch_size: int = 8,
        full_path: bool = False,
        position: str | None = None,
        judge: Judge | None = None,
        baselines: bool = False,
        key: Callable[[str], Any] | None = None,
        tag: str = "",
    ) -> None:
        """One response per prompt (``samples`` per prompt, in one batch) under ``alpha``: one
        ``GenerationRow`` per prompt with TuCo at every generated token. ``position`` (experiments): also
        ``tuco_last`` / ``tuco_first_generated`` / ``tuco_response`` and ``tuco`` = that position's;
        ``judge``: ``refused`` (one sample) or ``refusals``/``non_refusals`` (judged against the prompt's
        ``request`` field, else the prompt); ``key(id)``: the row key (default the id)."""
        from tuco.generation import check_sampling, generate_batch
        from tuco.positions import at_generated, request_split
        from tuco.schema import POSITION_FIELDS

        check_sampling(max_new_tokens, temperature, top_p)
        check_alpha(alpha, self.model)
        encoded, use_chat = self._prepare(prompts, chat=chat, system=system, extra=max_new_tokens)
        label = alpha_label(alpha)
        per_token = per_token or position == "request-mean"
        row_key = key or (lambda pid: pid)

        def compute(items: list[Encoded], number: int) -> list[dict[str, Any]]:
            repeated = [e for e in items for _ in range(samples)]
            gens = generate_batch(
                self.model,
                repeated,
                number,
                alpha=alpha,
                seed=seed,
                tag=tag,
                per_token=per_token,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                full_path=full_path,
            )
            more = self._baselines(items, use_chat, system, baselines)
            rows = []
            for j, e in enumerate(items):
                mine = gens[j * samples : (j + 1) * samples]
                g = mine[0]
                item, condition, extra = _fields(e.prompt)
                row = GenerationRow(
                    id=e.prompt.id,
                    item=item,
                    prompt=e.prompt.display,
                    tuco=g.prompt_tuco,
                    alpha=label,
                    condition=condition,
                    n_tokens=len(e.ids),
                    prompt_tuco=g.prompt_tuco,
                    mean_tuco=g.mean_tuco,
                    response=g.text,
                    token_ids=g.token_ids,
                    tokens=g.tokens,
                    token_tuco=g.token_tuco,
                    n_new_tokens=len(g.token_ids),
                    finished=g.finished,
                    seed=seed,
                    temperature=temperature,
                    stage_share=g.stage_share,
                    token_stage_share=g.token_stage_share,
                )
                row.output_co, row.kl_ft_pt = more[j]
                if per_token:
                    row.prompt_tokens, row.prompt_token_tuco = g.prompt_tokens, g.prompt_token_tuco
                if position is not None:
                    row.tuco_last = g.prompt_tuco
                    row.tuco_first_generated = at_generated(g.token_tuco, "first")
                    row.tuco_response = at_generated(g.token_tuco, "mean")
                    row.layer_ptc_l1, row.layer_ftc_l1 = g.prompt_layer_ptc_l1, g.prompt_layer_ftc_l1
                    if per_token:
                        row.tuco_request, row.tuco_context = request_split(self.model.tokenizer, e.prompt, g.prompt_token_tuco, use_chat)
                    row.tuco = getattr(row, POSITION_FIELDS[position])
                if samples > 1:
                    row.responses = [x.text for x in mine]
                if judge is not None:
                    texts = [x.text for x in mine]
                    refused = judge.refused([str(e.prompt.extra.get("request", e.prompt.display))] * len(texts), texts)
                    row.refused = refused[0] if samples == 1 else None
                    row.refusals, row.non_refusals = sum(refused), len(texts) - sum(refused)
                rows.append(row.to_dict(extra))
            return rows

        settings = {"alpha": label, "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}
        self._execute(tag, encoded, batch_size, settings, lambda e: [row_key(e.prompt.id)], compute)

    def choose(
        self,
        prompts: PromptsIn,
        options: Sequence[str],
        *,
        alpha: Any = 1.0,
        chat: bool | None = True,
        system: str | None = None,
        batch_size: int = 8,
        tag: str = "",
    ) -> None:
        """Next-token choice among ``options`` under ``alpha`` (log-probabilities, chosen option, TuCo):
        one ``ChoiceRow`` per prompt."""
        from tuco.choices import choose
        from tuco.schema import ChoiceRow

        check_alpha(alpha, self.model)
        encoded, use_chat = self._prepare(prompts, chat=chat, system=system, extra=0)
        label = alpha_label(alpha)

        def compute(items: list[Encoded], number: int) -> list[dict[str, Any]]:
            got = choose(self.model, [e.prompt for e in items], options, alpha=alpha, chat=use_chat, system=system, batch_size=len(items))
            rows = []
            for e, c in zip(items, got):
                item, condition, extra = _fields(e.prompt)
                row = ChoiceRow(
                    id=e.prompt.id,
                    item=item,
                    prompt=e.prompt.display,
                    tuco=c.tuco,
                    alpha=label,
                    condition=condition,
                    chosen=options[c.chosen],
                    logprobs=c.logprobs,
                )
                rows.append(row.to_dict(extra))
            return rows

        self._execute(tag, encoded, batch_size, {"choose": list(options), "alpha": label}, lambda e: [e.prompt.id], compute)

    def _baselines(self, items: list[Encoded], chat: bool, system: str | None, wanted: bool) -> list[tuple[float | None, float | None]]:
        """(OutputCo, next-token KL(FT || PT)) of each prompt (each model on its own trajectory), or Nones."""
        if not wanted:
            return [(None, None) for _ in items]
        from tuco.outputco import output_baselines

        got = output_baselines(self.model, [e.prompt for e in items], chat=chat, system=system, batch_size=len(items))
        return [(b.output_co, b.kl) for b in got]


SCORE_FIELDS = {
    "tuco",
    "tuco_unscaled",
    "preco",
    "ptc_l1",
    "ftc_l1",
    "n_tokens",
    "layer_ptc_l1",
    "layer_ftc_l1",
    "tokens",
    "token_tuco",
    "stage_share",
    "stage_l1",
    "layer_stage_l1",
    "token_stage",
    "response_ids",
    "response_tokens",
    "response_token_tuco",
    "tuco_response",
}


def _prompts_info(n_prompts: int, skipped: Sequence[BadRow]) -> dict[str, Any]:
    """What the manifest records of a run's prompts: how many, how many were skipped, and why (the first 50)."""
    return {"n_prompts": n_prompts, "n_skipped": len(skipped), "skipped": [str(b) for b in skipped[:50]]}


def _run_config(
    model: Decomposable, verb: str, use_chat: bool | None, system: str | None, per_token: bool, batch_size: int, full_path: bool
) -> dict:
    config = {"verb": verb, **model_config(model), "chat": use_chat, "system": system, "per_token": per_token, "batch_size": batch_size}
    config["full_path"] = config["full_path"] or full_path
    return config


def score_to(
    model: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    out: str | Path,
    *,
    alpha: Any = 1.0,
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
    alphas: Sequence[Any] | None = None,
) -> JobResult:
    """Score every prompt into ``out`` (a .jsonl/.parquet file or a run directory), one row per prompt.

    A chat ending with the assistant's message is scored teacher-forced over that response (``tuco.score``);
    ``next_turn`` scores the start of the next turn instead.

    ``resume`` continues a killed run with the same configuration (refused otherwise, naming what
    differs); ``overwrite`` replaces an existing one (without either, an existing output is refused).
    ``bad``: input rows the caller already rejected (recorded in the manifest). Prompt ids must be unique.
    ``progress(done, total)`` is called after every batch of this rank. ``alphas`` (several): one row per
    (alpha, prompt), keyed like ``generate_to``'s (``alpha`` is then unused).
    """
    several = list(alphas) if alphas is not None and len(alphas) > 1 else None
    if several is not None:
        check_distinct(several)
    for a in several or [alphas[0] if alphas else alpha]:
        check_alpha(a, model)  # before the run exists: bad input leaves nothing behind
    encoded, skipped, use_chat = prepare_prompts(model, prompts, chat=chat, system=system, responses=not next_turn)
    skipped = list(bad) + skipped
    config = _run_config(model, "score", use_chat, system, per_token, batch_size, full_path)
    if several is None:
        alpha = alphas[0] if alphas else alpha
        config["alpha"] = alpha_label(alpha)
    else:
        config["alphas"] = [alpha_label(a) for a in several]
    if next_turn:
        config["next_turn"] = True
    info = _prompts_info(len(encoded) + len(skipped), skipped)
    key = generation_key if several is not None else row_id
    from tuco.batching import plan_batches

    r = ranks or env_ranks()
    mine = sum(len(b) for n, b in enumerate(plan_batches([len(e.fed) for e in encoded], batch_size)) if n % r.world == r.rank)
    with open_run(out, config, mode=mode_of(resume, overwrite), key=key, ranks=r, info=info, device=str(model.device)) as run:
        job = Job(model, run, progress=progress, on_backoff=on_backoff, expected=mine * len(several) if several else None)
        for a in several or [alpha]:
            text = alpha_text(a)
            job.score(
                encoded,
                chat=use_chat,
                system=system,
                alpha=a,
                per_token=per_token,
                batch_size=batch_size,
                full_path=full_path,
                key=(lambda pid, text=text: (text, pid)) if several else None,  # type: ignore[misc]
            )
    return JobResult(out=run.rows_file, n_rows=run.n_rows, bad=skipped, n_prompts=len(encoded) + len(skipped))


def generation_key(row: dict[str, Any]) -> tuple[str, str]:
    """The identity of a generation row of ``generate_to``: (alpha, prompt id)."""
    return (alpha_text(row["alpha"]), str(row["id"]))


def generate_to(
    model: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    out: str | Path,
    *,
    alphas: Sequence[Any] = (1.0,),
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

    Sampling (``temperature`` > 0) with a ``seed`` seeds every batch from (seed, alpha, batch), so
    resumed and data-parallel runs draw the same samples as one uninterrupted process.
    """
    from tuco.generation import check_sampling

    check_sampling(max_new_tokens, temperature, top_p)
    check_distinct(alphas)
    for a in alphas:
        check_alpha(a, model)
    encoded, skipped, use_chat = prepare_prompts(model, prompts, chat=chat, system=system, extra=max_new_tokens)
    skipped = list(bad) + skipped
    config = _run_config(model, "generate", use_chat, system, per_token, batch_size, full_path)
    config |= {"alphas": [alpha_label(a) for a in alphas], "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
    config["seed"] = seed
    info = _prompts_info(len(encoded) + len(skipped), skipped)
    from tuco.batching import plan_batches

    r = ranks or env_ranks()
    mine = sum(len(b) for n, b in enumerate(plan_batches([len(e.ids) for e in encoded], batch_size)) if n % r.world == r.rank)
    with open_run(out, config, mode=mode_of(resume, overwrite), key=generation_key, ranks=r, info=info, device=str(model.device)) as run:
        job = Job(model, run, progress=progress, expected=mine * len(alphas))
        for a in alphas:
            text = alpha_text(a)
            job.generate(
                encoded,
                alpha=a,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                chat=use_chat,
                system=system,
                per_token=per_token,
                batch_size=batch_size,
                full_path=full_path,
                key=lambda pid, text=text: (text, pid),  # type: ignore[misc]
            )
    return JobResult(out=run.rows_file, n_rows=run.n_rows, bad=skipped, n_prompts=len(encoded) + len(skipped))
