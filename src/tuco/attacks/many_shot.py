"""Many-shot prefixes (Anil et al.): k in-context user/assistant turns that show a behaviour."""

from __future__ import annotations

from tuco.data.builtin import PERSONA_QUESTION, Statement
from tuco.measures.prompts import Messages


def persona_turn(s: Statement) -> Messages:
    """One shot: the persona question and the answer that MATCHES the behaviour."""
    return [{"role": "user", "content": PERSONA_QUESTION.format(statement=s.statement)}, {"role": "assistant", "content": s.matching}]


def many_shot(shots: list[Statement], target: Statement, k: int) -> Messages:
    """k shots (cycled when fewer are given) then the target question, as one chat."""
    if k and not shots:
        raise ValueError("many-shot prefixes need at least one shot")
    msgs: Messages = []
    for i in range(k):
        msgs += persona_turn(shots[i % len(shots)])
    return msgs + [{"role": "user", "content": PERSONA_QUESTION.format(statement=target.statement)}]


def no_examples(questions: list[str], k: int, target: str) -> str:
    """k plain-text "Q: Could you tell me if ...? A: No" examples then the target question (docs/method.md 5.5)."""
    lines = [f"Q: Could you tell me if {q}?\nA: No" for q in questions[:k]]
    return "\n\n".join(lines + [f"Q: Could you tell me if {target}?\nA:"])
