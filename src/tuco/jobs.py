"""Jobs: score or generate many prompts into a run (``tuco.runs``), resumable and data-parallel.

    tuco.score_to(pair, prompts, "runs/x/scores.jsonl", batch_size=16)            # one process
    tuco.score_to(pair, prompts, "runs/x", resume=True)                          # continue a killed run

Every row is written as soon as its batch finishes. The batches are planned from the prompts' lengths
and the batch size alone, and a rank takes every ``world``-th batch, so a resumed or data-parallel run
forms the very same batches as one uninterrupted process and writes the same rows (bfloat16
included). Run ``torchrun ... your_script.py`` (or ``tuco score --processes N``) for several ranks: the
job reads RANK / WORLD_SIZE from the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuco import __version__
from tuco.errors import PromptError
from tuco.parallel import Ranks, barrier, init
from tuco.parallel import ranks as env_ranks
from tuco.prompts import BadRow, Messages, Prompt, as_prompts
from tuco.runs import Run, plan_batches, prompts_digest, require_unique
from tuco.steering import alpha_label, alpha_text, check_alpha, check_distinct

SCORE_KEYS = {
    "id",
    "prompt",
    "tuco",
    "tuco_unscaled",
    "preco",
    "ptc_l1",
    "ftc_l1",
    "n_tokens",
    "layer_ptc_l1",
    "layer_ftc_l1",
    "alpha",
    "chat",
    "tokens",
    "token_tuco",
    "stage_share",
    "stage_l1",
    "layer_stage_l1",
    "token_stage",
}
GENERATE_KEYS = {
    "id",
    "prompt",
    "alpha",
    "response",
    "tokens",
    "token_ids",
    "token_tuco",
    "prompt_tuco",
    "mean_tuco",
    "n_new_tokens",
    "finished",
    "prompt_tokens",
    "prompt_token_tuco",
    "seed",
    "temperature",
    "stage_share",
    "token_stage_share",
}


@dataclass
class JobResult:
    """What a job left: the rows file, how many rows it holds, the prompts it skipped and why."""

    out: Path
    n_rows: int
    bad: list[BadRow] = field(default_factory=list)
    n_prompts: int = 0


def model_config(model: Any) -> dict[str, Any]:
    """What of the model determines a run's rows: its checkpoints, dtype, device type, tuco's version."""
    param = next(model.tuned.parameters())
    return {
        "checkpoints": list(model.stage_names),
        "dtype": str(param.dtype).removeprefix("torch."),
        "device_type": model.device.type,
        "tuco": __version__,
        "full_path": bool(model.full_path),
    }


def row_base(prompt: Prompt, reserved: set[str]) -> dict[str, Any]:
    """The input's extra fields, carried through (renamed ``input_<key>`` where they clash with ours)."""
    return {(f"input_{k}" if k in reserved else k): v for k, v in prompt.extra.items()}


def prepare_prompts(
    model: Any, prompts: Sequence[str | Messages | Prompt], *, chat: bool | None, system: str | None, extra: int = 0
) -> tuple[list[Any], list[BadRow], bool]:
    """Prompts ready to run: ids unique (else RunError), encoded under the chat template when ``chat``
    (None: when the tokenizer has one), ``extra`` positions left for generation. Returns (encoded, the
    prompts that could not be encoded, whether the template is used); PromptError when none is usable."""
    from tuco.batching import encode_prompts
    from tuco.prompts import has_chat_template

    items = as_prompts(prompts)
    require_unique([p.id for p in items])
    use_chat = has_chat_template(model.tokenizer) if chat is None else chat
    encoded, bad = encode_prompts(model, items, chat=use_chat, system=system, extra=extra)
    if not encoded:
        raise PromptError(
            "no usable prompts" + (f": {bad[0].reason}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "") if bad else "")
        )
    return encoded, bad, use_chat


def _open(
    model: Any,
    out: str | Path,
    verb: str,
    encoded: list[Any],
    skipped: list[BadRow],
    r: Ranks,
    *,
    key: Callable[[dict[str, Any]], Any] | None = None,
    use_chat: bool,
    system: str | None,
    per_token: bool,
    batch_size: int,
    full_path: bool,
    resume: bool,
    overwrite: bool,
    **settings: Any,
) -> Run:
    """The run of a job: its config (everything that determines the rows, for the fingerprint) and info."""
    config = {
        "verb": verb,
        **model_config(model),
        **settings,
        "chat": use_chat,
        "system": system,
        "per_token": per_token,
        "batch_size": batch_size,
        "prompts": prompts_digest((e.prompt.id, e.ids) for e in encoded),
    }
    config["full_path"] = config["full_path"] or full_path
    info = {"n_prompts": len(encoded) + len(skipped), "n_skipped": len(skipped), "skipped": [str(b) for b in skipped[:50]]}
    extra = {"key": key} if key is not None else {}
    return Run(Path(out), config, resume=resume, overwrite=overwrite, rank=r.rank, world=r.world, info=info, **extra)


def _execute(
    run: Run,
    r: Ranks,
    device: str,
    work: list[tuple[list[Any], Callable[[], list[dict[str, Any]]]]],
    order: list[Any],
    progress: Callable[[int, int], None] | None,
) -> int:
    """Open the run on every rank, do this rank's share of ``work`` (batches: their keys and a function
    computing their rows), skipping batches already written, then merge; returns the rows kept."""
    run.open()
    try:
        init(r, device)
        barrier()  # rank 0 has checked and prepared the output
        done = run.done_keys() if run.resume else set()
        barrier()  # every rank has read what exists before anyone appends
        run.start_writing(done)
        mine = [w for i, w in enumerate(work) if i % r.world == r.rank]
        total, finished = sum(len(k) for k, _ in mine), 0
        if progress is not None:
            progress(0, total)  # the run is open: work starts
        for keys, compute in mine:
            if not all(k in done for k in keys):  # a batch cut short by a kill is redone whole
                run.write(compute())
            finished += len(keys)
            if progress is not None:
                progress(finished, total)
    except KeyboardInterrupt:
        run.stop("interrupted", order)
        raise
    except Exception as err:
        run.stop(f"failed: {type(err).__name__}: {str(err)[:300]}", order)
        raise
    if r.world > 1:
        run._close_writer()
        barrier()
    return run.finish(order)


def score_to(
    model: Any,
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
    progress: Callable[[int, int], None] | None = None,
    on_backoff: Callable[[int], None] | None = None,
    ranks: Ranks | None = None,
) -> JobResult:
    """Score every prompt into ``out`` (a .jsonl/.parquet file or a run directory), one row per prompt.

    ``resume`` continues a killed run with the same configuration (refused otherwise, naming what
    differs); ``overwrite`` replaces an existing one (without either, an existing output is refused).
    ``bad``: input rows the caller already rejected (recorded in the manifest). Prompt ids must be unique.
    ``progress(done, total)`` is called after every batch of this rank.
    """
    from tuco.scoring import score_encoded

    r = ranks or env_ranks()
    encoded, skipped, use_chat = prepare_prompts(model, prompts, chat=chat, system=system)
    skipped = list(bad) + skipped
    check_alpha(alpha, model)  # before the run exists: a bad alpha leaves nothing behind
    label = alpha_label(alpha)
    run = _open(
        model,
        out,
        "score",
        encoded,
        skipped,
        r,
        use_chat=use_chat,
        system=system,
        per_token=per_token,
        batch_size=batch_size,
        full_path=full_path,
        resume=resume,
        overwrite=overwrite,
        alpha=label,
    )

    def rows_of(batch: list[int]) -> Callable[[], list[dict[str, Any]]]:
        def compute() -> list[dict[str, Any]]:
            items = [encoded[i] for i in batch]
            scores = score_encoded(
                model, items, alpha=alpha, per_token=per_token, full_path=full_path, batch_size=len(items), on_backoff=on_backoff
            )
            return [
                {
                    **row_base(e.prompt, SCORE_KEYS),
                    "id": e.prompt.id,
                    "prompt": e.prompt.display,
                    **{k: v for k, v in asdict(s).items() if v is not None},
                    "alpha": label,
                    "chat": use_chat,
                }
                for e, s in zip(items, scores)
            ]

        return compute

    plan = plan_batches([len(e.ids) for e in encoded], batch_size)
    work = [([encoded[i].prompt.id for i in b], rows_of(b)) for b in plan]
    n = _execute(run, r, str(model.device), work, [e.prompt.id for e in encoded], progress)
    return JobResult(out=run.rows_file, n_rows=n, bad=skipped, n_prompts=len(encoded) + len(skipped))


def generation_key(row: dict[str, Any]) -> tuple[str, str]:
    """The identity of a generation row: (alpha, prompt id)."""
    return (alpha_text(row["alpha"]), str(row["id"]))


def generate_to(
    model: Any,
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
    progress: Callable[[int, int], None] | None = None,
    ranks: Ranks | None = None,
) -> JobResult:
    """Generate a response to every prompt at every alpha into ``out``; one row per (alpha, prompt).

    Sampling (``temperature`` > 0) with a ``seed`` seeds every batch from (seed, alpha, batch), so
    resumed and data-parallel runs draw the same samples as one uninterrupted process.
    """

    from tuco.generation import check_sampling, generate_batch

    check_sampling(max_new_tokens, temperature, top_p)
    r = ranks or env_ranks()
    encoded, skipped, use_chat = prepare_prompts(model, prompts, chat=chat, system=system, extra=max_new_tokens)
    skipped = list(bad) + skipped
    check_distinct(alphas)
    for a in alphas:
        check_alpha(a, model)
    labels = [alpha_label(a) for a in alphas]
    run = _open(
        model,
        out,
        "generate",
        encoded,
        skipped,
        r,
        key=generation_key,
        use_chat=use_chat,
        system=system,
        per_token=per_token,
        batch_size=batch_size,
        full_path=full_path,
        resume=resume,
        overwrite=overwrite,
        alphas=labels,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
    )

    def rows_of(alpha: Any, batch: list[int], number: int) -> Callable[[], list[dict[str, Any]]]:
        def compute() -> list[dict[str, Any]]:
            items = [encoded[i] for i in batch]
            gens = generate_batch(
                model,
                items,
                number,
                alpha=alpha,
                seed=seed,
                per_token=per_token,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                full_path=full_path,
            )
            rows = []
            for e, gen in zip(items, gens):
                row = {
                    **row_base(e.prompt, GENERATE_KEYS),
                    "id": e.prompt.id,
                    "prompt": e.prompt.display,
                    "alpha": gen.alpha,
                    "response": gen.text,
                    "token_ids": gen.token_ids,
                    "tokens": gen.tokens,
                    "token_tuco": gen.token_tuco,
                    "prompt_tuco": gen.prompt_tuco,
                    "mean_tuco": gen.mean_tuco,
                    "n_new_tokens": len(gen.token_ids),
                    "finished": gen.finished,
                    "seed": seed,
                    "temperature": temperature,
                }
                if per_token:
                    row["prompt_tokens"], row["prompt_token_tuco"] = gen.prompt_tokens, gen.prompt_token_tuco
                if gen.stage_share is not None:
                    row["stage_share"], row["token_stage_share"] = gen.stage_share, gen.token_stage_share
                rows.append(row)
            return rows

        return compute

    plan = plan_batches([len(e.ids) for e in encoded], batch_size)
    work = []
    for a in alphas:
        for number, b in enumerate(plan):
            work.append(([(alpha_text(a), encoded[i].prompt.id) for i in b], rows_of(a, b, number)))
    order = [(alpha_text(a), e.prompt.id) for a in alphas for e in encoded]
    n = _execute(run, r, str(model.device), work, order, progress)
    return JobResult(out=run.rows_file, n_rows=n, bad=skipped, n_prompts=len(encoded) + len(skipped))
