"""Alpha: one text syntax everywhere (CLI, grids, lm-eval args), validated in one place."""

from __future__ import annotations

import pytest

from tuco.engine.alpha import StageAlphas, alpha_label, alpha_text, parse_alpha
from tuco.errors import ConfigError
from tuco.models.steering import check_alpha


def test_alpha_syntax():
    assert parse_alpha("1.1") == 1.1
    assert parse_alpha("1:0.5:2") == (1.0, 0.5, 2.0)
    assert parse_alpha("1/0.5") == (1.0, 0.5) and isinstance(parse_alpha("1/0.5"), StageAlphas)
    assert parse_alpha("1/1:0:0.5") == (1.0, (1.0, 0.0, 0.5))
    assert not isinstance(parse_alpha("1:0.5"), StageAlphas)
    for text in ("1.1", "1:0.5:2", "1/0.5", "1/1:0:0.5"):
        assert alpha_text(parse_alpha(text)) == text
    assert alpha_label((1, 0.5)) == "1:0.5" and alpha_label(parse_alpha("1/0.5")) == "1/0.5" and alpha_label(2) == 2.0


@pytest.mark.parametrize(
    "bad,msg",
    [("x", "is not a number"), ("-1", ">= 0"), ("inf", ">= 0"), ("nan", ">= 0"), ("1,1", "is not a number"), ("1;1", "is not a number")],
)
def test_alpha_errors_name_the_text(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_alpha(bad)


def test_alpha_must_fit_the_model(llama_pair):
    check_alpha(1.0, llama_pair)
    check_alpha((1.0, 1.0, 0.5), llama_pair)
    with pytest.raises(ConfigError, match="has 2 values but the model has 3 layers"):
        check_alpha((1.0, 0.5), llama_pair)
    with pytest.raises(ConfigError, match="2 entries but there is 1 fine-tuning stage;"):
        check_alpha(parse_alpha("1/0.5"), llama_pair)  # per stage on a pair: refused, never read as per layer
