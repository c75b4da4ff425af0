"""tuco inside other tools' loops: the lm-evaluation-harness model and the transformers Trainer callback."""
