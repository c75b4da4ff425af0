"""The demos: the shipped pairs' training recipes and evaluators, the null adapters, ``tuco demo`` (the
paper's analyses as presets on a shipped pair) and tiny random pairs for tests and benches. A client of
everything; only the CLI imports it. The shipped pairs themselves are ``tuco.models.shipped``.
"""
