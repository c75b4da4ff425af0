"""The routes of `tuco serve`, one module per family: ``completions`` (chat and text completions),
``scoring`` (a given response scored teacher-forced), ``tokenization`` (lm-evaluation-harness's
tokenizer routes), ``system`` (models, health, metrics) and ``playground`` (the page, its info and
"save as run")."""
