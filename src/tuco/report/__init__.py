"""Self-contained HTML reports built only from runs (rows + manifest + metrics + plots). Never imports torch.

``load`` reads runs from disk (on ``tuco.load_run``); ``model`` turns them into a ``Page`` (pure data:
``groups`` for strata and statistics, ``findings``, ``tokens``, ``charts`` geometry, ``tables``,
``compare``); ``render`` draws the page with the Jinja2 templates in ``templates/`` (autoescape on).
"""
