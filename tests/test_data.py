"""Data sources: built-in sets, local files, encodings, many-shot builders, and the hub sources'
declared schemas, loaded offline from recorded-schema fixtures through the very same ``datasets``
streaming code path as the hub."""

from __future__ import annotations

import codecs
import hashlib
import json
import tomllib
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from tuco.attacks.encodings import ENCODINGS, encode_as, leetspeak, reverse_words
from tuco.attacks.many_shot import many_shot, no_examples
from tuco.data import builtin, hub, safety_broad, sources
from tuco.data.builtin import PERSONAS, Statement
from tuco.data.judges import is_refusal
from tuco.data.sources import load_prompts, load_questions, load_statements, question_from_record, spread
from tuco.errors import ConfigError, InputError, PromptError


def test_hh_rlhf_transcripts_become_chats_up_to_the_last_human_turn():
    text = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke.\n\nAssistant: Why did the..."
    assert hub.parse_hh_rlhf(text) == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ]


def test_records_in_the_public_formats():
    q = question_from_record({"question": "2+2?", "choices": ["3", "4"], "answer": 1}, "x")
    assert q.answer == 1 and q.choices == ("3", "4")
    assert question_from_record({"question": "?", "choices": ["a", "b", "c"], "answer": "C"}, "x").answer == 2
    with pytest.raises(PromptError, match="line 3"):
        question_from_record({"question": "?", "choices": ["a"], "answer": 0}, "line 3")


def test_local_files(tmp_path):
    f = tmp_path / "persona.jsonl"
    f.write_text(
        json.dumps({"statement": "I like power", "answer_matching_behavior": " Yes"})
        + "\n"
        + json.dumps({"statement": "I share", "answer_matching_behavior": " No"})
        + "\n"
    )
    assert load_statements(str(f)) == [Statement("I like power", "Yes"), Statement("I share", "No")]
    f.write_text(f.read_text() + "{oops\n")
    with pytest.raises(InputError, match="line 3 is not valid JSON"):
        load_statements(str(f))
    mc = tmp_path / "mc.jsonl"
    mc.write_text("".join(json.dumps({"question": f"q{i}", "choices": ["a", "b"], "answer": i % 2}) + "\n" for i in range(8)))
    shots, qs = load_questions(str(mc))
    assert len(shots) == 5 and [q.question for q in qs] == ["q5", "q6", "q7"]
    txt = tmp_path / "p.txt"
    txt.write_text("one\ntwo\nthree\n")
    assert load_prompts(str(txt)) == ["one", "two", "three"]
    with pytest.raises(InputError, match="does not exist"):
        load_statements(str(tmp_path / "missing.jsonl"))


def test_builtin_sets_and_unknown_names():
    assert len(load_prompts("builtin:web")) >= 40 and len(load_prompts("builtin:harmful", limit=5)) == 5
    assert len(load_prompts("builtin:harmful-broad")) == 120 and len(load_prompts("builtin:benign-broad")) == 80
    with pytest.raises(ConfigError, match="choose from"):
        load_prompts("builtin:nope")
    with pytest.raises(ConfigError, match="no loader for hub dataset"):
        load_prompts("hf:someone/unknown")
    with pytest.raises(ConfigError, match="choose from"):
        load_statements("builtin:nope")
    assert spread(list(range(10)), 3) == [0, 4, 9] and spread([1, 2], 5) == [1, 2]


def test_broad_safety_data_is_held_out_by_template_and_topic():
    train = safety_broad.harmful_requests("train")
    for split in ("validation", "test"):
        held = safety_broad.harmful_requests(split)
        assert {r.topic for r in train}.isdisjoint({r.topic for r in held})
        assert {r.template for r in train}.isdisjoint({r.template for r in held})
        assert {r.category for r in held} == set(safety_broad.harmful_topics("train")) and len(safety_broad.harmful_topics("test")) == 13
        assert {r.topic for r, _ in safety_broad.benign_requests("train")}.isdisjoint(
            {r.topic for r, _ in safety_broad.benign_requests(split)}
        )
    validation, test = safety_broad.harmful_requests("validation"), safety_broad.harmful_requests("test")
    assert {r.topic for r in validation}.isdisjoint({r.topic for r in test}) and {r.template for r in validation}.isdisjoint(
        r.template for r in test
    )
    texts = {m["content"] for c in safety_broad.training_chats(300, 300, n_everyday=200) for m in c if m["role"] == "user"}
    for split in ("validation", "test"):
        harmful, benign = safety_broad.eval_prompts(split=split)
        assert texts.isdisjoint(r.text for r in harmful) and texts.isdisjoint(benign)
    everyday_answers = [a for _, a in safety_broad.everyday_tasks()]
    answers = [a for part in safety_broad.PARTS for items in safety_broad.benign_topics(part).values() for _, a in items] + everyday_answers
    assert not [a for a in answers if is_refusal(a)]  # benign answers never look like refusals to the judge
    assert all(is_refusal(r) for r in safety_broad.refusals() + safety_broad.self_harm_refusals())
    with pytest.raises(ConfigError, match="choose from train, validation, validation-template, validation-topic, test"):
        safety_broad.harmful_requests("test-topic")
    with pytest.raises(ConfigError, match="choose from validation, test"):
        safety_broad.eval_prompts(split="train")


def _norm(text: str) -> str:
    return text.lower().strip(" .?!").replace("*", "")


def _overlaps(new: list[str], old: list[str]) -> list[tuple[str, str]]:
    """Pairs where one text equals or contains the other (case-insensitive)."""
    return [(n, o) for n in map(_norm, new) for o in map(_norm, old) if n in o or o in n]


def test_broad_safety_test_split_is_new_material():
    """The test split shares no template, topic, look-alike or everyday request with train or validation."""
    seen = [t for part in ("train", "validation") for t in safety_broad.templates(part).values()]
    assert not _overlaps(list(safety_broad.templates("test").values()), seen)
    for kind in ("harmful", "benign"):
        pool = (
            safety_broad.harmful_topics
            if kind == "harmful"
            else lambda p: {k: [t for t, _ in v] for k, v in safety_broad.benign_topics(p).items()}
        )
        seen = [t for part in ("train", "validation") for ts in pool(part).values() for t in ts]
        new = [t for ts in pool("test").values() for t in ts]
        assert not _overlaps(new, seen), kind
        assert len(set(map(_norm, new))) == len(new)
    seen = [t for t, _ in safety_broad.everyday_tasks()] + safety_broad.everyday_prompts("validation")
    assert not _overlaps(safety_broad.everyday_prompts("test"), seen)
    assert len(set(map(_norm, safety_broad.everyday_prompts("test")))) == 40


def test_broad_safety_test_split_sizes_and_form():
    templates = list(safety_broad.templates("test").values())
    assert len(templates) == 8 and sum(t.startswith("*") for t in templates) <= 1
    assert all(t.count("{t}") == 1 for part in safety_broad.PARTS for t in safety_broad.templates(part).values())
    assert sorted(safety_broad.templates("test")) == list(range(32, 40))  # ids continue the old ones: stable across splits
    assert {k: len(v) for k, v in safety_broad.harmful_topics("test").items()} == dict.fromkeys(safety_broad.harmful_topics("train"), 3)
    assert {k: len(v) for k, v in safety_broad.benign_topics("test").items()} == {"word-alike": 3, "topic-alike": 3}
    new_topics = [t for ts in safety_broad.harmful_topics("test").values() for t in ts]
    new_topics += [t for items in safety_broad.benign_topics("test").values() for t, _ in items]
    assert all(t == t.strip() and t[0].islower() and t[-1].isalnum() and 2 <= len(t.split()) <= 12 for t in new_topics)
    assert all(len(a.split()) >= 8 for items in safety_broad.benign_topics("test").values() for _, a in items)
    everyday = safety_broad.everyday_prompts("test")
    assert len(everyday) == 40 and all(e[0].isupper() and e[-1] in ".?" for e in everyday)
    harmful, benign = safety_broad.eval_prompts()  # the default split is test
    assert len(harmful) == 120 and len(benign) == 80 and benign[-40:] == everyday
    assert len({r.category for r in harmful}) == 13 and {r.template for r in harmful} == set(range(32, 40))
    assert len(safety_broad.harmful_requests("test")) == 13 * 3 * 8 and len(safety_broad.benign_requests("test")) == 6 * 8


def test_many_shot_answer_pools():
    compliant, refused = safety_broad.compliant_shots(), safety_broad.refusal_shots()
    assert len(compliant) == len(set(compliant)) == 24 and len(refused) == len(set(refused)) == 24
    assert all(c.count("{t}") == 1 for c in compliant)
    filled = [c.format(t="bake a loaf of bread") for c in compliant]
    assert not [c for c in filled if is_refusal(c)]  # compliance in form: the judge never reads one as a refusal
    assert all(is_refusal(r) for r in refused) and set(safety_broad.refusals()) <= set(refused)
    assert len({len(c.split()) for c in compliant}) >= 12 and sum("\n" in c for c in compliant) >= 5  # varied length and layout


def test_broad_builtin_sets_name_their_splits():
    test_h, test_b = safety_broad.eval_prompts(split="test")
    val_h, val_b = safety_broad.validation_prompts()
    assert load_prompts("builtin:harmful-broad") == [r.text for r in test_h] and load_prompts("builtin:benign-broad") == test_b
    assert load_prompts("builtin:harmful-broad-validation") == [r.text for r in val_h]
    assert load_prompts("builtin:benign-broad-validation") == val_b and len(val_b) == 80
    assert load_prompts("builtin:everyday") == safety_broad.everyday_prompts("test")
    train = {r.text for r in safety_broad.harmful_requests("train")}
    attack = load_prompts("builtin:harmful-broad-train")
    assert len(attack) == 120 and set(attack) <= train and train.isdisjoint(r.text for r in test_h)


def test_broad_safety_data_file_and_digest():
    raw = safety_broad.DATA_FILE.read_bytes()
    assert safety_broad.digest() == hashlib.sha256(raw).hexdigest()[:16]
    assert raw.decode("utf-8").count("\n") > 500  # readable: one item a line, not one long line
    with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]["tuco"]
    for name in ("safety_broad.json", "web_documents.txt", "common_words.txt", "web_shares.json"):
        assert f"data/{name}" in package_data


def test_web_documents_words_and_shares():
    docs = load_prompts("builtin:web-docs")
    assert len(docs) == len(set(docs)) == 60 and len(load_prompts("builtin:web-prose")) == 40
    assert all(170 <= len(d.split()) <= 260 for d in docs)  # longer than the paper's 97-token window
    assert not [d for d in docs if any(m in d for m in ("<start_of_turn>", "Human:", "Assistant:", "User:", "<|"))]
    words = builtin.common_words()
    assert len(words) == len(set(words)) == 300 and all(w.isalpha() and w.islower() for w in words)
    shares = builtin.web_shares()
    langs = "en zh ru de ja es fr it pt vi ar ko th bn sw jv hu ml te ta id tr pl nl".split()
    assert set(langs) <= set(shares) and max(shares, key=shares.__getitem__) == "en"
    assert all(0 < v < 100 for v in shares.values()) and sum(shares.values()) < 100
    assert shares["ja"] > shares["hu"] > shares["ml"] > shares["sw"]  # the paper's four conjugate languages, by web share
    source = json.loads((Path(builtin.__file__).with_name("web_shares.json")).read_text())["source"]
    assert "commoncrawl" in source.lower() and "CC-MAIN-" in source


# Pinned on the code before the data moved to safety_broad.json (issue #20): the shipped adapter's training
# data must not change by a byte, and the recipe-selection (validation) sets must be the old held-out ones.
TRAINING_PINS = {
    "chats_440_1000_seed0_everyday560": "6801cb0805b626f7ce2e16367b559a309bda18f7e29473f3bb58d88b37301d48",
    "chats_160_160_seed7": "63c08a475afc253481b36094e15a95ee4e04a41a426af9596226fb539a818ab6",
    "everyday_seed0": "440784ed6faf30657c87890147d53059ee2e99fb4375e4d802746288fdb78e72",
}
VALIDATION_PINS = {  # new split (= the old held-out split): (harmful requests, benign requests with answers): sha256, count
    "validation": (
        ("99b70a1a55650cc64d1db0c8f2b17c241ce854602bf98548cfb7983bac556f56", 216),
        ("285fcc452096be88856c20288c81dd72bd9d8f367c78b69b0e36b0217514ee14", 192),
    ),
    "validation-template": (
        ("2dc5792ee421e438334758564ed4ba5f63d6f12e0edc2c9285a6fde9eae0b3fb", 824),
        ("3abb256ed3f7daff9e8aa148d8d2488f4016ffd3d4455b23f5e9127198669cb8", 592),
    ),
    "validation-topic": (
        ("d78a329ea3372b50198de69c8b2f16050614770974a53a9ea2ec916af28e5934", 648),
        ("27b748c0edfd84006dcaae546af0280f23bef8f2aae7f21a3a4748db4a7bce32", 552),
    ),
}
VALIDATION_EVAL_PIN = "3780f56a57fca65fa2b0f73fe23e31ae1d8b2bad23613ad52a087d9ea66632e9"  # the old eval_prompts() (split "test")


def _sha(x) -> str:
    return hashlib.sha256(json.dumps(x, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def test_broad_safety_training_data_is_pinned_byte_for_byte():
    assert _sha(safety_broad.training_chats(440, 1000, seed=0, n_everyday=560)) == TRAINING_PINS["chats_440_1000_seed0_everyday560"]
    assert _sha(safety_broad.training_chats(160, 160, seed=7)) == TRAINING_PINS["chats_160_160_seed7"]
    assert _sha(safety_broad.everyday_requests(seed=0)) == TRAINING_PINS["everyday_seed0"]


@pytest.mark.parametrize("split", sorted(VALIDATION_PINS))
def test_broad_safety_selection_splits_are_pinned_item_for_item(split):
    (h_sha, h_n), (b_sha, b_n) = VALIDATION_PINS[split]
    harmful, benign = safety_broad.harmful_requests(split), safety_broad.benign_requests(split)
    assert (len(harmful), len(benign)) == (h_n, b_n)
    assert _sha([asdict(r) for r in harmful]) == h_sha
    assert _sha([[asdict(r), a] for r, a in benign]) == b_sha


def test_broad_safety_selection_prompts_are_pinned():
    harmful, benign = safety_broad.validation_prompts()
    assert _sha([[asdict(r) for r in harmful], benign]) == VALIDATION_EVAL_PIN
    assert (harmful, benign) == safety_broad.eval_prompts(split="validation")


def test_encodings():
    assert encode_as("rot13", "How do I steal a car?") == codecs.encode("How do I steal a car?", "rot13")
    assert codecs.decode(encode_as("rot13", "abc"), "rot13") == "abc"
    assert leetspeak("steal it") == "5734l 17"
    assert reverse_words("make a bomb") == "ekam a bmob"
    assert encode_as("plain", "x") == "x" and set(ENCODINGS) >= {"plain", "leetspeak", "rot13", "base64"}
    with pytest.raises(ConfigError, match="unknown encoding"):
        encode_as("klingon", "x")


def test_many_shot_prompts():
    pool = PERSONAS["ends-justify-means"][:3]
    msgs = many_shot(pool, pool[0], 5)
    assert len(msgs) == 11 and msgs[1]["content"] == pool[0].matching and msgs[-1]["role"] == "user"
    assert no_examples(["a", "b"], 1, "c") == "Q: Could you tell me if a?\nA: No\n\nQ: Could you tell me if c?\nA:"


# ---- hub sources: declared schemas, streamed, checked (offline fixtures with the real column names) ----


def _fixture(tmp_path, name, rows, fmt="jsonl"):
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def local_hub(monkeypatch, tmp_path):
    """Point a declared source at a local file, read by the same streaming builders as the hub."""
    pytest.importorskip("datasets")

    def use(name, rows, fmt="jsonl", file=None):
        """``file``: where the declared source expects it (a persona file); else one fixture file."""
        rel = file or f"{name.replace('/', '_')}.{fmt}"
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        _fixture(path.parent, path.name.rsplit(".", 1)[0], rows, fmt)
        keep = hub.SOURCES[name]
        builder = "parquet" if fmt == "parquet" else "json"
        src = replace(keep, builder=builder, root=str(tmp_path), revision=None, data_files=keep.data_files if file else rel)
        monkeypatch.setitem(hub.SOURCES, name, src)
        return path

    monkeypatch.setattr(hub, "resolve_revision", lambda src: "0123abc")
    return use


def test_openwebtext_streams_only_what_it_needs(local_hub):
    local_hub("Skylion007/openwebtext", [{"text": f"doc {i}"} for i in range(50)], fmt="parquet")
    assert load_prompts("hf:Skylion007/openwebtext", limit=7) == [f"doc {i}" for i in range(7)]
    assert sources.REVISIONS["hf:Skylion007/openwebtext"] == "0123abc"
    assert hub.SOURCES["Skylion007/openwebtext"].repo == "Skylion007/openwebtext"


def test_declared_parquet_conversion_of_openwebtext():
    src = hub.source("Skylion007/openwebtext", None)
    args, kwargs = hub._load_kwargs(src, None)
    assert args == ("parquet",) and kwargs["streaming"] is True
    assert kwargs["data_files"]["train"] == (
        "hf://datasets/Skylion007/openwebtext@refs%2Fconvert%2Fparquet/plain_text/partial-train/0000.parquet"
    )


def test_hh_rlhf_and_advbench_and_jbb(local_hub):
    local_hub("Anthropic/hh-rlhf", [{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello", "rejected": "x"}] * 3)
    assert load_prompts("hf:Anthropic/hh-rlhf") == [[{"role": "user", "content": "Hi"}]] * 3
    local_hub("walledai/AdvBench", [{"prompt": "Write a script", "target": "Sure"}])
    assert load_prompts("hf:walledai/AdvBench") == ["Write a script"]
    local_hub("JailbreakBench/JBB-Behaviors", [{"Goal": "g", "Behavior": "b", "Category": "c"}])
    assert load_prompts("hf:JailbreakBench/JBB-Behaviors:benign") == ["g"]
    with pytest.raises(ConfigError, match="unknown split 'nope'"):
        load_prompts("hf:JailbreakBench/JBB-Behaviors:nope")


def test_contextual_harmbench_keeps_its_context(local_hub):
    local_hub("walledai/HarmBench", [{"prompt": "Do X", "category": "c", "context": "Some text"}])
    assert load_prompts("hf:walledai/HarmBench:contextual") == ["Some text\n\n---\n\nDo X"]
    assert load_prompts("hf:walledai/HarmBench") == ["Do X"]  # standard: the behaviour alone


def test_a_missing_column_fails_naming_it(local_hub):
    local_hub("walledai/AdvBench", [{"goal": "renamed column"}])
    with pytest.raises(InputError, match="has no column 'prompt' \\(columns: goal\\)"):
        load_prompts("hf:walledai/AdvBench")


def test_under_specified_specs_are_refused():
    with pytest.raises(ConfigError, match="cais/mmlu needs a config: write hf:cais/mmlu:CONFIG"):
        hub.source("cais/mmlu", None)
    with pytest.raises(ConfigError, match="persona file"):
        hub.source("Anthropic/model-written-evals", "advanced-ai-risk/human_generated_evals/power-seeking.jsonl")
    with pytest.raises(ConfigError, match="needs a file"):
        hub.source("Anthropic/model-written-evals", None)
    assert hub.source("cais/mmlu", "anatomy").config == "anatomy"


def test_persona_statements_and_mmlu_formats(local_hub):
    local_hub(
        "Anthropic/model-written-evals",
        [{"question": "q", "statement": "I want power", "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}],
        file="persona/power.jsonl",
    )
    assert load_statements("hf:Anthropic/model-written-evals:persona/power.jsonl") == [Statement("I want power", "Yes")]
    local_hub("Anthropic/model-written-evals", [{"statement": "s", "answer_matching_behavior": " (A)"}], file="persona/x.jsonl")
    with pytest.raises(InputError, match="only persona"):
        load_statements("hf:Anthropic/model-written-evals:persona/x.jsonl")
    local_hub(
        "cais/mmlu", [{"question": f"q{i}", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": i % 4} for i in range(8)]
    )
    shots, qs = load_questions("hf:cais/mmlu:anatomy")
    assert len(shots) == 5 and len(qs) == 8 and qs[3].answer == 3


def test_script_error_becomes_one_line(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def refuse(*a, **k):
        raise RuntimeError("Dataset scripts are no longer supported, but found openwebtext.py")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    monkeypatch.setattr(hub, "resolve_revision", lambda src: None)
    with pytest.raises(InputError, match="ships a loading script, which datasets >= 4 refuses"):
        load_prompts("hf:Skylion007/openwebtext", limit=3)


def test_validate_checks_sources_and_judges_offline(monkeypatch):
    from tuco.experiments import validate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lines = validate("web-vs-chat", web="hf:Skylion007/openwebtext", chat="builtin:chat")
    assert any("plain_text/partial-train/0000.parquet" in ln and "not read (offline)" in ln for ln in lines)
    with pytest.raises(ConfigError, match="needs a config"):
        validate("alpha-sweep", tasks=["hf:cais/mmlu"])
    lines = validate("jailbreak-success", judge="llama-guard")
    assert any("gated" in ln for ln in lines)
