"""The public datasets of docs/method.md section 7, by hub name: each declared with its schema (config,
split, the columns read and their value formats) and streamed, so that only the rows an experiment
uses are downloaded. Nothing here runs in tests against the real hub: the tests load recorded-schema
fixtures through the very same ``datasets`` code path (streaming included).

``hf:NAME[:SUBSET]``: SUBSET is a config (HarmBench's standard / contextual / copyright, an MMLU subject),
a split (JBB-Behaviors harmful / benign), a column (MultiJail's language) or a file
(model-written-evals' persona/NAME.jsonl), as each source declares.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from tuco.errors import ConfigError, InputError

PARQUET_CONVERSION = "refs/convert/parquet"


@dataclass(frozen=True)
class HubSource:
    """How one hub dataset is read: what SUBSET means, the columns read and their formats.

    ``data_files``/``revision``: a file by path on a given revision (OpenWebText's parquet conversion:
    its repository still ships a loading script, which ``datasets`` >= 4 refuses). ``formats``: the value
    formats in words (shown by ``--validate`` and checked on the rows read).
    """

    repo: str
    split: str = "train"
    columns: tuple[str, ...] = ()
    config: str | None = None
    subset: str = "none"  # none | config | split | column | file
    subset_default: str | None = None
    subset_choices: tuple[str, ...] = ()
    data_files: str | None = None
    revision: str | None = None
    formats: str = ""
    kind: str = "prompts"
    builder: str | None = None  # a packaged builder ("parquet", "json") reading data_files
    root: str | None = None  # where data_files live instead of the hub (a local mirror; tests)

    def resolve(self, subset: str | None) -> HubSource:
        """This source with SUBSET applied (config, split, column or file), or a ConfigError naming what
        is missing or unknown."""
        value = subset or self.subset_default
        if self.subset == "none":
            if subset:
                raise ConfigError(f"hf:{self.repo} takes no subset (got {subset!r})")
            return self
        if value is None:
            raise ConfigError(
                f"hf:{self.repo} needs a {self.subset}: write hf:{self.repo}:{self.subset.upper()}"
                + (
                    f" (one of {', '.join(self.subset_choices[:12])}{', ...' if len(self.subset_choices) > 12 else ''})"
                    if self.subset_choices
                    else ""
                )
            )
        if self.subset_choices and value not in self.subset_choices:
            raise ConfigError(f"hf:{self.repo}: unknown {self.subset} {value!r}; choose from {', '.join(self.subset_choices)}")
        if self.subset == "config":
            return replace(self, config=value)
        if self.subset == "split":
            return replace(self, split=value)
        if self.subset == "column":
            return replace(self, columns=(value,))
        if not re.fullmatch(r"persona/[A-Za-z0-9_.-]+\.jsonl", value):
            raise ConfigError(
                f"hf:{self.repo}: give a persona file, e.g. hf:{self.repo}:persona/psychopathy.jsonl (other folders use other schemas)"
            )
        return replace(self, data_files=value)


MMLU_SUBJECTS = (
    "abstract_algebra",
    "anatomy",
    "astronomy",
    "business_ethics",
    "clinical_knowledge",
    "college_biology",
    "college_chemistry",
    "college_computer_science",
    "college_mathematics",
    "college_medicine",
    "college_physics",
    "computer_security",
    "conceptual_physics",
    "econometrics",
    "electrical_engineering",
    "elementary_mathematics",
    "formal_logic",
    "global_facts",
    "high_school_biology",
    "high_school_chemistry",
    "high_school_computer_science",
    "high_school_european_history",
    "high_school_geography",
    "high_school_government_and_politics",
    "high_school_macroeconomics",
    "high_school_mathematics",
    "high_school_microeconomics",
    "high_school_physics",
    "high_school_psychology",
    "high_school_statistics",
    "high_school_us_history",
    "high_school_world_history",
    "human_aging",
    "human_sexuality",
    "international_law",
    "jurisprudence",
    "logical_fallacies",
    "machine_learning",
    "management",
    "marketing",
    "medical_genetics",
    "miscellaneous",
    "moral_disputes",
    "moral_scenarios",
    "nutrition",
    "philosophy",
    "prehistory",
    "professional_accounting",
    "professional_law",
    "professional_medicine",
    "professional_psychology",
    "public_relations",
    "security_studies",
    "sociology",
    "us_foreign_policy",
    "virology",
    "world_religions",
)
MULTIJAIL_LANGUAGES = ("en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv")

SOURCES: dict[str, HubSource] = {
    # The repository ships a loading script (datasets >= 4 refuses scripts): read the hub's own parquet
    # conversion of it instead, one shard, streamed; the paper uses the first 1000 records.
    "Skylion007/openwebtext": HubSource(
        "Skylion007/openwebtext",
        columns=("text",),
        builder="parquet",
        data_files="plain_text/partial-train/0000.parquet",
        revision=PARQUET_CONVERSION,
        formats="text: one web document per row",
    ),
    "Anthropic/hh-rlhf": HubSource(
        "Anthropic/hh-rlhf", split="test", columns=("chosen",), formats="chosen: a transcript '\\n\\nHuman: ...\\n\\nAssistant: ...'"
    ),
    "walledai/AdvBench": HubSource("walledai/AdvBench", columns=("prompt",), formats="prompt: one harmful behaviour"),
    "walledai/HarmBench": HubSource(
        "walledai/HarmBench",
        columns=("prompt", "category"),
        subset="config",
        subset_default="standard",
        subset_choices=("standard", "contextual", "copyright"),
        formats="prompt: a behaviour; contextual rows add 'context' (put before the request)",
    ),
    "JailbreakBench/JBB-Behaviors": HubSource(
        "JailbreakBench/JBB-Behaviors",
        config="behaviors",
        columns=("Goal",),
        subset="split",
        subset_default="harmful",
        subset_choices=("harmful", "benign"),
        formats="Goal: one behaviour",
    ),
    "DAMO-NLP-SG/MultiJail": HubSource(
        "DAMO-NLP-SG/MultiJail",
        subset="column",
        subset_default="en",
        subset_choices=MULTIJAIL_LANGUAGES,
        columns=("en",),
        formats="one column per language, the same request in each",
    ),
    "Anthropic/model-written-evals": HubSource(
        "Anthropic/model-written-evals",
        columns=("statement", "answer_matching_behavior"),
        subset="file",
        builder="json",
        kind="statements",
        formats="answer_matching_behavior: ' Yes' or ' No' (with a leading space)",
    ),
    "cais/mmlu": HubSource(
        "cais/mmlu",
        split="test",
        columns=("question", "choices", "answer"),
        subset="config",
        subset_choices=(*MMLU_SUBJECTS, "all"),
        kind="questions",
        formats="choices: a list of 4 strings; answer: the index of the right one (0-3)",
    ),
}


def source(name: str, subset: str | None) -> HubSource:
    """The declared source ``hf:NAME[:SUBSET]`` with its subset applied."""
    if name not in SOURCES:
        raise ConfigError(
            f"no loader for hub dataset {name!r}: known are {', '.join(sorted(SOURCES))}; or export it to a .jsonl file and pass its path"
        )
    return SOURCES[name].resolve(subset)


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as err:
        raise ConfigError("hf: sources need the datasets package: pip install 'tuco[hub]'") from err
    return datasets


def _load_kwargs(src: HubSource, revision: str | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    kwargs: dict[str, Any] = {"split": src.split, "streaming": True}
    if src.builder:  # a file by path, read by a packaged builder: hf://datasets/REPO@REVISION/FILE (or under ``root``)
        rev = (revision or src.revision or "main").replace("/", "%2F")
        root = src.root or f"hf://datasets/{src.repo}@{rev}"
        kwargs["data_files"] = {src.split: f"{root}/{src.data_files}"}
        return (src.builder,), kwargs
    if revision or src.revision:
        kwargs["revision"] = revision or src.revision
    return ((src.repo, src.config) if src.config else (src.repo,)), kwargs


def resolve_revision(src: HubSource) -> str | None:
    """The commit the source will be read at (recorded in the manifest): the pinned one, else the hub's
    current sha of the repository (None when offline)."""
    if src.revision and src.revision != PARQUET_CONVERSION:
        return src.revision
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return src.revision
    try:
        from huggingface_hub import HfApi

        info = HfApi().dataset_info(src.repo, revision=src.revision)
        return str(info.sha)
    except Exception:  # noqa: BLE001 - no network, no token: the run records what it asked for
        return src.revision


def rows(src: HubSource, limit: int | None = None, revision: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a source, streamed: at most ``limit`` are downloaded. The first row is checked against
    the declared columns (InputError naming a missing one); the loading-script error of ``datasets``
    >= 4 becomes a one-line error naming the fix."""
    datasets = _datasets()
    args, kwargs = _load_kwargs(src, revision)
    try:
        stream = datasets.load_dataset(*args, **kwargs)
        it = iter(stream)
        first = next(it, None)
    except Exception as err:  # noqa: BLE001 - datasets raises many kinds; each becomes one line
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "scripts are no longer supported" in text or "trust_remote_code" in text:
            raise InputError(
                f"hf:{src.repo} ships a loading script, which datasets >= 4 refuses; use its parquet conversion "
                f"(revision {PARQUET_CONVERSION}) or export the rows to a .jsonl file"
            ) from err
        raise InputError(
            f"cannot read hf:{src.repo} ({type(err).__name__}: {text}); check the name and your network "
            "(HF_HUB_OFFLINE=1 forbids downloads), or export the rows to a .jsonl file"
        ) from err
    if first is None:
        return
    check_columns(src, first)
    yield from itertools.islice(itertools.chain([first], it), limit)


def check_columns(src: HubSource, row: dict[str, Any]) -> None:
    """Raise InputError naming the first declared column the row lacks, or a value in the wrong format."""
    for col in src.columns:
        if col not in row:
            raise InputError(
                f"hf:{src.repo} has no column {col!r} (columns: {', '.join(sorted(row))}); its schema changed: "
                "pin an older revision or export the rows to a .jsonl file"
            )
    if "answer_matching_behavior" in src.columns and str(row["answer_matching_behavior"]).strip() not in ("Yes", "No"):
        raise InputError(
            f"hf:{src.repo}:{src.data_files}: answer_matching_behavior is {row['answer_matching_behavior']!r}, "
            "not ' Yes'/' No': only persona/*.jsonl files are yes/no statements"
        )


@dataclass
class Loaded:
    """Items read from a hub source, with the revision they were read at."""

    items: list[Any]
    revision: str | None = None
    source: HubSource | None = None
    notes: list[str] = field(default_factory=list)


def parse_hh_rlhf(text: str) -> list[dict[str, str]]:
    """An HH-RLHF transcript ("\\n\\nHuman: ... \\n\\nAssistant: ...") as messages up to the last human turn."""
    parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + text.lstrip("\n"))
    msgs: list[dict[str, str]] = []
    for role, content in zip(parts[1::2], parts[2::2]):
        msgs.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    while msgs and msgs[-1]["role"] == "assistant":
        msgs.pop()
    return msgs


def _prompt_of(src: HubSource) -> Callable[[dict[str, Any]], Any]:
    if src.repo == "Anthropic/hh-rlhf":
        return lambda r: parse_hh_rlhf(r["chosen"])
    if src.repo == "walledai/HarmBench" and src.config == "contextual":
        return lambda r: f"{r['context']}\n\n---\n\n{r['prompt']}" if r.get("context") else r["prompt"]
    return lambda r: r[src.columns[0]]


def load(name: str, subset: str | None, limit: int | None = None) -> Loaded:
    """Prompts (or raw records for statements/questions) of ``hf:NAME[:SUBSET]``, streamed."""
    src = source(name, subset)
    revision = resolve_revision(src)
    got = list(rows(src, limit, revision if revision != PARQUET_CONVERSION else None))
    if src.kind != "prompts":
        return Loaded(got, revision, src)
    pick = _prompt_of(src)
    return Loaded([p for r in got if (p := pick(r))], revision, src)
