"""lm-evaluation-harness integration: any lm-eval task on the alpha-steered pair.

Importing this module registers the model name ``tuco`` with lm-eval. From the shell, run lm-eval
through tuco's launcher (it registers the model, then hands over to lm-eval's own CLI)::

    python -m tuco.integrations.lm_eval --model tuco --model_args base=B,tuned=T,alpha=1.1 --tasks hellaswag

From Python::

    import tuco.integrations.lm_eval, lm_eval
    lm_eval.simple_evaluate(model="tuco", model_args="base=B,tuned=T,alpha=1.1", tasks=["hellaswag"])

``alpha`` is one number or one per layer separated by ``:`` (``alpha=1:1:1.2``), the syntax of every
tuco command (``tuco.engine.alpha.parse_alpha``).
Loglikelihood and generation both run inside the engine (x + PTC + alpha * FTC at every layer).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from tuco.engine.alpha import parse_alpha
from tuco.models.steering import check_alpha

if TYPE_CHECKING:
    import torch


@register_model("tuco")
class TucoLM(HFLM):
    """lm-eval's HF model with every forward and generate of the tuned model alpha-steered."""

    def __init__(
        self,
        base: str,
        tuned: str,
        alpha: str | float = 1.0,
        dtype: str = "auto",
        device: str | None = None,
        trust_remote_code: bool = False,
        **kwargs: Any,
    ) -> None:
        import torch

        from tuco.models.pair import load_pair

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.alpha = parse_alpha(str(alpha))  # a mistyped alpha fails before the models load
        self.pair = load_pair(str(base), str(tuned), dtype=dtype, device=device, trust_remote_code=bool(trust_remote_code))
        check_alpha(self.alpha, self.pair)
        super().__init__(pretrained=self.pair.tuned, tokenizer=self.pair.tokenizer, device=device, **kwargs)

    def _model_call(self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        with self.pair.engine(alpha=self.alpha):
            out: torch.Tensor = super()._model_call(inps, attn_mask=attn_mask, labels=labels)
            return out

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str], **generation_kwargs: Any) -> Any:
        with self.pair.engine(alpha=self.alpha):
            return super()._model_generate(context, max_length, stop, **generation_kwargs)


def main() -> None:
    """``python -m tuco.integrations.lm_eval ...``: lm-eval's CLI with the ``tuco`` model registered."""
    from lm_eval.__main__ import cli_evaluate

    sys.argv[0] = "lm_eval"
    cli_evaluate()


if __name__ == "__main__":
    main()
