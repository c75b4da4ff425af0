"""Prompt files and rendering: what exactly is fed to the model, and which rows are rejected."""

from __future__ import annotations

import copy

import pytest

from tuco.errors import PromptError, TucoError
from tuco.measures.prompts import Prompt, as_prompts, encode, read_prompts, render


def test_chat_render_ends_with_generation_prompt(tokenizer):
    text = render(tokenizer, Prompt("0", text="Hi"), system="Be brief.")
    assert text == "<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>"
    ids = encode(tokenizer, Prompt("0", text="Hi"))
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<|assistant|>")  # the last token fed to the model
    assert ids[0] != tokenizer.bos_token_id  # the template's text carries its own specials; none added


def test_no_chat_uses_default_special_tokens(tokenizer):
    ids = encode(tokenizer, Prompt("0", text="Hi"), chat=False)
    assert ids == tokenizer("Hi")["input_ids"] and ids[0] == tokenizer.bos_token_id


def test_messages_need_chat(tokenizer):
    with pytest.raises(PromptError, match="use --chat"):
        render(tokenizer, Prompt("7", messages=[{"role": "user", "content": "x"}]), chat=False)


def test_missing_template(tokenizer):
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    assert render(plain, Prompt("0", text="Hi")) == "Hi"  # default: no template -> raw text
    with pytest.raises(PromptError, match="no chat template"):
        render(plain, Prompt("0", text="Hi"), chat=True)


def test_template_rejection_is_a_prompt_error(tokenizer):
    strict = copy.deepcopy(tokenizer)
    strict.chat_template = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}x"
    with pytest.raises(PromptError, match="System role not supported"):
        render(strict, Prompt("3", text="Hi"), system="s")


def test_read_jsonl_csv_txt(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"prompt": "a", "id": "x", "k": 1}\n\n[1]\n{"messages": []}\n{"prompt": "b"}\n')
    good, bad = read_prompts(tmp_path / "a.jsonl")
    assert [(p.id, p.text, p.extra) for p in good] == [("x", "a", {"k": 1}), ("3", "b", {})]
    assert [b.line for b in bad] == [3, 4]
    (tmp_path / "b.csv").write_text('prompt,g\n"multi, comma",1\n,2\n')
    good, bad = read_prompts(tmp_path / "b.csv")
    assert good[0].text == "multi, comma" and good[0].extra == {"g": "1"} and len(bad) == 1
    (tmp_path / "c.txt").write_text("one\n\n  \ntwo\n")
    good, _ = read_prompts(tmp_path / "c.txt")
    assert [p.text for p in good] == ["one", "two"]


@pytest.mark.parametrize(
    "name,content,msg",
    [
        ("x.csv", "text\nhello\n", "'prompt' column"),
        ("x.tsv", "a", "unsupported prompt file type"),
    ],
)
def test_bad_files(tmp_path, name, content, msg):
    (tmp_path / name).write_text(content)
    with pytest.raises(TucoError, match=msg):
        read_prompts(tmp_path / name)


def test_empty_prompt_in_api():
    with pytest.raises(PromptError, match="empty"):
        as_prompts(["ok", "   "])


def test_csv_bad_records_are_reported_and_the_rest_read(tmp_path):
    f = tmp_path / "p.csv"
    f.write_bytes(b'prompt,topic\nhello,a\nbad \xff byte,b\ntoo,many,fields\n"with, comma",c\n')
    good, bad = read_prompts(f)
    assert [(p.id, p.text, p.extra) for p in good] == [("0", "hello", {"topic": "a"}), ("3", "with, comma", {"topic": "c"})]
    assert [(b.line, b.reason.split(";")[0]) for b in bad] == [(3, "not valid UTF-8 text"), (4, "1 more field(s) than the header's 2")]
